"""What each command prints: short summaries a trader wants to read (rich tables)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trading_system.execute.orders import client_order_id
from trading_system.execute.run import ExecuteResult
from trading_system.prepare.run import PrepareResult
from trading_system.prepare.strategies import cap_note
from trading_system.validate.gate import percent_of
from trading_system.validate.run import ValidateResult
from trading_system.vocabulary import StrategyName


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
    scanners_summary(console, r)
    context_summary(console, r.plan)
    cap = (p.config.get("strategies") or {}).get("weight_cap")
    for name, st in p.strategies.items():
        note = st.note or (cap_note(name, len(st.allocations), cap) if cap and name != StrategyName.BUY_HOLD else None)
        if note:
            console.print(f"[yellow]note:[/] {escape(note)}")
    for warning in r.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    if r.replaced_archive:
        console.print(f"--force: the plan it replaces was archived to {r.replaced_archive}")
    if r.expired_archive:
        console.print(f"the previous plan was never executed: archived as expired to {r.expired_archive}")
    console.print(f"plan {p.plan_id} written to {r.plan_path}" if r.written
                  else "[yellow]dry run:[/] nothing written")


def scanners_summary(console: Console, r: PrepareResult) -> None:
    """Per evening scanner: its finds, how many joined the universe and how many made it into a strategy;
    then each scanner problem on one line.  Nothing when no scanner is configured."""
    rec = r.plan.scanners
    if rec is None:
        return
    in_strategy = {s for name, st in r.plan.strategies.items() if name != StrategyName.BUY_HOLD
                   for s in st.allocations}
    added = set(rec.added)
    for run in rec.evening:
        if run.disabled or run.error:
            state = "disabled" if run.disabled else "failed"
            console.print(f"scanner {run.name}: [red]{state}[/]")
            continue
        found = set(run.symbols)
        into = sorted(found & in_strategy)
        console.print(f"scanner {run.name} ({run.action}): {run.found} found"
                      + (f", {len(found & added)} new to the universe" if run.action == "add" else "")
                      + f", {len(into)} in a strategy" + (f" ({', '.join(into)})" if into else "")
                      + (" (skipped)" if run.skipped else ""))
    for line in r.scanner_lines:
        console.print(f"[yellow]scanner:[/] {escape(line)}")


def context_summary(console: Console, plan) -> None:
    """The regime in one line, the earnings gate in one or two, then each pick's levels (dollars per
    share; the risk at the largest weight a strategy gives it, as dollars per $100,000 of equity)."""
    from trading_system.prepare.context.build import regime_line

    ctx = plan.context
    if ctx is None:
        return
    console.print(escape(regime_line(ctx.regime)))
    ev = ctx.events
    if ev.status != "ok":
        console.print(f"earnings gate: {ev.status}" + (f" ({escape(ev.note)})" if ev.note else ""))
    else:
        when = {e.symbol: e.date for e in ev.events}
        removed = ", ".join(f"{s} {when[s]:%m-%d}" if s in when else s for s in sorted(ev.removed))
        console.print(f"earnings gate ({escape(ev.source or '')}, sessions {ev.window[0]} to {ev.window[-1]}): "
                      f"removed {removed or 'none'}; {len(ev.unknown)} scored names not covered by the provider")
    if not ctx.levels:
        return
    table = Table(title="levels of the picks (dollars per share)")
    for col in ("symbol", "entry", "ATR", "invalidation", "1R", "2R", "risk $/100k"):
        table.add_column(col, justify="left" if col == "symbol" else "right")
    for sym, lv in sorted(ctx.levels.items()):
        risk = max(lv.account_risk.values(), default=0.0) * 100_000
        table.add_row(sym, f"{lv.entry:,.2f}", f"{lv.atr:,.2f}", f"{lv.invalidation:,.2f}", f"{lv.target_1r:,.2f}",
                      f"{lv.target_2r:,.2f}", f"{risk:,.0f}")
    console.print(table)


def retention_text(check, threshold: float | None) -> str:
    """A pick's retention with one decimal; a rejected one next to its threshold never reads as equal to it."""
    if check.retention is None:
        return "-"
    return percent_of(check.retention, None if check.passed else threshold)


def validate(console: Console, r: ValidateResult) -> None:
    """Each pick's evening and morning score, the rejections, the strategy chosen and why.

    The price source is a column only when the picks' prices came from more than one source.
    """
    vr = r.plan.validation_results
    assert vr is not None  # run_validate returns its plan with validation_results set (dry run included)
    threshold = (r.plan.config.get("validation") or {}).get("retention_threshold")
    min_rate = (r.plan.config.get("validation") or {}).get("min_validation_rate")
    console.print(f"[bold]validate[/] plan {r.plan.plan_id} for session {r.plan.target_session}")
    sources = sorted({c.price_source or "-" for c in vr.checks.values()})
    table = Table(title="picks re-scored with pre-market prices")
    cols = ("symbol", "evening", "morning", "retention", "verdict", "price") + (("source",) if len(sources) > 1 else ())
    for col in cols:
        number = col in ("evening", "morning", "retention", "price")
        table.add_column(col, justify="right" if number else "left", no_wrap=number or col == "symbol",
                         overflow="fold")
    for sym, c in sorted(vr.checks.items(), key=lambda kv: (kv[1].passed, kv[0])):
        row = [sym, f"{c.original_score:.1f}", "-" if c.current_score is None else f"{c.current_score:.1f}",
               retention_text(c, threshold), "PASS" if c.passed else f"[red]REJECT[/] ({escape(c.reason)})",
               "-" if c.price is None else f"{c.price:,.2f}"]
        table.add_row(*row, *((c.price_source or "-",) if len(sources) > 1 else ()))
    console.print(table)
    if len(sources) == 1:
        console.print(f"pre-market prices: {escape(sources[0])}")
    for name, v in vr.validated_strategies.items():
        if name == StrategyName.BUY_HOLD:
            continue
        rate = percent_of(v.validation_rate, min_rate)
        tag = "" if v.contestant else " (not a contestant: too few names left)"
        console.print(f"{name}: validation rate {rate}, rejected {', '.join(v.rejected_tickers) or 'none'}{tag}")
    if r.plan.scanners is not None and r.plan.scanners.vetoed:
        console.print(f"vetoed by morning scanners: {', '.join(sorted(r.plan.scanners.vetoed))}")
    for line in r.scanner_lines:
        console.print(f"[yellow]scanner:[/] {escape(line)}")
    console.print(f"selected [bold]{vr.selected_strategy}[/]: {escape(vr.selection_reason)}")
    console.print(f"weights: {_weights_line(vr.validated_strategies[vr.selected_strategy].validated_allocations)}"
                  + (f" (scaled to {vr.exposure:.0%} exposure by the regime; the rest stays in cash)"
                     if vr.exposure < 1.0 else ""))
    console.print(f"validation written to {r.plan_path}" if r.written else "[yellow]dry run:[/] nothing written")


def execute_totals(rep) -> str:
    """One line of totals in dollars: bought, sold, turnover (bought + sold over the equity before, the
    measure ``execution.max_run_turnover`` limits) and the cash left.  Orders an earlier run sent are
    left out (their run counted them); a dry run totals what it would send."""
    mine = [o for o in rep.orders if not o.earlier_run]
    equity = rep.account_before.equity
    if rep.dry_run:
        buys = sum(o.notional or 0.0 for o in mine if o.side == "buy")
        sells = sum(o.side == "sell" for o in mine)
        return f"totals (dry run, nothing sent): buys ${buys:,.2f} planned, {sells} sell order(s)"
    bought = sum(o.filled_qty * (o.filled_avg_price or 0.0) for o in mine if o.side == "buy")
    sold = sum(o.filled_qty * (o.filled_avg_price or 0.0) for o in mine if o.side == "sell")
    turnover = f"turnover {(bought + sold) / equity:.2f}x equity" if equity > 0 else "turnover -"
    cash = f"cash left ${rep.account_after.cash:,.2f}" if rep.account_after else "cash left unknown"
    return f"totals: bought ${bought:,.2f}, sold ${sold:,.2f}, {turnover}, {cash}"


def execute(console: Console, r: ExecuteResult) -> None:
    """The orders, what was skipped and why, the account before and after, the totals.

    Client order ids follow one pattern (``prep-<plan id>-<s|b>-<symbol>``): it is said once under the
    table, not repeated on every row.
    """
    rep = r.report
    console.print(f"[bold]execute[/] {r.strategy} for session {r.plan.target_session}, plan {r.plan.plan_id}"
                  + (" [yellow](dry run: nothing sent)[/]" if rep.dry_run else ""))
    b = rep.account_before
    console.print(f"account before: equity ${b.equity:,.2f}, cash ${b.cash:,.2f}")
    table = Table(title="orders")
    for col in ("symbol", "side", "size", "status", "filled", "avg price"):
        number = col in ("size", "filled", "avg price")
        table.add_column(col, justify="right" if number else "left", no_wrap=number, overflow="fold")
    for o in rep.orders:
        size = ("all" if o.close_position else f"{o.qty:g} sh" if o.qty is not None else f"${o.notional:,.2f}")
        status = o.status + (f" ({o.error})" if o.error else "") + (" [earlier run]" if o.earlier_run else "")
        table.add_row(o.symbol, o.side, size, escape(status), f"{o.filled_qty:.4f}",
                      "-" if o.filled_avg_price is None else f"{o.filled_avg_price:,.2f}")
    console.print(table)
    if rep.orders:
        pid = r.plan.plan_id
        console.print(f"client order ids: prep-{pid}-s-SYMBOL (sells), prep-{pid}-b-SYMBOL (buys)", markup=False)
        for o in rep.orders:
            if o.client_order_id != client_order_id(r.plan.plan_id, "s" if o.side == "sell" else "b", o.symbol):
                console.print(f"  {o.symbol} {o.side}: client order id {o.client_order_id}", markup=False)
    for sym, delta, why in rep.skipped:
        console.print(f"skipped {sym} (${delta:+,.2f}): {escape(why)}")
    if rep.account_after and not rep.dry_run:
        a = rep.account_after
        console.print(f"account after: equity ${a.equity:,.2f}, cash ${a.cash:,.2f}")
    console.print(execute_totals(rep))
    if r.archive_path and r.plan_kept:
        console.print(f"archived to {r.archive_path}; the plan is kept: run 'prep execute' again to finish "
                      "(orders already sent are never sent twice)")
    elif r.archive_path:
        console.print(f"archived to {r.archive_path}; the plan is consumed")
    if rep.dry_run and not rep.reached_targets:
        console.print(f"[red]dry run:[/] {escape(rep.summary())}")
    elif not rep.reached_targets:
        console.print(f"[red]the account did not reach its targets:[/] {escape(rep.summary())}")


def universe(console: Console, uni, path) -> None:
    """The universe chain step by step, then the symbols."""
    console.print(f"[bold]universe[/] of session {uni.session}: {len(uni.symbols)} symbols, data: {uni.data_source}")
    for step in uni.steps:
        extra = (f" (skipped: {step['skipped']})" if "skipped" in step
                 else f", removed {len(step['removed'])}" if step.get("removed") is not None
                 else f", added {', '.join(step['added']) or 'none'}" if "added" in step else "")
        detail = f" ({step['detail']})" if "detail" in step else ""
        console.print(f"  {step['step']}: {step['count']}{extra}{detail}")
    console.print(" ".join(uni.symbols), soft_wrap=True)
    console.print(f"saved to {path}")
