"""``prep status``: the kill switch, what is pending, the last archived runs, the market, the account.

``status`` computes a ``Status`` (nothing printed); ``trading_system.present.status`` prints it, top to bottom:

- a kill switch file (``paths.kill_switch``) that exists, first and in red: no order goes out while it is there;
- the pending plan and its stage; the newest archives;
- the market: open now (and until when), or the next session to open;
- the broker: reachable or not, equity and cash, *when* the equity is valued (the simulated broker
  prices at the open of a session, the one named; Alpaca's figures are its own, now), and the
  positions (shares, market value in dollars, weight of equity).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

from trading_system import sessions
from trading_system.broker.base import Account, Position
from trading_system.config import Config
from trading_system.errors import PrepError
from trading_system.runtime import make_broker
from trading_system.state.plan import Plan, load_plan


def market_line(now: dt.datetime) -> tuple[str, dt.date]:
    """(one line on the market at ``now``, the session the simulated broker values the account at).

    The valuation session is the latest session that has opened by ``now`` (its opening prices are
    known); the line names the session open now, or else the next session to open (after the
    close of a Friday: the Monday).
    """
    today = now.astimezone(sessions.ET).date()
    if sessions.is_session(today) and now < sessions.session_open(today):
        opens = sessions.session_open(today)
        return f"market closed; next session {today} opens {opens:%H:%M} ET today", sessions.previous_session(today)
    if sessions.is_session(today) and now < sessions.session_close(today):
        nxt = sessions.next_session(today)
        return (f"market open: session {today} closes {sessions.session_close(today):%H:%M} ET; "
                f"next session {nxt}"), today
    nxt = sessions.next_session(today)
    valued = today if sessions.is_session(today) else sessions.previous_session(today)
    return f"market closed; next session {nxt} opens {sessions.session_open(nxt):%a %H:%M} ET", valued


@dataclasses.dataclass
class ArchivedRun:
    """One of the newest archives, as ``status`` lists it; ``unreadable`` when it could not be read."""

    file: str
    session: str = "-"
    plan_id: str = "-"
    status: str = "-"
    strategy: str = "-"
    orders: int = 0
    unreadable: bool = False


@dataclasses.dataclass
class Status:
    """What ``prep status`` found.  ``plan_error``: why the pending plan could not be read;
    ``broker_error``: why the broker could not be reached (then no account, no positions)."""

    kill_switch: Path | None
    plan_path: Path
    plan: Plan | None
    plan_error: str | None
    archives: list[ArchivedRun]
    market: str
    broker_kind: str
    broker_error: str | None = None
    account: Account | None = None
    positions: dict[str, Position] = dataclasses.field(default_factory=dict)
    valued: str = ""


def _pending(cfg: Config) -> tuple[Path, Plan | None, str | None]:
    """(the plan file, its plan or None, why it is unreadable or None)."""
    plan_path = cfg.path(cfg.paths.plan)
    try:
        return plan_path, load_plan(plan_path), None
    except PrepError as exc:
        return plan_path, None, str(exc)


def _archived_runs(cfg: Config, last: int) -> list[ArchivedRun]:
    """The ``last`` archives, newest last; an unreadable one is a row too."""
    runs = []
    for path in sorted(cfg.path(cfg.paths.archive_dir).glob("pending_trades_*.json"))[-last:]:
        try:
            doc = json.loads(path.read_text())
            plan_doc = doc["plan"]
            vr = plan_doc.get("validation_results") or {}
            runs.append(ArchivedRun(path.name, str(plan_doc["target_session"]), str(plan_doc["plan_id"]),
                                    str(doc["status"]), str(vr.get("selected_strategy", "-")),
                                    vr.get("orders_executed", 0)))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            runs.append(ArchivedRun(path.name, unreadable=True))
    return runs


def status(cfg: Config, clock: sessions.Clock, last: int = 5, live: bool = False) -> Status:
    """The kill switch (if on), the pending plan, the ``last`` archives, the market, and the broker's
    account with its positions.

    A corrupt plan or an unreachable broker is recorded in the result, not raised.
    """
    now = clock.now()
    kill = cfg.path(cfg.paths.kill_switch)
    plan_path, plan, plan_error = _pending(cfg)
    line, valued = market_line(now)
    result = Status(kill if kill.exists() else None, plan_path, plan, plan_error, _archived_runs(cfg, last), line,
                    cfg.broker.kind)
    try:
        broker = make_broker(cfg, valued, dry_run=True, live=live)
        result.account = broker.get_account()
        result.positions = broker.get_positions()
    except PrepError as exc:
        result.broker_error = str(exc)
        return result
    if cfg.broker.kind == "simulated":
        result.valued = f"valued at the opening prices of session {valued}"
    else:
        result.valued = "valued now, by the broker" + (" (--as-of does not apply to a real account)"
                                                       if clock.frozen else "")
    return result
