"""The send-once discipline (DESIGN §7 "Idempotency"): every intent in the journal is looked up
at the broker when a run starts (``recover``); an order the broker knows is never sent again;
an unknown outcome (timeout, dropped connection, 429, 5xx) is answered by a lookup by
client_order_id, never by a blind resend (``submit_once``).

A ``close_position`` order cannot carry our client_order_id (``DELETE /v2/positions/{sym}``
takes none, API-NOTES B2), so it is found again as the sell in that symbol, since the
session began, whose client id is not one of ours (``prep-...``; ``find_close``).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable, Mapping

from trading_system.broker.base import Broker, Order, OrderRejected, OrderRequest, OrderUncertain
from trading_system.errors import BrokerError
from trading_system.state.journal import Journal


def _is_ours(order: Order) -> bool:
    return order.client_order_id.startswith("prep-")


def find_close(broker: Broker, symbol: str, since: dt.datetime | None, taken: set[str]) -> Order | None:
    """The close_position sell in ``symbol`` since ``since`` that no journal line claims yet (one request)."""
    for o in broker.list_orders([symbol], after=since):
        if o.side == "sell" and not _is_ours(o) and o.id not in taken:
            return o
    return None


def lookup(broker: Broker, journal: Journal, cid: str, intent: Mapping, since: dt.datetime | None) -> Order | None:
    """The broker's order for one journal intent, or None if the broker never saw it."""
    if intent.get("close_position"):
        known = journal.broker_ids().get(cid)
        if known:
            found = [o for o in broker.list_orders([intent["symbol"]], after=since) if o.id == known]
            if found:
                return found[0]
        taken = set(journal.broker_ids().values())
        return find_close(broker, intent["symbol"], since, taken)
    return broker.get_order_by_client_id(cid)


def recover(broker: Broker, journal: Journal, since: dt.datetime | None) -> dict[str, Order | None]:
    """Look up every order the journal says was (maybe) sent: client id -> order, or None if absent.

    One list request covers the journal's symbols; only orders it does not show are looked
    up one by one (by client id), so an absence is always the broker's own answer.

    Raises:
        BrokerError: the broker could not be asked (nothing is sent then).
    """
    intents = journal.intents()
    if not intents:
        return {}
    symbols = sorted({i["symbol"] for i in intents.values() if i.get("symbol")})
    listed = broker.list_orders(symbols, after=since) if symbols else []
    by_cid = {o.client_order_id: o for o in listed}
    by_id = {o.id: o for o in listed}
    ids = journal.broker_ids()
    out: dict[str, Order | None] = {}
    for cid, intent in intents.items():
        order = by_cid.get(cid) or by_id.get(ids.get(cid, ""))
        if order is None:
            order = lookup(broker, journal, cid, intent, since)
        out[cid] = order
        if order is not None:
            journal.append("found", client_order_id=cid, broker_order_id=order.id, status=order.status,
                           filled_qty=order.filled_qty)
        else:
            journal.append("absent", client_order_id=cid)
    return out


def submit_once(broker: Broker, journal: Journal, request: OrderRequest, known: dict[str, Order | None],
                since: dt.datetime | None, attempts: int = 3, wait: float = 0.5,
                blocked: Callable[[], str | None] = lambda: None,
                sleep: Callable[[float], None] = time.sleep) -> tuple[Order | None, str | None, str | None]:
    """Send ``request`` (an ``OrderRequest``) unless the broker already has it; never twice.

    ``known`` is what ``recover`` found: an order there is adopted, not sent.  A send that
    fails uncertainly is followed by a lookup; only when the broker answers that it never
    saw the order is it sent again (at most ``attempts`` sends, ``wait`` s doubling between).
    ``blocked()`` returns a reason to send nothing (the kill switch), checked before each send.

    Returns (order, error kind, error message): the order, or None with why it is not placed.

    Raises:
        BrokerError: a lookup after an uncertain send failed too: the outcome is unknown,
            so the run stops (a rerun recovers it from the journal).
    """
    cid = request.client_order_id
    if known.get(cid) is not None:
        return known[cid], None, None
    fields = dict(client_order_id=cid, symbol=request.symbol, side=request.side, qty=request.qty,
                  notional=request.notional, close_position=request.close_position)
    last = ""
    for attempt in range(attempts):
        reason = blocked()
        if reason:
            journal.append("blocked", client_order_id=cid, reason=reason)
            return None, "kill_switch", reason
        journal.append("intent", **fields)
        try:
            order = broker.submit_order(request)
        except OrderRejected as exc:
            return _refused(broker, journal, fields, since, exc)
        except OrderUncertain as exc:
            last = str(exc)
            found = _after_uncertain(broker, journal, fields, since, last)
            if found is not None:
                return found, None, None
        else:
            journal.append("answer", client_order_id=cid, broker_order_id=order.id,
                           broker_client_order_id=order.client_order_id, status=order.status)
            return order, None, None
        if attempt + 1 < attempts:
            sleep(wait * 2 ** attempt)
    return None, "not_accepted", f"not accepted after {attempts} attempts ({last})"


def _refused(broker: Broker, journal: Journal, fields: dict[str, Any], since: dt.datetime | None,
             exc: OrderRejected) -> tuple[Order | None, str | None, str | None]:
    """``submit_once``'s answer to a refused send: the broker's order when the refusal says it
    is a duplicate and the lookup finds it, else (None, kind, message), journaled as an error."""
    cid = fields["client_order_id"]
    if exc.kind == "duplicate":
        found = lookup(broker, journal, cid, fields, since)
        if found is not None:
            journal.append("found", client_order_id=cid, broker_order_id=found.id, status=found.status)
            return found, None, None
    journal.append("error", client_order_id=cid, kind=exc.kind, status=exc.status, error=str(exc))
    return None, exc.kind, str(exc)


def _after_uncertain(broker: Broker, journal: Journal, fields: dict[str, Any], since: dt.datetime | None,
                     error: str) -> Order | None:
    """After a send whose outcome is unknown (``error``): the broker's order, or None when it
    answers that it never saw it (both journaled).

    Raises:
        BrokerError: the lookup failed too (the outcome stays unknown).
    """
    cid = fields["client_order_id"]
    journal.append("uncertain", client_order_id=cid, error=error)
    try:
        found = lookup(broker, journal, cid, fields, since)
    except BrokerError as err:
        raise BrokerError(f"order {cid} may have reached the broker ({error}) and the lookup failed "
                          f"too ({err}); run 'prep execute' again: the journal makes the rerun safe.") from None
    if found is not None:
        journal.append("found", client_order_id=cid, broker_order_id=found.id, status=found.status)
        return found
    journal.append("absent", client_order_id=cid)
    return None
