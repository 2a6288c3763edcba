"""Property tests (hypothesis) of the three places where weights become money.

* ``strategies.sharpe_weights``: the capped Sharpe weights sum to 1, respect the cap whenever
  it can hold (n >= 1 / cap), and equal a plain reference written here (cap the largest,
  spread its excess pro rata over the names under the cap, repeat);
* ``orders.fit_buys_to_cash``: the buys kept never add up to more than the cash available,
  each is rounded down to cents, none is under the minimum order;
* ``orders.plan_orders``: one side per symbol, whatever the weights, positions and open orders.

The inputs are SYNTHETIC by nature: hypothesis draws Sharpe lists, notionals, cash, weights,
positions and open orders to hunt for the case nobody wrote by hand.  Where a share price is
needed it is a real one: the as-traded open of 2021-04-20 from data/sample.
Each property runs a modest number of examples so the file takes a few seconds.
"""

from __future__ import annotations

import datetime as dt
import functools
import math

import pandas as pd
import pytest
from conftest import SAMPLE
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from trading_system.broker.base import Account, Order, OrderRequest, Position
from trading_system.config import ExecutionConfig
from trading_system.execute.orders import PlannedOrder, fit_buys_to_cash, plan_orders
from trading_system.prepare.strategies import sharpe_weights

SESSION = dt.date(2021, 4, 20)
POOL = ["AAPL", "MSFT", "KO", "NUE", "FANG", "FCX", "SPY", "QQQ"]
PROPERTY = settings(max_examples=60, deadline=None)


@functools.lru_cache(maxsize=1)
def real_opens() -> dict[str, float]:
    """The as-traded opens of 2021-04-20 for POOL, dollars (read once, on first use)."""
    from trading_system.marketdata.store import BarStore

    bars = BarStore(SAMPLE).session_bars(SESSION, POOL)
    return {str(s): float(p) for s, p in bars["open"].items()}


# --------------------------------------------------------------------------- capped weights


def reference_capped_weights(sharpes: list[float], cap: float) -> list[float]:
    """DESIGN §5 written out plainly, one capped name at a time.

    w_i = max(sharpe_i, 0) / sum (NaN counts as 0); while some name under the cap is over
    it: cap the largest one and spread its excess over the names still under the cap, pro
    rata to their weights (equally, if those weights are all 0).  All Sharpes <= 0, or
    fewer than 1 / cap names: equal weights.
    """
    n = len(sharpes)
    raw = [s if s > 0 else 0.0 for s in sharpes]          # NaN > 0 is False: NaN counts as 0
    if sum(raw) <= 0 or n * cap < 1 - 1e-12:
        return [1.0 / n] * n
    w = [r / sum(raw) for r in raw]
    capped: set[int] = set()
    while True:
        over = [i for i in range(n) if i not in capped and w[i] > cap + 1e-12]
        if not over:
            return w
        top = max(over, key=lambda i: w[i])
        excess, w[top] = w[top] - cap, cap
        capped.add(top)
        free = [i for i in range(n) if i not in capped]
        if not free:
            return w
        mass = sum(w[i] for i in free)
        for i in free:
            w[i] += excess * w[i] / mass if mass > 0 else excess / len(free)


# Real Sharpe ratios, not subnormal floats: at |sharpe| ~ 5e-324 the pro-rata spread underflows
# (0.4 x 5e-324 == 0.0) and both implementations lose weight; that is float dust, not allocation.
sharpe_values = st.one_of(st.floats(1e-9, 6.0), st.floats(-3.0, -1e-9), st.just(0.0), st.just(math.nan))
caps = st.one_of(st.sampled_from([0.05, 0.1, 0.2, 0.25, 1 / 3, 0.5, 1.0]), st.floats(0.01, 1.0))


@PROPERTY
@given(sharpes=st.lists(sharpe_values, min_size=1, max_size=30), cap=caps)
def test_capped_weights_sum_to_one_respect_the_cap_and_equal_the_reference(sharpes, cap):
    symbols = [f"S{i:02d}" for i in range(len(sharpes))]
    got = sharpe_weights(pd.Series(sharpes, index=symbols), cap)
    assert list(got.index) == symbols
    assert got.sum() == pytest.approx(1.0, abs=1e-12)
    assert (got >= 0).all()
    n = len(sharpes)
    if n * cap >= 1 - 1e-12:
        assert got.max() <= cap + 1e-12
    else:                                   # the cap cannot hold: equal weights
        assert got.tolist() == pytest.approx([1 / n] * n, abs=1e-15)
    assert got.tolist() == pytest.approx(reference_capped_weights(sharpes, cap), abs=1e-12)
    # A better Sharpe never gets a smaller weight.
    raw = [s if s > 0 else 0.0 for s in sharpes]
    for i in range(n):
        for j in range(n):
            if raw[i] > raw[j]:
                assert got.iloc[i] >= got.iloc[j] - 1e-12


def test_reference_capped_weights_on_a_cascade_worked_by_hand():
    # 4, 2, 1, 1, 1, 1 -> 0.4, 0.2, 0.1 x 4; cap 0.25 takes 0.15 from the first: spread over 0.6,
    # the second becomes 0.25 (capped too), the rest share the remaining 0.5: 0.125 each.
    got = reference_capped_weights([4, 2, 1, 1, 1, 1], 0.25)
    assert got == pytest.approx([0.25, 0.25, 0.125, 0.125, 0.125, 0.125], abs=1e-15)
    assert sharpe_weights(pd.Series([4, 2, 1, 1, 1, 1.0]), 0.25).tolist() == pytest.approx(got, abs=1e-15)


# --------------------------------------------------------------------------- buys fit the cash


def buy(symbol: str, cents: int) -> PlannedOrder:
    req = OrderRequest(symbol=symbol, side="buy", client_order_id=f"prep-20210420-00000000-b-{symbol}",
                       notional=cents / 100)
    return PlannedOrder(req, cents / 100, cents / 100, 0.0)


@PROPERTY
@given(cents=st.lists(st.integers(1, 5_000_000), min_size=0, max_size=len(POOL)),
       cash=st.one_of(st.floats(-5_000.0, 200_000.0), st.integers(0, 20_000_000).map(lambda c: c / 100)),
       min_order=st.floats(1.0, 500.0))
def test_buys_never_exceed_the_cash_and_are_whole_cents(cents, cash, min_order):
    cents = sorted(cents, reverse=True)                      # largest first, as plan_orders gives them
    buys = [buy(s, c) for s, c in zip(POOL, cents, strict=False)]
    kept, dropped = fit_buys_to_cash(buys, cash, min_order)
    asked = sum(b.request.notional for b in buys)
    spent = sum(k.request.notional for k in kept)
    assert spent <= max(cash, 0.0)
    scale = 1.0 if asked <= cash else max(cash, 0.0) / asked if asked > 0 else 0.0
    wanted = {b.request.symbol: b.request.notional for b in buys}
    for k in kept:
        n = k.request.notional
        assert round(n * 100) == pytest.approx(n * 100, abs=1e-6)          # whole cents
        assert wanted[k.request.symbol] * scale - 0.01 - 1e-9 <= n <= wanted[k.request.symbol] * scale + 1e-9
        assert n >= max(min_order, 1.0)                                  # none under the minimum
        assert k.request.side == "buy" and k.request.qty is None
    # Every buy is kept or dropped (with its reason), in the order given.
    assert [k.request.symbol for k in kept] == [b.request.symbol for b in buys if b.request.symbol in
                                                {k.request.symbol for k in kept}]
    assert sorted([k.request.symbol for k in kept] + [d[0] for d in dropped]) == sorted(wanted)


# --------------------------------------------------------------------------- one side per symbol


OPEN, DONE = ["new", "accepted", "partially_filled"], ["filled", "canceled", "expired"]


@st.composite
def open_orders(draw) -> list[Order]:
    out = []
    for i, sym in enumerate(draw(st.lists(st.sampled_from(POOL), max_size=5))):
        side = draw(st.sampled_from(["buy", "sell"]))
        status = draw(st.sampled_from(OPEN + DONE))
        if draw(st.booleans()):
            qty, notional = draw(st.floats(0.001, 500.0)), None
            filled = draw(st.floats(0.0, 1.0)) * qty
        else:
            qty, notional = None, draw(st.integers(100, 5_000_000)) / 100
            filled = draw(st.floats(0.0, 1.0)) * notional / real_opens()[sym]
        px = real_opens()[sym] if filled > 0 else None
        out.append(Order(id=f"o{i}", client_order_id=f"x{i}", symbol=sym, side=side, status=status, qty=qty,
                         notional=notional, filled_qty=filled, filled_avg_price=px))
    return out


@st.composite
def accounts(draw):
    held = draw(st.dictionaries(st.sampled_from(POOL), st.floats(1e-6, 2_000.0), max_size=len(POOL)))
    px = real_opens()
    positions = {s: Position(symbol=s, qty=q, market_value=q * px[s], price=px[s], qty_available=q)
                 for s, q in held.items()}
    cash = draw(st.floats(0.0, 300_000.0))
    equity = cash + sum(p.market_value for p in positions.values())
    return Account(cash=cash, equity=equity, cash_available=cash), positions


@st.composite
def target_weights(draw) -> dict[str, float]:
    raw = draw(st.dictionaries(st.sampled_from(POOL), st.floats(0.0, 1.0), max_size=len(POOL)))
    total = sum(raw.values())
    return {s: w / total for s, w in raw.items()} if total > 0 else {}


@PROPERTY
@given(weights=target_weights(), account=accounts(), orders=open_orders(),
       buffer=st.sampled_from([0.0, 0.02, 0.1]), keep=st.lists(st.sampled_from(POOL), max_size=2))
def test_one_side_per_symbol(weights, account, orders, buffer, keep):
    acct, positions = account
    assume(acct.equity > 0)
    cfg = ExecutionConfig(cash_buffer=buffer, keep=keep)
    plan = plan_orders(weights, acct, positions, orders, cfg, "20210420-00000000")
    sells = [p.request.symbol for p in plan.sells]
    buys = [p.request.symbol for p in plan.buys]
    assert not set(sells) & set(buys)
    assert len(set(sells)) == len(sells) and len(set(buys)) == len(buys)
    cids = [p.request.client_order_id for p in [*plan.sells, *plan.buys]]
    assert len(set(cids)) == len(cids) and all(len(c) <= 48 for c in cids)
    for p in plan.sells:                     # only what is held, never more than is held
        r = p.request
        assert r.side == "sell" and r.symbol in positions
        assert r.close_position or 0 < r.qty <= positions[r.symbol].qty
        assert not r.close_position or weights.get(r.symbol, 0.0) == 0.0
    for p in plan.buys:                      # whole cents, at least the minimum order (less a cent)
        n = p.request.notional
        assert p.request.side == "buy" and n > 0 and round(n * 100) == pytest.approx(n * 100, abs=1e-6)
        assert n >= plan.min_order - 0.01
    assert [p.delta for p in plan.buys] == sorted((p.delta for p in plan.buys), reverse=True)
    for sym in set(keep) - set(weights):     # kept names are never traded
        assert sym not in sells and sym not in buys
