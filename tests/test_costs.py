"""Trading costs in the simulated broker (issue 13 item 1), on a real night worked out by hand.

The open prices are read straight from data/sample/bars.parquet (raw, as traded); the expected
fills, cash and costs are computed here with plain arithmetic from DESIGN §12's definitions.
"""

import datetime as dt
import json

import pandas as pd
import pytest

from conftest import SAMPLE, Prep, write_config
from trading_system.broker.base import OrderRequest
from trading_system.broker.simulated import SimulatedBroker
from trading_system.marketdata.store import BarStore

SESSION = dt.date(2021, 4, 20)


@pytest.fixture(scope="module")
def opens(sample_bars):
    day = sample_bars[sample_bars["date"] == SESSION].set_index("symbol")
    return {s: float(day.loc[s, "open"]) for s in ("AAPL", "MSFT")}


def test_a_buy_and_a_sell_pay_the_commission_and_the_slippage(tmp_path, opens):
    b = SimulatedBroker(BarStore(SAMPLE), tmp_path / "acct.json", SESSION, 100_000.0, commission=1.0,
                        slippage_bps=10.0)
    buy = b.submit_order(OrderRequest(symbol="AAPL", side="buy", notional=10_000.0, client_order_id="c-b-AAPL"))
    fill = opens["AAPL"] * 1.001                               # 10 bps worse than the open, upwards
    assert buy.status == "filled" and buy.filled_avg_price == pytest.approx(fill, rel=1e-12)
    assert buy.filled_qty == pytest.approx(10_000.0 / fill, abs=1e-9)
    assert b.cash == pytest.approx(100_000.0 - 10_000.0 - 1.0, abs=0.005)
    qty = buy.filled_qty
    sell = b.submit_order(OrderRequest(symbol="AAPL", side="sell", qty=qty, client_order_id="c-s-AAPL"))
    assert sell.filled_avg_price == pytest.approx(opens["AAPL"] * 0.999, rel=1e-12)   # downwards
    assert b.cash == pytest.approx(100_000.0 - 10_000.0 - 1.0 + qty * opens["AAPL"] * 0.999 - 1.0, abs=0.01)
    paid = b.costs_paid
    assert paid["commission"] == pytest.approx(2.0)
    assert paid["slippage"] == pytest.approx(qty * opens["AAPL"] * 0.001 * 2, abs=2e-6)   # kept to 6 decimals
    # The round trip lost exactly what was paid (the price did not move within the session).
    assert 100_000.0 - b.cash == pytest.approx(paid["commission"] + paid["slippage"], abs=0.02)
    assert json.loads((tmp_path / "acct.json").read_text())["commission_paid"] == pytest.approx(2.0)


def test_a_buy_that_cannot_pay_its_commission_is_refused(tmp_path):
    b = SimulatedBroker(BarStore(SAMPLE), None, SESSION, 1_000.0, commission=5.0, slippage_bps=0.0)
    order = b.submit_order(OrderRequest(symbol="MSFT", side="buy", notional=999.0, client_order_id="c-b-MSFT"))
    assert order.status == "rejected" and b.cash == 1_000.0 and b.costs_paid == {"commission": 0.0, "slippage": 0.0}


def test_without_costs_fills_are_the_open_to_the_bit(tmp_path, opens):
    b = SimulatedBroker(BarStore(SAMPLE), None, SESSION, 100_000.0)
    buy = b.submit_order(OrderRequest(symbol="MSFT", side="buy", notional=5_000.0, client_order_id="c-b-MSFT"))
    assert buy.filled_avg_price == opens["MSFT"] and b.costs_paid == {"commission": 0.0, "slippage": 0.0}


def test_the_nightly_cycle_charges_the_configured_costs(tmp_path, sample_bars):
    write_config(tmp_path, "costs: {commission_per_order: 0.5, slippage_bps: 20}\n")
    prep = Prep(tmp_path)
    for as_of, cmd in (("2021-04-19T20:00", "prepare"), ("2021-04-20T09:00", "validate"),
                       ("2021-04-20T09:31", "execute")):
        assert prep(*("--as-of", as_of, cmd)).exit_code == 0
    archive = json.loads(next((tmp_path / "archived_trades").glob("*.json")).read_text())
    day = sample_bars[sample_bars["date"] == SESSION].set_index("symbol")
    orders = archive["execution"]["orders"]
    assert orders and all(o["side"] == "buy" for o in orders)
    for o in orders:
        assert o["filled_avg_price"] == pytest.approx(float(day.loc[o["symbol"], "open"]) * 1.002, rel=1e-9)
    account = json.loads((tmp_path / "data" / "sim_account.json").read_text())
    assert account["commission_paid"] == pytest.approx(0.5 * len(orders))
    spent = sum(o["filled_qty"] * o["filled_avg_price"] for o in orders)
    assert account["cash"] == pytest.approx(100_000.0 - spent - 0.5 * len(orders), abs=0.01 * len(orders))
    assert pd.notna(account["slippage_paid"]) and account["slippage_paid"] == pytest.approx(spent * 0.002 / 1.002,
                                                                                            rel=1e-6)
