"""Order planning (pure) and the pre-trade guards.

Account and position figures are synthetic (an account is not market data); prices are
real closes from the sample where a price matters.
"""

from pathlib import Path

import pytest

from trading_system.broker.base import Account, Order, Position
from trading_system.config import ExecutionConfig
from trading_system.execute.orders import (KillSwitch, MaxOrderFraction, MaxOrderNotional, MaxRunNotional, MaxRunTurnover,
                                   SymbolPattern, check_guards, client_order_id, default_guards, fit_buys_to_cash,
                                   plan_orders)

CFG = ExecutionConfig(cash_buffer=0.02)
AAPL, MSFT, KO = 134.84, 258.74, 54.00   # closes of 2021-04-19 in data/sample
SPY, QQQ = 415.21, 338.88                 # closes of 2021-04-19 in data/sample


def pos(sym, qty, px):
    return Position(symbol=sym, qty=qty, market_value=qty * px, price=px, qty_available=qty)


def test_targets_deltas_and_order_kinds():
    account = Account(cash=50_000.0, equity=100_000.0, cash_available=50_000.0)
    positions = {"AAPL": pos("AAPL", 200, AAPL), "KO": pos("KO", 100, KO), "MSFT": pos("MSFT", 30, MSFT)}
    plan = plan_orders({"AAPL": 0.2, "MSFT": 0.5, "XOM": 0.3}, account, positions, [], CFG, "20210420-abcdef12")
    investable = 100_000 * 0.98
    assert plan.targets["AAPL"] == pytest.approx(0.2 * investable)
    sells = {o.request.symbol: o.request for o in plan.sells}
    buys = {o.request.symbol: o.request for o in plan.buys}
    # KO is not in the plan: a full exit through close_position.
    assert sells["KO"].close_position and sells["KO"].qty is None
    # AAPL trimmed: fractional shares, rounded down to 9 dp, never more than held.
    expected = (200 * AAPL - 0.2 * investable) / AAPL
    assert sells["AAPL"].qty == pytest.approx(expected, abs=1e-9)
    assert round(sells["AAPL"].qty, 9) == sells["AAPL"].qty
    # Buys in notional dollars rounded down to cents, largest first.
    assert buys["XOM"].notional == pytest.approx(0.3 * investable, abs=0.01)
    assert [o.request.symbol for o in plan.buys] == ["MSFT", "XOM"]
    assert buys["MSFT"].client_order_id == "prep-20210420-abcdef12-b-MSFT"


def test_small_deltas_dropped_open_orders_counted_and_keep_respected():
    account = Account(cash=0.0, equity=100_000.0, cash_available=0.0)
    investable = 98_000.0
    positions = {"AAPL": pos("AAPL", 0.5 * investable / AAPL + 0.05, AAPL), "KO": pos("KO", 10, KO)}
    open_buy = Order(id="o1", client_order_id="x", symbol="MSFT", side="buy", status="new", notional=49_000.0)
    cfg = CFG.model_copy(update={"keep": ["KO"]})
    plan = plan_orders({"AAPL": 0.5, "MSFT": 0.5}, account, positions, [open_buy], cfg, "20210420-abcdef12")
    assert plan.sells == [] and plan.buys == []                  # AAPL within $100 minimum, MSFT already ordered
    assert plan.min_order == pytest.approx(100.0)                # max($10, 0.1 % of $100k)
    assert "KO" not in plan.targets                              # kept: never sold


def test_fit_buys_to_cash_scales_down_and_drops_tiny():
    account = Account(cash=10_000.0, equity=10_000.0, cash_available=10_000.0)
    plan = plan_orders({"AAPL": 0.6, "MSFT": 0.399, "KO": 0.001}, account, {}, [], CFG, "20210420-abcdef12")
    kept, dropped = fit_buys_to_cash(plan.buys, 5_000.0, plan.min_order)
    assert sum(b.request.notional for b in kept) <= 5_000.0
    assert kept[0].request.notional == pytest.approx(0.6 * 9_800 * 5_000 / (9_800 - 9.8), abs=0.02)
    assert {s for s, _, _ in plan.skipped} == {"KO"}             # $9.80 under the $10 minimum
    assert dropped == []


def test_client_order_id_is_deterministic_and_short():
    assert client_order_id("20210420-abcdef12", "s", "BRK.B") == "prep-20210420-abcdef12-s-BRK.B"
    with pytest.raises(ValueError):
        client_order_id("20210420-abcdef12", "s", "X" * 30)


def test_guards(tmp_path):
    account = Account(cash=100_000.0, equity=100_000.0, cash_available=100_000.0)
    plan = plan_orders({"AAPL": 0.7, "MSFT": 0.3}, account, {}, [], CFG, "20210420-abcdef12")
    orders = plan.buys
    assert KillSwitch(tmp_path / "KILL").check(orders) == []
    (tmp_path / "KILL").touch()
    assert "kill switch" in str(KillSwitch(tmp_path / "KILL").check(orders)[0])
    refused = MaxOrderNotional(50_000).check(orders)
    assert [r.symbol for r in refused] == ["AAPL"] and str(refused[0]).startswith("buy AAPL")
    assert MaxRunNotional(90_000).check(orders) and not MaxRunNotional(100_000).check(orders)
    bad = plan_orders({"../v2/account": 1.0}, account, {}, [], CFG, "20210420-abcdef12").buys
    assert SymbolPattern().check(bad) and not SymbolPattern().check(orders)


def test_caps_that_block_ordinary_accounts_are_relative_to_equity():
    """Item 4: the default limits scale with the account; the absolute caps are off unless set.

    A ~$170k account moving from a 0.6/0.4 book to a new one trades ~1.9x its equity in one
    run and ~$100k in its largest order: the old absolute defaults ($100k, $250k) refused it.
    """
    cfg = ExecutionConfig()
    assert cfg.max_order_notional is None and cfg.max_run_notional is None
    account = Account(cash=0.0, equity=170_000.0, cash_available=0.0)
    positions = {"SPY": pos("SPY", 0.6 * 170_000 / SPY, SPY), "QQQ": pos("QQQ", 0.4 * 170_000 / QQQ, QQQ)}
    plan = plan_orders({"AAPL": 0.6, "MSFT": 0.4}, account, positions, [], cfg, "20210420-abcdef12")
    orders = [*plan.sells, *plan.buys]
    assert max(abs(o.delta) for o in orders) > 100_000 and sum(abs(o.delta) for o in orders) > 250_000
    assert check_guards(default_guards(cfg, Path("/nonexistent/KILL")), orders, account.equity) == []
    # The same orders against a $50k equity figure are refused by both relative limits.
    refused = check_guards([MaxOrderFraction(1.0), MaxRunTurnover(2.0)], orders, 50_000.0)
    assert {r.symbol for r in refused} >= {"SPY", None}
    # An absolute cap, when set, still applies.
    capped = ExecutionConfig(max_order_notional=50_000.0)
    assert any("max_order_notional" in str(r)
               for r in check_guards(default_guards(capped, Path("/nonexistent/KILL")), orders, account.equity))


def test_an_open_share_order_of_unknown_value_is_never_bought_twice():
    """Review finding: an open whole-share buy of a name not held was valued at $0 pending, so a
    plan under a new plan id would buy it again.  With a price it counts; without one the symbol
    is left alone this run."""
    account = Account(cash=100_000.0, equity=100_000.0, cash_available=100_000.0)
    fcx = 37.05                                      # FCX's open of 2021-04-20 in data/sample
    open_buy = Order(id="o1", client_order_id="prep-20210420-aaaaaaaa-b-FCX", symbol="FCX", side="buy",
                     status="new", qty=76.0)
    blind = plan_orders({"FCX": 0.03, "MSFT": 0.97}, account, {}, [open_buy], CFG, "20210420-bbbbbbbb")
    assert [b.request.symbol for b in blind.buys] == ["MSFT"]
    assert ("FCX", 0.0, "an open share-count order of unknown value: left alone this run") in blind.skipped
    priced = plan_orders({"FCX": 0.03, "MSFT": 0.97}, account, {}, [open_buy], CFG, "20210420-bbbbbbbb",
                         prices={"FCX": fcx})
    fcx_buy = next(b for b in priced.buys if b.request.symbol == "FCX")
    assert fcx_buy.request.notional == pytest.approx(0.03 * 98_000 - 76 * fcx, abs=0.01)
