"""The pending plan of a morning: the plan file for today's session, or why there is nothing to do.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from trading_system import sessions
from trading_system.config import Config
from trading_system.errors import NothingToDo, PlanError
from trading_system.state.plan import (
    Plan,
    load_plan,
)

log = logging.getLogger(__name__)

def _executed_archive(cfg: Config, session: dt.date, newest: int = 20):
    """The newest archive (of the last ``newest``) of a plan executed for ``session``, or None."""
    folder = cfg.path(cfg.paths.archive_dir)
    for path in sorted(folder.glob("pending_trades_*.json"), reverse=True)[:newest]:
        try:
            doc = json.loads(path.read_text())
            if doc.get("status") == "executed" and doc["plan"]["target_session"] == str(session):
                return path
        except (OSError, ValueError, KeyError, TypeError):
            continue  # an unreadable archive is history's business, not this run's
    return None


def morning_plan(cfg: Config, clock: sessions.Clock) -> tuple[Plan, dt.date]:
    """The pending plan and today's session, if today is the session it was made for.

    Raises:
        NothingToDo: no plan, or today is not a session (the plan is kept).
        PlanError: the plan is corrupt or was prepared for another session.
    """
    plan_path = cfg.path(cfg.paths.plan)
    plan = load_plan(plan_path)
    today = clock.now().date()
    if plan is None:
        done = _executed_archive(cfg, today)
        if done is not None:
            raise NothingToDo(f"the plan for session {today} was already executed; its archive is {done}.")
        raise NothingToDo(f"no pending plan ({plan_path}); nothing to do.")
    if not sessions.is_session(today):
        raise NothingToDo(f"{today} is not a trading session; the plan for {plan.target_session} is kept.")
    if plan.target_session != today:
        raise PlanError(f"{plan_path} was prepared for session {plan.target_session}, not today's session "
                        f"{today}; it is stale: run 'prep prepare' to replace it.")
    return plan, today
