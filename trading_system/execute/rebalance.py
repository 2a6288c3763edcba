"""The two-phase rebalance (DESIGN §7): sells, wait for fills, then buys from the cash there.

Every order has a deterministic client_order_id and is written to an append-only
journal (``journal.py``) before it is sent; on start every order the journal knows is
looked up, and an order the broker already has is never sent again.  Submissions are
never retried blindly: after an uncertain error the order is looked up by its client id.

Phase 1 sends every sell and polls them with ONE list request per ``poll_interval``
until all are filled or ``sell_fill_timeout`` passes, then cancels what is left (partial
fills recorded).  Phase 2 re-reads the account and sends the buys, largest first, scaled
so their sum never exceeds the cash there (``cash_available`` less the cash buffer);
assets that are not fractionable get whole shares.  The run reached its targets when a
fresh order plan against the final account has nothing left to send.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Callable, Mapping, Sequence

from trading_system.broker.base import TERMINAL_STATUSES, Account, Broker, Order
from trading_system.broker.dryrun import DryRunBroker
from trading_system.config import ExecutionConfig
from trading_system.errors import BrokerError
from trading_system.execute.orders import (
    Guard,
    KillSwitch,
    OrderPlan,
    PlannedOrder,
    Refusal,
    check_guards,
    describe_refusals,
    fit_buys_to_cash,
    plan_orders,
    whole_shares,
)
from trading_system.execute.send_once import recover, submit_once
from trading_system.state.journal import Journal  # noqa: F401  (part of this module's API)


@dataclasses.dataclass
class OrderRecord:
    """What happened to one order, for the archive and the summary.

    ``client_order_id`` is ours (the journal's key); a ``close_position`` order carries the
    broker's own client id, kept in ``broker_client_order_id``.  Quantities in shares,
    money in dollars; ``error_kind`` is e.g. ``buying_power``, ``wash_trade``,
    ``not_fractionable``, ``duplicate``, ``rejected``, ``kill_switch``.
    """

    phase: str
    symbol: str
    side: str
    client_order_id: str
    qty: float | None
    notional: float | None
    close_position: bool
    status: str
    broker_order_id: str | None = None
    broker_client_order_id: str | None = None
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    canceled: bool = False
    error_kind: str | None = None
    error: str | None = None
    earlier_run: bool = False

    @classmethod
    def planned(cls, phase: str, req) -> "OrderRecord":
        return cls(phase=phase, symbol=req.symbol, side=req.side, client_order_id=req.client_order_id,
                   qty=req.qty, notional=req.notional, close_position=req.close_position, status="planned")

    def update(self, order: Order) -> None:
        self.status, self.broker_order_id = order.status, order.id
        self.broker_client_order_id = order.client_order_id
        self.filled_qty, self.filled_avg_price = order.filled_qty, order.filled_avg_price
        if order.status == "rejected" and not self.error:
            self.error_kind, self.error = "rejected", order.reject_reason or "rejected by the broker"

    @property
    def open(self) -> bool:
        return self.broker_order_id is not None and self.status not in TERMINAL_STATUSES




@dataclasses.dataclass
class ExecutionReport:
    """The outcome of a rebalance: orders, drops, accounts before and after (dollars).

    ``residual`` lists (symbol, dollar delta) a fresh plan against the final account would
    still send: empty when the account reached its targets.  ``refusals``: in a dry run, what
    the pre-trade guards would refuse in a live run (a live run raises instead of sending).
    """

    orders: list[OrderRecord]
    skipped: list[tuple[str, float, str]]
    account_before: Account
    account_after: Account | None
    dry_run: bool
    residual: list[tuple[str, float]] = dataclasses.field(default_factory=list)
    broker: str = ""
    refusals: list[Refusal] = dataclasses.field(default_factory=list)

    @property
    def reached_targets(self) -> bool:
        """True when nothing is left to send and no order is still open (a dry run: nothing failed
        and no guard would refuse)."""
        if self.dry_run:
            return not self.refusals and all(o.status == "dry_run" and not o.error for o in self.orders)
        return not self.residual and not any(o.open for o in self.orders) and not any(
            o.error_kind and o.status != "filled" for o in self.orders if not o.earlier_run)

    def errors(self) -> dict[str, list[str]]:
        """Failed or unfilled orders by kind: {"buying_power": ["MSFT"], "unfilled": [...]}."""
        out: dict[str, list[str]] = {}
        for o in self.orders:
            if o.error_kind == "guard" or (o.earlier_run and not o.open):
                continue  # guards: told once, grouped by rule, in ``summary``; an earlier run's done order: its archive
            kind = o.error_kind or ("unfilled" if o.status not in ("filled", "dry_run") else None)
            if kind:
                out.setdefault(kind, []).append(o.symbol)
        return out

    def summary(self) -> str:
        """One sentence: why the account did not reach its targets."""
        parts = [f"{kind.replace('_', ' ')}: {', '.join(syms)}" for kind, syms in self.errors().items()]
        if self.refusals:
            parts.append("a live run would be refused by the pre-trade checks: " + describe_refusals(self.refusals))
        if self.residual:
            parts.append("still off target: " + ", ".join(f"{s} ${d:+,.2f}" for s, d in self.residual))
        return "; ".join(parts) or "no order failed"

    def to_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "broker": self.broker,
            "reached_targets": self.reached_targets,
            "account_before": dataclasses.asdict(self.account_before),
            "account_after": dataclasses.asdict(self.account_after) if self.account_after else None,
            "orders": [_fields(o) for o in self.orders],
            "skipped": [{"symbol": s, "delta": round(d, 2), "reason": r} for s, d, r in self.skipped],
            "residual": [{"symbol": s, "delta": round(d, 2)} for s, d in self.residual],
            "refusals": [dataclasses.asdict(r) for r in self.refusals],
        }


def _fields(record: OrderRecord) -> dict:
    """``dataclasses.asdict`` of a record (its fields are all scalars), without the deep copy."""
    return {f: getattr(record, f) for f in _RECORD_FIELDS}


_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(OrderRecord))


def poll(broker: Broker, records: Sequence[OrderRecord], since: dt.datetime | None) -> None:
    """Update the records' status and fills with ONE list request (matched by broker order id)."""
    sent = [r for r in records if r.broker_order_id and r.status != "dry_run"]
    if sent:
        by_id = {o.id: o for o in broker.list_orders(sorted({r.symbol for r in sent}), after=since)}
        for r in sent:
            if r.broker_order_id in by_id:
                r.update(by_id[r.broker_order_id])


def wait_for_fills(broker: Broker, records: Sequence[OrderRecord], timeout: float, interval: float,
                   since: dt.datetime | None = None, cancel: bool = True, journal: Journal | None = None,
                   sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll (one list request per ``interval`` s) until every record is terminal or ``timeout`` s pass.

    With ``cancel``, what is still open then is canceled, polled once more and recorded
    (status, the fills it got, ``canceled``).  A deadline, never a fixed sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        poll(broker, records, since)
        live = [r for r in records if r.open]
        if not live or time.monotonic() >= deadline:
            break
        sleep(min(interval, max(deadline - time.monotonic(), 0.0)))
    if not cancel or not live:
        return
    for r in live:
        if r.broker_order_id is not None:  # always: an open record has one
            broker.cancel_order(r.broker_order_id)
    poll(broker, live, since)  # a cancel races with fills: record what really filled
    for r in live:
        r.canceled = r.status != "filled"
        if r.canceled:
            r.error_kind = "unfilled"
            r.error = f"not filled within {timeout:g} s; canceled with {r.filled_qty:g} shares filled"
        if journal is not None:
            journal.append("canceled", client_order_id=r.client_order_id, broker_order_id=r.broker_order_id,
                           status=r.status, filled_qty=r.filled_qty)


def _mark_refused(records: Sequence[OrderRecord], refusals: Sequence[Refusal]) -> None:
    """Dry run: mark each order a guard would refuse in a live run (kind ``guard``)."""
    by_symbol: dict[str, list[str]] = {}
    for r in refusals:
        if r.symbol is not None:
            by_symbol.setdefault(r.symbol, []).append(r.rule)
    for rec in records:
        if rec.symbol in by_symbol and not rec.error:
            rec.error_kind, rec.error = "guard", "REFUSED by " + ", ".join(by_symbol[rec.symbol])


def follow_up_ids(planned: Sequence[PlannedOrder], known: Mapping[str, Order | None]) -> list[PlannedOrder]:
    """Give an order whose client_order_id an earlier run of the same plan already used, and
    which is now terminal, the next id of its series: ``<id>-2``, ``<id>-3``, ...

    Why: ids are deterministic (plan, phase, symbol) so a crash or a rerun finds what was
    sent instead of sending it twice.  But a rerun that must finish the job (a sell refused
    after three 500s, a buy scaled down for cash) plans a fresh delta for a symbol whose
    first order is done; reusing its id would only adopt the finished order.  A terminal
    order's fills are already in the positions the fresh plan was computed from, so the
    follow-up order is for what is still missing.  An order still open keeps its id (it is
    adopted, and its remainder counts as an open order in the plan).  The series is
    deterministic too, so a crash during a rerun is recovered the same way.
    """
    out = []
    for p in planned:
        cid, n = p.request.client_order_id, 1
        while (order := known.get(cid)) is not None and order.terminal:
            n += 1
            cid = f"{p.request.client_order_id}-{n}"
        if cid != p.request.client_order_id:
            if len(cid) > 48:
                raise BrokerError(f"client_order_id {cid} would be longer than 48 characters; nothing more is sent.")
            p = dataclasses.replace(p, request=dataclasses.replace(p.request, client_order_id=cid))
        out.append(p)
    return out


def _kill_check(kill: Sequence[KillSwitch], planned: PlannedOrder) -> Callable[[], str | None]:
    """``submit_once``'s ``blocked``: the kill switch's reason to send nothing of ``planned``, or None."""
    return lambda: next((str(m) for g in kill for m in g.check([planned])), None)


def _send(broker: Broker, journal: Journal, planned: Sequence[PlannedOrder], phase: str,
          known: dict[str, Order | None], since: dt.datetime | None, guards: Sequence[Guard]) -> list[OrderRecord]:
    kill = [g for g in guards if isinstance(g, KillSwitch)]
    attempts, wait = broker.submit_attempts, broker.retry_wait
    out = []
    for p in planned:
        rec = OrderRecord.planned(phase, p.request)
        order, kind, error = submit_once(
            broker, journal, p.request, known, since, attempts, wait,
            blocked=_kill_check(kill, p))
        if order is not None:
            rec.update(order)
            rec.earlier_run = known.get(p.request.client_order_id) is not None
        else:
            rec.status, rec.error_kind, rec.error = "error", kind, error
        out.append(rec)
    return out


def _earlier(known: Mapping[str, Order | None], journal: Journal, records: Sequence[OrderRecord]) -> list[OrderRecord]:
    """Records of orders an earlier run sent that this run's plan does not name again."""
    mine = {r.client_order_id for r in records}
    intents = journal.intents()
    out = []
    for cid, order in known.items():
        if order is None or cid in mine:
            continue
        i = intents[cid]
        side = i.get("side") or order.side
        rec = OrderRecord(phase=side, symbol=i.get("symbol") or order.symbol, side=side,
                          client_order_id=cid, qty=i.get("qty"), notional=i.get("notional"),
                          close_position=bool(i.get("close_position")), status="planned", earlier_run=True)
        rec.update(order)
        out.append(rec)
    return out


def rebalance(weights: dict[str, float], broker: Broker, cfg: ExecutionConfig, plan_id: str,
              journal: Journal, guards: Sequence[Guard], prices: Mapping[str, float] | None = None,
              since: dt.datetime | None = None,
              market_open: Callable[[], bool] = lambda: True) -> tuple[OrderPlan, ExecutionReport]:
    """Rebalance the account to ``weights`` (fractions) in two phases; see the module docstring.

    ``prices`` (dollars, e.g. the morning's validated prices) size whole-share buys of
    assets that are not fractionable; ``since`` (tz-aware) bounds order lookups to the session.
    ``market_open()`` is asked before the buys: after the close they are not sent (Alpaca would
    queue a DAY order for the next session's open).  A dry run is a ``DryRunBroker``: there is
    no flag of its own, so "dry" can never be paired with a broker that sends.

    Raises:
        BrokerError: the account is blocked, a guard refused the run (nothing was sent; a dry
            run goes on and marks what would be refused, see ``ExecutionReport.refusals``), or
            the broker could not be asked whether an order landed (the journal keeps the state).
    """
    dry_run = isinstance(broker, DryRunBroker)  # the dry run IS the broker: nothing else can send
    before = broker.get_account()
    if before.trading_blocked or before.account_blocked:
        raise BrokerError("the broker account is blocked from trading; nothing was sent. "
                          "Check the account with the broker.")
    known = recover(broker, journal, since)
    positions = broker.get_positions()
    oplan = plan_orders(weights, before, positions, broker.get_open_orders(), cfg, plan_id, prices)
    oplan = dataclasses.replace(oplan, sells=follow_up_ids(oplan.sells, known), buys=follow_up_ids(oplan.buys, known))
    problems = check_guards(guards, [*oplan.sells, *oplan.buys], before.equity)
    if problems and not dry_run:
        raise BrokerError("pre-trade check refused the run, nothing was sent: " + describe_refusals(problems))
    px = {**{s: p.price for s, p in positions.items()}, **(prices or {})}
    sized = [p.request.symbol for p in [*oplan.sells, *oplan.buys] if not p.request.close_position]
    frac = broker.fractionable(sized) if sized else {}
    sells, dropped_sells = whole_shares(oplan.sells, frac, px)
    records = _send(broker, journal, sells, "sell", known, since, guards)
    records += [r for r in _earlier(known, journal, records) if r.side == "sell"]
    wait_for_fills(broker, records, cfg.sell_fill_timeout_seconds, cfg.poll_interval_seconds, since,
                   cancel=True, journal=journal)
    buys, dropped_buys = _buys_to_send(broker, oplan, cfg, frac, px, market_open)
    buy_records = _send(broker, journal, buys, "buy", known, since, guards)
    buy_records += [r for r in _earlier(known, journal, [*records, *buy_records]) if r.side == "buy"]
    # Buys are DAY market orders: waited for, never canceled here.
    wait_for_fills(broker, buy_records, cfg.sell_fill_timeout_seconds, cfg.poll_interval_seconds, since, cancel=False)
    records += buy_records
    _mark_refused(records, problems)
    after = broker.get_account()
    residual = []
    if not dry_run:
        final = plan_orders(weights, after, broker.get_positions(), broker.get_open_orders(), cfg, plan_id, prices)
        residual = [(p.request.symbol, round(p.delta, 2)) for p in [*final.sells, *final.buys]]
    journal.append("done", orders=len(records), residual=len(residual))
    report = ExecutionReport(orders=records, skipped=oplan.skipped + dropped_sells + dropped_buys,
                             account_before=before, account_after=after, dry_run=dry_run, residual=residual,
                             broker=broker.name, refusals=problems)
    return oplan, report


def _buys_to_send(broker: Broker, oplan: OrderPlan, cfg: ExecutionConfig, fractionable: Mapping[str, bool],
                  prices: Mapping[str, float],
                  market_open: Callable[[], bool]) -> tuple[list[PlannedOrder], list[tuple[str, float, str]]]:
    """Phase 2's buys: fitted to the cash after the sells (less the buffer), whole shares where the
    asset is not fractionable, none once the market has closed.  Returns (buys, dropped as
    (symbol, dollar delta, reason))."""
    after_sells = broker.get_account()
    available = after_sells.cash_available - cfg.cash_buffer * after_sells.equity
    buys, dropped = fit_buys_to_cash(oplan.buys, available, oplan.min_order)
    buys, dropped_buys = whole_shares(buys, fractionable, prices)
    if buys and not market_open():
        dropped_buys += [(b.request.symbol, b.delta, "not sent: the market closed before the buys (a DAY order "
                          "would queue for the next session)") for b in buys]
        buys = []
    return buys, dropped + dropped_buys
