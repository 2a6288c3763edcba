"""AlpacaBroker: the real alpaca-py over HTTP against the loopback fake of the Trading API.

Prices are real 2021-04-20 opens from data/sample; accounts and positions are synthetic.
"""

import datetime as dt
import json

import pytest

from fakes.alpaca_server import ET, FakeAlpaca
from fakes.alpaca_workspace import sample_prices
from trading_system.broker.alpaca import AlpacaBroker, credentials_from_env, error_fields
from trading_system.broker.base import OrderRejected, OrderRequest, OrderUncertain
from trading_system.errors import BadInputError, BrokerError, ConfigError

PRICES = sample_prices()


def broker_for(fake: FakeAlpaca, **kw) -> AlpacaBroker:
    # Generous timeouts: a slow CI machine must not turn one request into a retried two.
    kw = {"timeout": 10.0, "connect_timeout": 5.0, "read_attempts": 3, "retry_wait": 0.01, **kw}
    return AlpacaBroker(fake.key, fake.secret, paper=True, url_override=fake.url, **kw)


def test_account_and_positions_convert_the_api_strings():
    with FakeAlpaca(PRICES, cash=5_000.0, positions={"AAPL": 0.512345678, "MSFT": 3}) as fake:
        b = broker_for(fake)
        fake.create_order("MSFT", "buy", None, 1_000.0, "open-buy")["_fill_at"] = float("inf")  # never fills
        acct = b.get_account()
        # non_marginable_buying_power (cash less what open buys hold) is what buys may spend.
        assert acct.cash == 5_000.0 and acct.cash_available == pytest.approx(4_000.0)
        expected_equity = 5_000.0 + 0.512345678 * PRICES["AAPL"] + 3 * PRICES["MSFT"]
        assert acct.equity == pytest.approx(expected_equity, abs=0.01)
        pos = b.get_positions()
        assert pos["AAPL"].qty == 0.512345678 and pos["AAPL"].price == PRICES["AAPL"]
        assert [o.client_order_id for o in b.get_open_orders()] == ["open-buy"]


def test_blocked_flags_reach_the_account():
    with FakeAlpaca(PRICES) as fake:
        fake.account_flags["trading_blocked"] = True
        assert broker_for(fake).get_account().trading_blocked
        fake.account_flags.update(trading_blocked=False, account_blocked=True)
        assert broker_for(fake).get_account().account_blocked


def test_reads_are_retried_on_5xx_and_429_then_give_up_with_a_sentence():
    with FakeAlpaca(PRICES) as fake:
        fake.fault("account", 503, times=1)
        fake.fault("account", 429, body='{"code": 42910000, "message": "rate limit exceeded"}', times=1)
        assert broker_for(fake).get_account().cash == 100_000.0
        assert fake.counts["account"] == 3
        fake.fault("positions", 500, times=10)
        with pytest.raises(BrokerError, match=r"failed to return the positions \(HTTP 500"):
            broker_for(fake).get_positions()
        assert fake.counts["positions"] == 3  # read_attempts, then a plain error


def test_a_non_json_error_body_is_parsed_defensively():
    with FakeAlpaca(PRICES) as fake:
        fake.fault("account", 403, body="<html><body><h1>403 Forbidden</h1></body></html>")
        with pytest.raises(BrokerError, match="HTTP 403: <html>") as info:
            broker_for(fake).get_account()
        assert "JSONDecodeError" not in str(info.value)


def test_wrong_keys_say_which_setting_to_check():
    with FakeAlpaca(PRICES) as fake:
        b = AlpacaBroker(fake.key, "wrong-secret", url_override=fake.url, read_attempts=1)
        with pytest.raises(BrokerError, match="HTTP 401.*ALPACA_PAPER"):
            b.get_account()


def test_every_request_has_a_timeout():
    # The fake answers after 1.5 s; with a 0.3 s read timeout the client gives up instead of hanging.
    with FakeAlpaca(PRICES) as fake:
        b = broker_for(fake, timeout=0.3, read_attempts=2)
        b.get_account()      # a prompt first read checks the account's kind: no order goes out before one
        fake.latency = 1.5
        with pytest.raises(BrokerError, match="did not answer"):
            b.get_account()
        with pytest.raises(OrderUncertain, match="Timeout"):
            b.submit_order(OrderRequest("MSFT", "buy", "cid-timeout", notional=100.0))


def test_a_504_on_an_accepted_post_is_not_resent_by_alpaca_py():
    with FakeAlpaca(PRICES) as fake:
        fake.fault("orders_post", 504, body="", accept=True)
        b = broker_for(fake)
        with pytest.raises(OrderUncertain, match="504"):
            b.submit_order(OrderRequest("MSFT", "buy", "cid-504", notional=500.0))
        assert fake.posts_by_cid["cid-504"] == 1       # alpaca-py's own 504 retry is off
        assert b.get_order_by_client_id("cid-504").notional == 500.0  # ...and the order had landed


def test_a_dropped_connection_is_uncertain():
    with FakeAlpaca(PRICES) as fake:
        fake.fault("orders_post", drop=True, accept=True)
        with pytest.raises(OrderUncertain, match="ConnectionError"):
            broker_for(fake).submit_order(OrderRequest("MSFT", "buy", "cid-drop", notional=500.0))
        assert len(fake.orders) == 1


@pytest.mark.parametrize("setup, request_, kind, status", [
    (lambda f: None, OrderRequest("MSFT", "buy", "c1", notional=200_000.0), "buying_power", 403),
    (lambda f: f.fractionable.update(MSFT=False), OrderRequest("MSFT", "buy", "c2", notional=500.0),
     "not_fractionable", 422),
    (lambda f: f.create_order("AAPL", "buy", None, 100.0, "c0") and f.fill_fraction.update(AAPL=0),
     OrderRequest("AAPL", "sell", "c3", qty=1.0), "wash_trade", 403),
    (lambda f: None, OrderRequest("KO", "sell", "c4", close_position=True), "no_position", 404),
    (lambda f: None, OrderRequest("AAPL", "sell", "c5", qty=50.0), "qty_available", 403),
])
def test_refusals_are_classified(setup, request_, kind, status):
    with FakeAlpaca(PRICES, positions={"AAPL": 10}) as fake:
        fake._t0_market = dt.datetime(2021, 4, 20, 8, 0, tzinfo=ET)  # closed: nothing fills meanwhile
        setup(fake)
        with pytest.raises(OrderRejected) as info:
            broker_for(fake).submit_order(request_)
        assert (info.value.kind, info.value.status) == (kind, status)


def test_a_client_order_id_stays_taken_after_cancel():
    with FakeAlpaca(PRICES, now=dt.datetime(2021, 4, 20, 8, 0, tzinfo=ET)) as fake:
        b = broker_for(fake)
        order = b.submit_order(OrderRequest("MSFT", "buy", "cid-once", notional=500.0))
        assert order.status == "accepted"   # before the open the order waits (API-NOTES B2)
        b.cancel_order(order.id)
        assert b.get_order_by_client_id("cid-once").status == "canceled"
        with pytest.raises(OrderRejected) as info:
            b.submit_order(OrderRequest("MSFT", "buy", "cid-once", notional=500.0))
        assert info.value.kind == "duplicate" and info.value.code == 40010001


def test_clock_and_calendar_with_early_close_and_holiday():
    with FakeAlpaca(PRICES, now=dt.datetime(2021, 11, 26, 12, 0, tzinfo=ET)) as fake:
        b = broker_for(fake)
        c = b.market_clock()
        assert c.is_open and c.next_close == dt.datetime(2021, 11, 26, 13, 0, tzinfo=ET)  # day after Thanksgiving
        assert b.session_hours(dt.date(2021, 11, 26))[1].hour == 13
        assert b.session_hours(dt.date(2021, 11, 25)) is None                              # Thanksgiving


def test_list_orders_is_one_request_filtered_by_symbol():
    with FakeAlpaca(PRICES) as fake:
        b = broker_for(fake)
        for sym in ("MSFT", "KO", "PEP"):
            b.submit_order(OrderRequest(sym, "buy", f"c-{sym}", notional=100.0))
        before = fake.counts["orders_list"]
        assert sorted(o.symbol for o in b.list_orders(["KO", "PEP"])) == ["KO", "PEP"]
        assert fake.counts["orders_list"] == before + 1


def test_credentials_and_the_live_guard():
    base = {"ALPACA_API_KEY": "k", "ALPACA_SECRET_KEY": "s"}
    got = credentials_from_env(False, {**base, "ALPACA_BASE_URL": "http://127.0.0.1:9/v2/"})
    assert got["paper"] is True and got["url_override"] == "http://127.0.0.1:9"
    with pytest.raises(BadInputError, match="add --live"):
        credentials_from_env(False, {**base, "ALPACA_PAPER": "false"})
    assert credentials_from_env(True, {**base, "ALPACA_PAPER": "false"})["paper"] is False
    # A host that is neither Alpaca's (a proxy, the loopback fake) is left to the switches and the account check.
    proxy = {**base, "ALPACA_BASE_URL": "https://alpaca-proxy.internal:8443/v2"}
    assert credentials_from_env(False, proxy) == {"api_key": "k", "secret_key": "s", "paper": True,
                                                  "url_override": "https://alpaca-proxy.internal:8443"}
    assert credentials_from_env(True, {**proxy, "ALPACA_PAPER": "false"})["paper"] is False
    with pytest.raises(ConfigError, match="ALPACA_API_KEY"):
        credentials_from_env(False, {"ALPACA_API_KEY": "k"})
    with pytest.raises(ConfigError, match="true or false"):
        credentials_from_env(False, {**base, "ALPACA_PAPER": "maybe"})


def test_error_fields_of_odd_bodies():
    class E(Exception):
        status_code = 502

    assert error_fields(E("")) == (502, None, "HTTP 502")
    assert error_fields(E(json.dumps({"code": 40310000, "message": "insufficient buying power"}))) == (
        502, 40310000, "insufficient buying power")
    assert error_fields(E('{"message": "no code"}'))[1:] == (None, "no code")
