"""What the simulated broker reads and lists, on real sample sessions (issue 13's speed work).

- ``session_opens`` of the backtest's in-memory source equals the bar store's, symbol by symbol,
  to the bit (both are the raw opening prints of data/sample/bars.parquet);
- ``list_orders(after=...)`` lists only the orders sent on or after that day, as Alpaca's ``after``
  filter does, while orders read back from an account file are always listed;
- the positions the broker answers follow every fill and every move to a later session.
"""

import datetime as dt

import pytest

from conftest import SAMPLE
from trading_system import sessions
from trading_system.broker.base import OrderRequest
from trading_system.broker.simulated import SimulatedBroker
from trading_system.marketdata.store import BarStore

D = dt.date
FIRST, SECOND = D(2021, 4, 16), D(2021, 4, 19)


@pytest.fixture(scope="module")
def cached(sample_source):
    return sample_source


@pytest.mark.parametrize("session", [D(2020, 3, 16), D(2020, 8, 31), D(2021, 4, 20)])
def test_the_cached_opens_are_the_stores_to_the_bit(cached, sample_bars, session):
    expected = BarStore(SAMPLE).session_opens(session)
    raw = sample_bars[sample_bars["date"] == session]
    assert len(expected) == len(raw) > 400
    assert expected == dict(zip(raw["symbol"], raw["open"].astype(float)))
    got = cached.session_opens(session)
    assert got == expected and all(type(v) is float for v in got.values())
    got["AAPL"] = -1.0                      # a copy: the caller cannot change the source's
    assert cached.session_opens(session)["AAPL"] == expected["AAPL"]


def _buy(broker, symbol, cid, dollars=1_000.0):
    return broker.submit_order(OrderRequest(symbol=symbol, side="buy", notional=dollars, client_order_id=cid))


def _midnight(day):
    return dt.datetime.combine(day, dt.time(0), tzinfo=sessions.ET)


def test_list_orders_after_a_day_lists_that_day_and_later(tmp_path, cached):
    account = tmp_path / "acct.json"
    first = SimulatedBroker(cached, account, FIRST, 100_000.0)
    old = _buy(first, "AAPL", "c-1-AAPL")
    reopened = SimulatedBroker(cached, account, SECOND, 100_000.0)   # the first order comes from the file
    reopened.move_to(SECOND)
    new = _buy(reopened, "AAPL", "c-2-AAPL")
    later = _buy(reopened, "MSFT", "c-2-MSFT")
    reopened.move_to(D(2021, 4, 20))
    latest = _buy(reopened, "AAPL", "c-3-AAPL")
    ids = lambda orders: [o.id for o in orders]  # noqa: E731
    assert ids(reopened.list_orders(["AAPL"])) == [old.id, new.id, latest.id]
    assert ids(reopened.list_orders(["AAPL", "MSFT"], after=_midnight(SECOND))) == [old.id, new.id, later.id,
                                                                                   latest.id]
    assert ids(reopened.list_orders(["AAPL"], after=_midnight(D(2021, 4, 20)))) == [old.id, latest.id]

    fresh = SimulatedBroker(cached, None, FIRST, 100_000.0)           # every order sent here
    a = _buy(fresh, "AAPL", "f-1")
    fresh.move_to(SECOND)
    b = _buy(fresh, "AAPL", "f-2")
    assert ids(fresh.list_orders(["AAPL"], after=_midnight(SECOND))) == [b.id]
    assert ids(fresh.list_orders(["AAPL"], after=_midnight(FIRST))) == [a.id, b.id]
    assert fresh.list_orders(["MSFT"], after=_midnight(FIRST)) == []


def test_positions_follow_fills_and_sessions(cached, sample_bars):
    broker = SimulatedBroker(cached, None, D(2020, 8, 28), 100_000.0)
    assert broker.get_positions() == {}
    buy = _buy(broker, "AAPL", "p-1", 10_000.0)
    held = broker.get_positions()["AAPL"]
    assert held.qty == pytest.approx(buy.filled_qty) and held.price == buy.filled_avg_price
    broker.get_positions()["AAPL"] = None   # the answer is a copy
    assert broker.get_positions()["AAPL"] == held
    broker.move_to(D(2020, 8, 31))          # AAPL's 4-for-1 split, ex-date 2020-08-31
    after = broker.get_positions()["AAPL"]
    bar = sample_bars[(sample_bars["symbol"] == "AAPL") & (sample_bars["date"] == D(2020, 8, 31))]
    assert after.qty == pytest.approx(held.qty * 4, abs=1e-8)
    assert after.price == float(bar["open"].iloc[0])
    sell = broker.submit_order(OrderRequest(symbol="AAPL", side="sell", qty=after.qty, client_order_id="p-2"))
    assert sell.status == "filled" and broker.get_positions() == {}


def test_a_position_without_a_price_fails_every_time_not_once(tmp_path, cached):
    """A held symbol with no bar on or before the session: every ask raises, none answers with the
    positions it could price (a half-built answer would under-state the equity).  The account file
    is synthetic: it holds ZZZZ, which the sample has no bar for, beside a real AAPL position."""
    import json

    from trading_system.errors import BrokerError

    account = tmp_path / "acct.json"
    account.write_text(json.dumps({"cash": 1_000.0, "positions": {"AAPL": 5.0, "ZZZZ": 10.0},
                                   "session": "2021-04-20", "orders": []}))
    broker = SimulatedBroker(cached, account, D(2021, 4, 20), 100_000.0)
    for _ in range(2):
        with pytest.raises(BrokerError, match="no price for ZZZZ"):
            broker.get_positions()
        with pytest.raises(BrokerError, match="no price for ZZZZ"):
            broker.get_account()
