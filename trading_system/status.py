"""``prep status``: what is pending, its stage, the last archived runs, broker connectivity."""

from __future__ import annotations

import json

from rich.console import Console

from . import sessions
from .config import Config
from .errors import PrepError
from .plan import load_plan
from .runtime import make_broker


def run_status(cfg: Config, clock: sessions.Clock, console: Console, last: int = 5) -> None:
    """Print the pending plan's stage, the ``last`` archives and the broker's account.

    A corrupt plan or an unreachable broker is reported on its line, not raised.
    """
    now = clock.now()
    plan_path = cfg.path(cfg.paths.plan)
    try:
        plan = load_plan(plan_path)
        if plan is None:
            console.print(f"pending plan: none ({plan_path})")
        else:
            vr = plan.validation_results
            stage = plan.stage + (f", selected {vr.selected_strategy}" if vr else "")
            console.print(f"pending plan: {plan.plan_id} for session {plan.target_session} ({stage}), "
                          f"prepared {plan.preparation_time:%Y-%m-%d %H:%M %Z}")
    except PrepError as exc:
        console.print(f"pending plan: [red]unreadable[/]: {exc}")
    archives = sorted(cfg.path(cfg.paths.archive_dir).glob("pending_trades_*.json"))[-last:]
    console.print(f"archived plans: {len(archives)} shown (newest last)" if archives else "archived plans: none")
    for path in archives:
        try:
            doc = json.loads(path.read_text())
            vr = doc["plan"].get("validation_results") or {}
            console.print(f"  {path.name}: {doc['status']}, session {doc['plan']['target_session']}, "
                          f"{vr.get('selected_strategy', '-')}, orders {vr.get('orders_executed', 0)}")
        except (ValueError, KeyError, TypeError):
            console.print(f"  {path.name}: [red]unreadable[/]")
    today = now.date()
    session = today if sessions.is_session(today) else sessions.next_session(today)
    console.print(f"next session: {session} opens {sessions.session_open(session):%H:%M} ET")
    try:
        account = make_broker(cfg, session, dry_run=True).get_account()
        console.print(f"broker {cfg.broker.kind}: reachable, equity ${account.equity:,.2f}, cash ${account.cash:,.2f}")
    except PrepError as exc:
        console.print(f"broker {cfg.broker.kind}: [red]not reachable[/]: {exc}")
