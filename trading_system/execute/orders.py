"""Order planning as a pure function, and the pre-trade guards (DESIGN §7).

``plan_orders``: targets = weight x equity x (1 - cash_buffer); delta = target -
(position value + open orders); deltas under the minimum order are dropped; one net
order per symbol; position-reducing orders (sells) before buys.  Dollars throughout;
sell quantities in shares rounded to 9 dp, buy notionals in dollars rounded to cents.
Modelled on QuantConnect LEAN's portfolio construction -> execution split.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from trading_system.broker.base import Account, Order, OrderRequest, Position
from trading_system.config import ExecutionConfig
from trading_system.vocabulary import SYMBOL_PATTERN


def client_order_id(plan_id: str, phase: str, symbol: str) -> str:
    """Deterministic client_order_id (<= 48 chars): ``prep-<plan_id>-<phase>-<symbol>``.

    The same plan, phase and symbol always give the same id, so a rerun finds the
    order it may already have sent instead of sending it again.
    """
    cid = f"prep-{plan_id}-{phase}-{symbol}"
    if len(cid) > 48:
        raise ValueError(f"client_order_id {cid!r} is longer than 48 characters")
    return cid


@dataclasses.dataclass(frozen=True)
class PlannedOrder:
    """One order to send, with the dollar delta it closes (negative for sells)."""

    request: OrderRequest
    delta: float
    target: float
    current: float


@dataclasses.dataclass(frozen=True)
class OrderPlan:
    """Sells (phase 1) and buys (phase 2), plus the deltas dropped and why. Dollars."""

    sells: list[PlannedOrder]
    buys: list[PlannedOrder]
    skipped: list[tuple[str, float, str]]
    targets: dict[str, float]
    min_order: float


def minimum_order(equity: float, cfg: ExecutionConfig) -> float:
    """max(min_order_dollars, min_order_equity_fraction x equity), dollars."""
    return max(cfg.min_order_dollars, cfg.min_order_equity_fraction * equity)


def _open_order_value(orders: Sequence[Order], prices: Mapping[str, float]) -> tuple[dict[str, float], set[str]]:
    """Signed dollars still to fill per symbol (+ buys, - sells), and the symbols with an open
    share-count order and no price to value it (their pending value is unknown)."""
    out: dict[str, float] = {}
    unknown: set[str] = set()
    for o in orders:
        if o.terminal:
            continue
        if o.notional is not None:
            left = o.notional - o.filled_notional
        elif o.symbol in prices:
            left = ((o.qty or 0.0) - o.filled_qty) * prices[o.symbol]
        else:
            unknown.add(o.symbol)
            continue
        out[o.symbol] = out.get(o.symbol, 0.0) + (left if o.side == "buy" else -left)
    return out, unknown


def plan_orders(
    weights: Mapping[str, float],
    account: Account,
    positions: Mapping[str, Position],
    open_orders: Sequence[Order],
    cfg: ExecutionConfig,
    plan_id: str,
    prices: Mapping[str, float] | None = None,
) -> OrderPlan:
    """Turn target weights into the net orders that reach them.

    Requires: ``weights`` (fractions of the investable equity summing to 1, or to the regime's
    exposure when it is under 1: the rest then stays in cash) for the selected strategy; the
    account (dollars) and positions (shares, dollars) read from the broker; orders still open.
    ``prices`` (dollars per share, e.g. the morning's) value open share-count orders of symbols
    not held; a symbol with such an order and no price is left alone this run (skipped, with the
    reason): its pending dollars are unknown, and planning it anyway could buy it twice.
    Sets: a target in dollars for every symbol held or wanted; positions outside
    ``weights`` and not in ``cfg.keep`` are sold in full (close_position).
    """
    investable = account.equity * (1.0 - cfg.cash_buffer)
    known = {**(prices or {}), **{s: p.price for s, p in positions.items()}}
    pending, unknown = _open_order_value(open_orders, known)
    min_order = minimum_order(account.equity, cfg)
    symbols = sorted(set(weights) | set(positions) | set(pending))
    sells, buys, skipped, targets = [], [], [], {}
    for sym in symbols:
        held = positions.get(sym)
        if sym not in weights and sym in cfg.keep:
            continue
        if sym in unknown:
            skipped.append((sym, 0.0, "an open share-count order of unknown value: left alone this run"))
            continue
        target = weights.get(sym, 0.0) * investable
        current = (held.market_value if held else 0.0) + pending.get(sym, 0.0)
        targets[sym] = target
        delta = target - current
        # A full exit is sent whatever its size, so no dust is left behind.
        full_exit = target == 0.0 and held is not None and pending.get(sym, 0.0) == 0.0
        if abs(delta) < min_order and not full_exit:
            if abs(delta) > 0.005:
                skipped.append((sym, delta, f"under the ${min_order:,.2f} minimum order"))
            continue
        if delta < 0:
            if held is None:
                skipped.append((sym, delta, "nothing held to sell (open buy orders only)"))
                continue
            cid = client_order_id(plan_id, "s", sym)
            if full_exit:
                req = OrderRequest(symbol=sym, side="sell", client_order_id=cid, close_position=True)
            else:
                qty = min(math.floor(-delta / held.price * 1e9) / 1e9, held.qty)
                req = OrderRequest(symbol=sym, side="sell", client_order_id=cid, qty=qty)
            sells.append(PlannedOrder(req, delta, target, current))
        else:
            notional = math.floor(delta * 100) / 100
            req = OrderRequest(symbol=sym, side="buy", client_order_id=client_order_id(plan_id, "b", sym),
                               notional=notional)
            buys.append(PlannedOrder(req, delta, target, current))
    buys.sort(key=lambda p: (-p.delta, p.request.symbol))
    return OrderPlan(sells=sells, buys=buys, skipped=skipped, targets=targets, min_order=min_order)


def _amount(value: float | None, what: str, req: OrderRequest) -> float:
    """A planned order's ``qty`` or ``notional``, which its kind of order always has (a buy is
    planned by notional, a sized sell by qty); ValueError when it is missing."""
    if value is None:
        raise ValueError(f"order {req.client_order_id} has no {what}")
    return value


def fit_buys_to_cash(buys: Sequence[PlannedOrder], cash_available: float,
                     min_order: float) -> tuple[list[PlannedOrder], list[tuple[str, float, str]]]:
    """Scale buy notionals down (pro rata) so their sum never exceeds ``cash_available`` dollars.

    Largest first; each notional rounded down to cents; buys that shrink under
    ``min_order`` are dropped and reported.
    """
    total = sum(_amount(b.request.notional, "notional", b.request) for b in buys)
    scale = 1.0 if total <= cash_available else max(cash_available, 0.0) / total if total > 0 else 0.0
    kept, dropped = [], []
    for b in buys:
        notional = math.floor(_amount(b.request.notional, "notional", b.request) * scale * 100) / 100
        if notional < max(min_order, 1.0):
            dropped.append((b.request.symbol, b.delta, f"scaled to ${notional:,.2f} by the cash available"))
            continue
        req = dataclasses.replace(b.request, notional=notional)
        kept.append(dataclasses.replace(b, request=req))
    return kept, dropped


def whole_shares(orders: Sequence[PlannedOrder], fractionable: Mapping[str, bool],
                 prices: Mapping[str, float]) -> tuple[list[PlannedOrder], list[tuple[str, float, str]]]:
    """Give assets that are not fractionable whole shares (Alpaca refuses fractions of them).

    ``fractionable``: symbol -> flag from the broker's assets (missing = fractionable);
    ``prices``: dollars per share, to turn a buy notional into ``floor(notional / price)``
    shares.  Trims are rounded down to whole shares; full exits (close_position) are kept.
    Orders that round to zero shares, or buys with no price, are dropped and reported.
    """
    kept, dropped = [], []
    for o in orders:
        req = o.request
        if fractionable.get(req.symbol, True) or req.close_position:
            kept.append(o)
            continue
        if req.side == "sell":
            qty = math.floor(_amount(req.qty, "qty", req) + 1e-9)
        else:
            px = prices.get(req.symbol)
            if not px or px <= 0:
                dropped.append((req.symbol, o.delta, "not fractionable and no price to size whole shares"))
                continue
            qty = math.floor(_amount(req.notional, "notional", req) / px + 1e-9)
        if qty < 1:
            dropped.append((req.symbol, o.delta, "not fractionable: under one whole share"))
            continue
        kept.append(dataclasses.replace(o, request=dataclasses.replace(req, qty=float(qty), notional=None)))
    return kept, dropped


# --- pre-trade guards (zipline-style small validators) ---------------------------------------


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a guard refuses: ``symbol`` names the order, or is None when the run as a whole is refused;
    ``rule`` is the setting (or file) that refuses it."""

    message: str
    symbol: str | None = None
    rule: str = ""

    def __str__(self) -> str:
        return self.message


class Guard(Protocol):
    """A pre-trade control: every refusal it has for these orders on an account of ``equity`` dollars."""

    def check(self, orders: Sequence[PlannedOrder], equity: float) -> list[Refusal]: ...


@dataclasses.dataclass(frozen=True)
class KillSwitch:
    """Refuses every submission while the kill-switch file exists."""

    path: Path

    def check(self, orders: Sequence[PlannedOrder], equity: float = 0.0) -> list[Refusal]:
        if os.path.exists(self.path):   # a stat per order (os.path: a third of pathlib's cost)
            return [Refusal(f"kill switch {self.path} is present; remove it to allow orders", rule="kill switch")]
        return []


@dataclasses.dataclass(frozen=True)
class SymbolPattern:
    """Refuses a symbol that does not match the strict ticker pattern (before it reaches a URL)."""

    def check(self, orders: Sequence[PlannedOrder], equity: float = 0.0) -> list[Refusal]:
        return [Refusal(f"symbol {o.request.symbol!r} is not a valid ticker", o.request.symbol, "ticker pattern")
                for o in orders
                if not SYMBOL_PATTERN.match(o.request.symbol)]


@dataclasses.dataclass(frozen=True)
class MaxOrderFraction:
    """Refuses any order whose dollar size exceeds ``fraction`` x the account's equity."""

    fraction: float

    def check(self, orders: Sequence[PlannedOrder], equity: float) -> list[Refusal]:
        limit = self.fraction * equity
        return [Refusal(f"{o.request.side} {o.request.symbol} of ${abs(o.delta):,.2f} exceeds {self.fraction:.1%} of "
                        f"the ${equity:,.2f} equity (${limit:,.2f}, execution.max_order_fraction)", o.request.symbol,
                        "execution.max_order_fraction")
                for o in orders if abs(o.delta) > limit]


@dataclasses.dataclass(frozen=True)
class MaxRunTurnover:
    """Refuses a run whose orders add up to more than ``turnover`` x the account's equity."""

    turnover: float

    def check(self, orders: Sequence[PlannedOrder], equity: float) -> list[Refusal]:
        total = sum(abs(o.delta) for o in orders)
        if total > self.turnover * equity:
            return [Refusal(f"the run's orders total ${total:,.2f}, {total / equity:.2f}x the ${equity:,.2f} "
                            f"equity, over the {self.turnover:g}x limit (execution.max_run_turnover)",
                            rule="execution.max_run_turnover")]
        return []


@dataclasses.dataclass(frozen=True)
class MaxOrderNotional:
    """Refuses any order whose dollar size exceeds ``limit`` (an optional absolute cap)."""

    limit: float

    def check(self, orders: Sequence[PlannedOrder], equity: float = 0.0) -> list[Refusal]:
        return [Refusal(f"{o.request.side} {o.request.symbol} of ${abs(o.delta):,.2f} exceeds the "
                        f"${self.limit:,.2f} per-order limit (execution.max_order_notional)", o.request.symbol,
                        "execution.max_order_notional")
                for o in orders if abs(o.delta) > self.limit]


@dataclasses.dataclass(frozen=True)
class MaxRunNotional:
    """Refuses a run whose orders add up to more than ``limit`` dollars (an optional absolute cap)."""

    limit: float

    def check(self, orders: Sequence[PlannedOrder], equity: float = 0.0) -> list[Refusal]:
        total = sum(abs(o.delta) for o in orders)
        if total > self.limit:
            return [Refusal(f"the run's orders total ${total:,.2f}, over the ${self.limit:,.2f} "
                            "limit (execution.max_run_notional)", rule="execution.max_run_notional")]
        return []


def default_guards(cfg: ExecutionConfig, kill_switch: Path) -> list[Guard]:
    """The guards every run passes before its first order: the kill switch, the ticker pattern,
    the limits relative to equity, and the absolute caps where the config sets them."""
    guards: list[Guard] = [KillSwitch(kill_switch), SymbolPattern(), MaxOrderFraction(cfg.max_order_fraction),
                           MaxRunTurnover(cfg.max_run_turnover)]
    if cfg.max_order_notional is not None:
        guards.append(MaxOrderNotional(cfg.max_order_notional))
    if cfg.max_run_notional is not None:
        guards.append(MaxRunNotional(cfg.max_run_notional))
    return guards


def check_guards(guards: Sequence[Guard], orders: Sequence[PlannedOrder], equity: float) -> list[Refusal]:
    """Every refusal of every guard, in guard order (an empty list: the run may go ahead)."""
    return [r for g in guards for r in g.check(orders, equity)]


def describe_refusals(refusals: Sequence[Refusal]) -> str:
    """One sentence for all refusals: run-level ones in full, per-order ones grouped by rule
    ("execution.max_order_notional refuses 12 orders: NUE, EXR, ..."), every reason shown."""
    parts = [r.message for r in refusals if r.symbol is None]
    by_rule: dict[str, list[Refusal]] = {}
    for r in refusals:
        if r.symbol is not None:
            by_rule.setdefault(r.rule, []).append(r)
    for rule, group in by_rule.items():
        if len(group) == 1:
            parts.append(group[0].message)
        else:
            parts.append(f"{rule} refuses {len(group)} orders: {', '.join(r.symbol or '' for r in group)}")
    return "; ".join(parts)
