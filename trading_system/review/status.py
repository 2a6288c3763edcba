"""``prep status``: the kill switch, what is pending, the last archived runs, the market, the account.

What it prints, top to bottom:

- a kill switch file (``paths.kill_switch``) that exists, first and in red: no order goes out while it is there;
- the pending plan and its stage; the newest archives;
- the market: open now (and until when), or the next session to open;
- the broker: reachable or not, equity and cash, *when* the equity is valued (the simulated broker
  prices at the open of a session, the one named; Alpaca's figures are its own, now), and the
  positions (shares, market value in dollars, weight of equity).
"""

from __future__ import annotations

import datetime as dt
import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trading_system import sessions
from trading_system.config import Config
from trading_system.errors import PrepError
from trading_system.runtime import make_broker
from trading_system.state.plan import load_plan


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


def _plan_lines(cfg: Config, console: Console, last: int) -> None:
    plan_path = cfg.path(cfg.paths.plan)
    try:
        plan = load_plan(plan_path)
        if plan is None:
            console.print(f"pending plan: none ({plan_path})", markup=False)
        else:
            vr = plan.validation_results
            stage = plan.stage + (f", selected {vr.selected_strategy}" if vr else "")
            console.print(f"pending plan: {plan.plan_id} for session {plan.target_session} ({stage}), "
                          f"prepared {plan.preparation_time:%Y-%m-%d %H:%M %Z}", markup=False)
    except PrepError as exc:
        console.print(f"pending plan: [red]unreadable[/]: {escape(str(exc))}")
    archives = sorted(cfg.path(cfg.paths.archive_dir).glob("pending_trades_*.json"))[-last:]
    console.print(f"archived plans: the last {len(archives)} (newest last; 'prep history' lists all)"
                  if archives else "archived plans: none")
    for path in archives:
        try:
            doc = json.loads(path.read_text())
            plan_doc = doc["plan"]
            vr = plan_doc.get("validation_results") or {}
            console.print(f"  session {plan_doc['target_session']}  plan {plan_doc['plan_id']}  {doc['status']}, "
                          f"{vr.get('selected_strategy', '-')}, {vr.get('orders_executed', 0)} orders", markup=False)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            console.print(f"  {escape(path.name)}: [red]unreadable[/]")


def _positions_table(positions: dict, cash: float, equity: float) -> Table:
    """Symbol, shares, market value ($) and weight of equity, largest first; cash last."""
    table = Table(title="positions")
    table.add_column("symbol")
    for col in ("shares", "market value", "weight"):
        table.add_column(col, justify="right", no_wrap=True, overflow="fold")

    def weight(value: float) -> str:
        return f"{value / equity:.1%}" if equity > 0 else "-"

    for p in sorted(positions.values(), key=lambda p: (-p.market_value, p.symbol)):
        table.add_row(p.symbol, f"{p.qty:,.4f}", f"${p.market_value:,.2f}", weight(p.market_value))
    table.add_section()
    table.add_row("cash", "", f"${cash:,.2f}", weight(cash))
    return table


def run_status(cfg: Config, clock: sessions.Clock, console: Console, last: int = 5, live: bool = False) -> None:
    """Print the kill switch (if on), the pending plan's stage, the ``last`` archives, the market, and the
    broker's account with its positions.

    A corrupt plan or an unreachable broker is reported on its line, not raised.
    """
    now = clock.now()
    kill = cfg.path(cfg.paths.kill_switch)
    if kill.exists():
        console.print(f"[bold red]KILL SWITCH ON[/]: {escape(str(kill))} exists, so no order is sent "
                      "(execute stops); delete the file to trade again.")
    _plan_lines(cfg, console, last)
    line, valued = market_line(now)
    console.print(line)
    try:
        broker = make_broker(cfg, valued, dry_run=True, live=live)
        account = broker.get_account()
        positions = broker.get_positions()
    except PrepError as exc:
        console.print(f"broker {cfg.broker.kind}: [red]not reachable[/]: {escape(str(exc))}")
        return
    if cfg.broker.kind == "simulated":
        when = f"valued at the opening prices of session {valued}"
    else:
        when = "valued now, by the broker" + (" (--as-of does not apply to a real account)" if clock.frozen else "")
    console.print(f"broker {cfg.broker.kind}: reachable")
    console.print(f"equity ${account.equity:,.2f}, cash ${account.cash:,.2f}, {when}", markup=False)
    if positions:
        console.print(_positions_table(positions, account.cash, account.equity))
    else:
        console.print("positions: none (all cash)")
