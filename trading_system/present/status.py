"""What ``prep status`` prints (``trading_system.review.status`` computes it), top to bottom: the kill
switch in red, the pending plan, the newest archives, the market, the broker and its positions."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trading_system.review.status import Status


def _plan_lines(console: Console, s: Status) -> None:
    """The pending plan and its stage, then the newest archives (newest last)."""
    if s.plan_error is not None:
        console.print(f"pending plan: [red]unreadable[/]: {escape(s.plan_error)}")
    elif s.plan is None:
        console.print(f"pending plan: none ({s.plan_path})", markup=False)
    else:
        vr = s.plan.validation_results
        stage = s.plan.stage + (f", selected {vr.selected_strategy}" if vr else "")
        console.print(f"pending plan: {s.plan.plan_id} for session {s.plan.target_session} ({stage}), "
                      f"prepared {s.plan.preparation_time:%Y-%m-%d %H:%M %Z}", markup=False)
    console.print(f"archived plans: the last {len(s.archives)} (newest last; 'prep history' lists all)"
                  if s.archives else "archived plans: none")
    for run in s.archives:
        if run.unreadable:
            console.print(f"  {escape(run.file)}: [red]unreadable[/]")
        else:
            console.print(f"  session {run.session}  plan {run.plan_id}  {run.status}, "
                          f"{run.strategy}, {run.orders} orders", markup=False)


def positions_table(positions: dict, cash: float, equity: float) -> Table:
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


def status(console: Console, s: Status) -> None:
    """Print the kill switch (if on), the pending plan's stage, the archives, the market, and the
    broker's account with its positions (or why it could not be reached)."""
    if s.kill_switch is not None:
        console.print(f"[bold red]KILL SWITCH ON[/]: {escape(str(s.kill_switch))} exists, so no order is sent "
                      "(execute stops); delete the file to trade again.")
    _plan_lines(console, s)
    console.print(s.market)
    if s.broker_error is not None or s.account is None:
        console.print(f"broker {s.broker_kind}: [red]not reachable[/]: {escape(s.broker_error or '')}")
        return
    console.print(f"broker {s.broker_kind}: reachable")
    console.print(f"equity ${s.account.equity:,.2f}, cash ${s.account.cash:,.2f}, {s.valued}", markup=False)
    if s.positions:
        console.print(positions_table(s.positions, s.account.cash, s.account.equity))
    else:
        console.print("positions: none (all cash)")
