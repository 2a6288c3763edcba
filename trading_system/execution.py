"""The two-phase rebalance (DESIGN §7): sells, wait for fills, then buys from the cash there.

Every order has a deterministic client_order_id and is written to an append-only
journal before it is sent; an order the journal or the broker already knows is never
sent again.  Submissions are never retried blindly: after an error the order is looked
up by its client id.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Callable, Sequence

from .broker.base import Account, Broker, Order, OrderRequest
from .config import ExecutionConfig
from .errors import BrokerError, PrepError
from .orders import OrderPlan, PlannedOrder, fit_buys_to_cash, plan_orders


class Journal:
    """Append-only JSON-lines log of order intents and answers (``data/orders/<plan_id>.jsonl``).

    Each line is flushed and fsynced before the order it announces is sent.
    ``path=None`` keeps the journal in memory (dry runs write nothing).
    """

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None
        self.entries: list[dict] = []
        if self.path and self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    try:
                        self.entries.append(json.loads(line))
                    except json.JSONDecodeError:
                        break  # a torn last line from a crash: everything before it stands

    def append(self, event: str, **fields) -> None:
        entry = {"ts": dt.datetime.now(dt.timezone.utc).isoformat(), "event": event, **fields}
        self.entries.append(entry)
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(entry, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def intended(self, client_order_id: str) -> bool:
        """Whether an intent for this client id was ever written (sent, or maybe sent)."""
        return any(e["event"] == "intent" and e.get("client_order_id") == client_order_id for e in self.entries)


@dataclasses.dataclass
class OrderRecord:
    """What happened to one planned order, for the archive and the summary."""

    phase: str
    symbol: str
    side: str
    client_order_id: str
    qty: float | None
    notional: float | None
    close_position: bool
    status: str
    broker_order_id: str | None = None
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    canceled: bool = False
    error: str | None = None

    def update(self, order: Order) -> None:
        self.status, self.broker_order_id = order.status, order.id
        self.filled_qty, self.filled_avg_price = order.filled_qty, order.filled_avg_price
        if order.reject_reason and not self.error:
            self.error = order.reject_reason


@dataclasses.dataclass
class ExecutionReport:
    """The outcome of a rebalance: orders, drops, accounts before and after (dollars)."""

    orders: list[OrderRecord]
    skipped: list[tuple[str, float, str]]
    account_before: Account
    account_after: Account | None
    dry_run: bool

    @property
    def reached_targets(self) -> bool:
        """True when every order sent filled (or, in a dry run, would have been sent)."""
        return all(o.status in ("filled", "dry_run") and not o.error for o in self.orders)

    def to_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "reached_targets": self.reached_targets,
            "account_before": dataclasses.asdict(self.account_before),
            "account_after": dataclasses.asdict(self.account_after) if self.account_after else None,
            "orders": [dataclasses.asdict(o) for o in self.orders],
            "skipped": [{"symbol": s, "delta": round(d, 2), "reason": r} for s, d, r in self.skipped],
        }


def submit_once(broker: Broker, journal: Journal, planned: PlannedOrder, phase: str) -> OrderRecord:
    """Send one order unless it was sent before; never twice.

    If the journal holds an intent for its client id, the broker is asked for that order
    first and it is sent only when the broker has never seen it.  An error while sending
    is answered by a lookup, never by a blind resend.
    """
    req: OrderRequest = planned.request
    rec = OrderRecord(phase=phase, symbol=req.symbol, side=req.side, client_order_id=req.client_order_id,
                      qty=req.qty, notional=req.notional, close_position=req.close_position, status="planned")
    if journal.intended(req.client_order_id):
        existing = broker.get_order_by_client_id(req.client_order_id)
        if existing is not None:
            rec.update(existing)
            journal.append("found", client_order_id=req.client_order_id, status=existing.status)
            return rec
    journal.append("intent", client_order_id=req.client_order_id, symbol=req.symbol, side=req.side,
                   qty=req.qty, notional=req.notional, close_position=req.close_position)
    try:
        order = broker.submit_order(req)
    except PrepError as exc:
        found = broker.get_order_by_client_id(req.client_order_id)
        if found is not None:
            rec.update(found)
            journal.append("found", client_order_id=req.client_order_id, status=found.status)
            return rec
        rec.status, rec.error = "error", str(exc)
        journal.append("error", client_order_id=req.client_order_id, error=str(exc))
        return rec
    rec.update(order)
    journal.append("answer", client_order_id=req.client_order_id, broker_order_id=order.id, status=order.status)
    return rec


def wait_for_fills(broker: Broker, records: Sequence[OrderRecord], timeout: float, poll: float,
                   sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll the orders (one list request a round) until all are terminal or ``timeout`` seconds pass;
    then cancel what is left open and record it.  A deadline, never a fixed sleep."""
    live = [r for r in records if r.broker_order_id and r.status not in ("filled", "dry_run", "error")]
    deadline = time.monotonic() + timeout
    while live:
        by_cid = {o.client_order_id: o for o in broker.get_orders([r.client_order_id for r in live])}
        for r in live:
            if r.client_order_id in by_cid:
                r.update(by_cid[r.client_order_id])
        live = [r for r in live if r.client_order_id in by_cid and not by_cid[r.client_order_id].terminal]
        if not live or time.monotonic() >= deadline:
            break
        sleep(min(poll, max(deadline - time.monotonic(), 0.0)))
    for r in live:
        broker.cancel_order(r.broker_order_id)
        r.canceled = True
        r.error = r.error or f"not filled within {timeout:g} s; canceled with {r.filled_qty:g} shares filled"


def refresh(broker: Broker, records: Sequence[OrderRecord]) -> None:
    """Update the records' status and fills with one list request."""
    sent = [r for r in records if r.broker_order_id and r.status != "dry_run"]
    if sent:
        by_cid = {o.client_order_id: o for o in broker.get_orders([r.client_order_id for r in sent])}
        for r in sent:
            if r.client_order_id in by_cid:
                r.update(by_cid[r.client_order_id])


def rebalance(weights: dict[str, float], broker: Broker, cfg: ExecutionConfig, plan_id: str,
              journal: Journal, guards: Sequence, dry_run: bool) -> tuple[OrderPlan, ExecutionReport]:
    """Rebalance the account to ``weights`` in two phases.

    Raises:
        BrokerError: the account is blocked, or a guard refused the run (nothing was sent).
    """
    before = broker.get_account()
    if before.trading_blocked or before.account_blocked:
        raise BrokerError("the broker account is blocked from trading; nothing was sent. Check the account with the broker.")
    oplan = plan_orders(weights, before, broker.get_positions(), broker.get_open_orders(), cfg, plan_id)
    problems = [p for g in guards for p in g.check([*oplan.sells, *oplan.buys])]
    if problems:
        raise BrokerError(f"pre-trade check refused the run, nothing was sent: {problems[0]}"
                          + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    records = [submit_once(broker, journal, s, "sell") for s in oplan.sells]
    wait_for_fills(broker, records, cfg.sell_fill_timeout_seconds, cfg.poll_interval_seconds)
    after_sells = broker.get_account()
    available = after_sells.cash_available - cfg.cash_buffer * after_sells.equity
    buys, dropped = fit_buys_to_cash(oplan.buys, available, oplan.min_order)
    buy_records = [submit_once(broker, journal, b, "buy") for b in buys]
    refresh(broker, buy_records)  # buys are DAY orders: left to work, never canceled here
    records += buy_records
    after = broker.get_account()
    return oplan, ExecutionReport(orders=records, skipped=oplan.skipped + dropped, account_before=before,
                                  account_after=after, dry_run=dry_run)
