"""What each command prints: short summaries a trader wants to read (rich tables)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .pipeline import ExecuteResult, PrepareResult, ValidateResult


def _weights_line(weights: dict[str, float]) -> str:
    return ", ".join(f"{s} {w:.1%}" for s, w in weights.items()) or "(no names)"


def prepare(console: Console, r: PrepareResult) -> None:
    """Universe size, picks per bucket, each strategy's names and weights."""
    p, s = r.plan, r.plan.scan_summary
    console.print(f"[bold]prepare[/] scan of session {p.scan_session} for session {p.target_session} "
                  f"(opens {p.market_open_time:%Y-%m-%d %H:%M %Z}), data: {p.data_source}")
    console.print(f"universe {r.universe_size} symbols, {s.total_tickers_scanned} with bars, {s.eligible} eligible; "
                  f"picks (score >= {p.config['buckets']['min_score']:g}): CORE {s.core_picks}, "
                  f"SPEC {s.spec_picks}, ASYM {s.asym_picks}")
    table = Table(title="strategies", show_lines=False)
    table.add_column("strategy")
    table.add_column("names", justify="right")
    table.add_column("weights")
    for name, st in p.strategies.items():
        table.add_row(name, str(len(st.allocations)), _weights_line(st.allocations))
    console.print(table)
    for warning in r.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    if r.replaced_archive:
        console.print(f"--force: the plan it replaces was archived to {r.replaced_archive}")
    if r.expired_archive:
        console.print(f"the previous plan was never executed: archived as expired to {r.expired_archive}")
    console.print(f"plan {p.plan_id} written to {r.plan_path}" if r.written
                  else "[yellow]dry run:[/] nothing written")


def validate(console: Console, r: ValidateResult) -> None:
    """Each pick's evening and morning score, the rejections, the strategy chosen and why."""
    vr = r.plan.validation_results
    console.print(f"[bold]validate[/] plan {r.plan.plan_id} for session {r.plan.target_session}")
    table = Table(title="picks re-scored with pre-market prices")
    for col in ("symbol", "evening", "morning", "retention", "verdict", "price", "source"):
        table.add_column(col, justify="right" if col in ("evening", "morning", "retention", "price") else "left")
    for sym, c in sorted(vr.checks.items(), key=lambda kv: (kv[1].passed, kv[0])):
        table.add_row(sym, f"{c.original_score:.1f}",
                      "-" if c.current_score is None else f"{c.current_score:.1f}",
                      "-" if c.retention is None else f"{c.retention:.0%}",
                      "PASS" if c.passed else f"[red]REJECT[/] ({c.reason})",
                      "-" if c.price is None else f"{c.price:,.2f}", c.price_source or "-")
    console.print(table)
    for name, v in vr.validated_strategies.items():
        if name == "BUY_HOLD":
            continue
        tag = "" if v.contestant else " (not a contestant: too few names left)"
        console.print(f"{name}: validation rate {v.validation_rate:.0%}, rejected "
                      f"{', '.join(v.rejected_tickers) or 'none'}{tag}")
    console.print(f"selected [bold]{vr.selected_strategy}[/]: {vr.selection_reason}")
    console.print(f"weights: {_weights_line(vr.validated_strategies[vr.selected_strategy].validated_allocations)}")
    console.print(f"validation written to {r.plan_path}" if r.written else "[yellow]dry run:[/] nothing written")


def execute(console: Console, r: ExecuteResult) -> None:
    """The orders, what was skipped and why, the account before and after."""
    rep = r.report
    console.print(f"[bold]execute[/] {r.strategy} for session {r.plan.target_session}, plan {r.plan.plan_id}"
                  + (" [yellow](dry run: nothing sent)[/]" if rep.dry_run else ""))
    b = rep.account_before
    console.print(f"account before: equity ${b.equity:,.2f}, cash ${b.cash:,.2f}")
    table = Table(title="orders")
    for col in ("phase", "symbol", "side", "size", "status", "filled", "avg price", "client_order_id"):
        table.add_column(col, justify="right" if col in ("size", "filled", "avg price") else "left")
    for o in rep.orders:
        size = ("all" if o.close_position else f"{o.qty:g} sh" if o.qty is not None else f"${o.notional:,.2f}")
        status = o.status + (f" ({o.error})" if o.error else "") + (" [earlier run]" if o.earlier_run else "")
        table.add_row(o.phase, o.symbol, o.side, size, status, f"{o.filled_qty:.4f}",
                      "-" if o.filled_avg_price is None else f"{o.filled_avg_price:,.2f}", o.client_order_id)
    console.print(table)
    for sym, delta, why in rep.skipped:
        console.print(f"skipped {sym} (${delta:+,.2f}): {why}")
    if rep.account_after and not rep.dry_run:
        a = rep.account_after
        console.print(f"account after: equity ${a.equity:,.2f}, cash ${a.cash:,.2f}")
    if r.archive_path and r.plan_kept:
        console.print(f"archived to {r.archive_path}; the plan is kept: run 'prep execute' again to finish "
                      "(orders already sent are never sent twice)")
    elif r.archive_path:
        console.print(f"archived to {r.archive_path}; the plan is consumed")
    if rep.dry_run and not rep.reached_targets:
        console.print(f"[red]dry run:[/] {escape(rep.summary())}")
    elif not rep.reached_targets:
        console.print(f"[red]the account did not reach its targets:[/] {rep.summary()}", markup=True)


def universe(console: Console, uni, path) -> None:
    """The universe chain step by step, then the symbols."""
    console.print(f"[bold]universe[/] of session {uni.session}: {len(uni.symbols)} symbols, data: {uni.data_source}")
    for step in uni.steps:
        extra = (f" (skipped: {step['skipped']})" if "skipped" in step
                 else f", removed {len(step['removed'])}" if step.get("removed") is not None
                 else f", added {', '.join(step['added']) or 'none'}" if "added" in step else "")
        console.print(f"  {step['step']}: {step['count']}{extra}" + (f" ({step['detail']})" if "detail" in step else ""))
    console.print(" ".join(uni.symbols), soft_wrap=True)
    console.print(f"saved to {path}")
