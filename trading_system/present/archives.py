"""What ``prep history`` and ``prep replay`` print (``trading_system.review.archives`` computes them).

Every table fits 80 columns: a rule under the header, no outer frame, and figures that are never cut.
"""

from __future__ import annotations

import datetime as dt

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trading_system.present.render import retention_text
from trading_system.review.archives import HORIZONS, Forward, History, Replay
from trading_system.review.touches import Touches
from trading_system.state.plan import Plan
from trading_system.validate.gate import percent_of
from trading_system.vocabulary import StrategyName


def _table(title: str) -> Table:
    """A table that fits 80 columns: a rule under the header, no outer frame, one space of padding."""
    return Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)


def _number_column(table: Table, header: str) -> None:
    """A right-aligned column whose figures are never cut or wrapped (folded only below ~60 columns)."""
    table.add_column(header, justify="right", no_wrap=True, overflow="fold")


def _fmt(x: float | None, pct: bool = True) -> str:
    if x is None:
        return "-"
    return f"{x:+.1%}" if pct else f"{x:.1f}"


# --- history -----------------------------------------------------------------------------------

def history(console: Console, h: History) -> None:
    """Print the table of archived plans (one line each at 80 columns), then the unreadable files.

    The plan id is what ``prep replay`` takes; BUY_HOLD rows are the fallback, and their rate is
    the best strategy's.
    """
    rows = h.rows
    table = _table(f"archived plans ({len(rows)}, oldest first)")
    table.add_column("session", no_wrap=True)
    table.add_column("plan", no_wrap=True)
    table.add_column("status", overflow="fold")
    table.add_column("strategy", overflow="fold")
    _number_column(table, "rate")
    table.add_column("rejected", justify="right", overflow="fold")
    _number_column(table, "orders")
    for r in rows:
        if r["status"] == "unreadable":
            continue
        status = r["status"] + (" (dry run)" if r["dry_run"] == "yes" else "")
        table.add_row(r["session"], r["plan_id"], status, r["strategy"], r["rate"], r["rejections"], r["orders"])
    if table.rows:
        console.print(table)
        console.print("rate: validation rate of the strategy chosen (BUY_HOLD, the fallback: the best strategy's); "
                      "rejected: picks rejected of picks checked.")
        console.print("replay one: prep replay PLAN (e.g. prep replay "
                      f"{next(r['plan_id'] for r in reversed(rows) if r['plan_id'] != '-')})", markup=False)
    for r in rows:
        if r["status"] == "unreadable":
            console.print(f"[red]unreadable:[/] {escape(r['file'])} (not a valid archive)")


# --- replay ------------------------------------------------------------------------------------

def _picks(plan: Plan) -> dict[str, list[str]]:
    """The picks a replay shows, by bucket (CORE, SPEC, ASYM, then other), each sorted."""
    vr = plan.validation_results
    picks = sorted(vr.checks) if vr else sorted({s for st in plan.strategies.values() for s in st.allocations
                                                   if s in plan.tickers})
    by_bucket: dict[str, list[str]] = {}
    for s in picks:
        by_bucket.setdefault(plan.tickers[s].bucket if s in plan.tickers else "other", []).append(s)
    return {b: by_bucket[b] for b in sorted(by_bucket, key=lambda b: ("CORE", "SPEC", "ASYM", "other").index(b))}


def picks_table(plan: Plan, fwd: Forward) -> Table:
    """Pick by pick, grouped by bucket: evening and morning score, retention, verdict, the weight traded,
    and the return 1, 5 and 20 sessions on.  Fits 80 columns; no figure is ever cut."""
    vr = plan.validation_results
    threshold = (plan.config.get("validation") or {}).get("retention_threshold")
    traded = vr.validated_strategies[vr.selected_strategy].validated_allocations if vr else {}
    table = _table("picks: evening vs morning, and what followed")
    table.add_column("symbol", no_wrap=True)
    for header in ("evening", "morning", "retention"):
        _number_column(table, header)
    table.add_column("verdict", no_wrap=True)
    _number_column(table, "weight")
    for h in HORIZONS:
        _number_column(table, f"+{h}")
    for bucket, symbols in _picks(plan).items():
        if table.rows:
            table.add_section()
        table.add_row(f"[bold]{bucket}[/]")
        for s in symbols:
            c = vr.checks[s] if vr else None
            t = plan.tickers.get(s)
            table.add_row(s, _fmt(c.original_score if c else (t.score if t else None), False),
                          _fmt(c.current_score if c else None, False),
                          "-" if c is None else retention_text(c, threshold),
                          "-" if c is None else ("PASS" if c.passed else "[red]REJECT[/]"),
                          f"{traded[s]:.1%}" if s in traded else "-",
                          *(_fmt(fwd.symbol_return(s, h)) for h in HORIZONS))
    return table


def forward_table(baskets: dict[str, dict[str, float]], fwd: Forward, entry: dt.date) -> Table:
    """Each basket's return 1, 5 and 20 sessions on, or why there is none yet."""
    table = _table(f"forward returns from the open of {entry} (split-adjusted)")
    table.add_column("basket")
    for h in HORIZONS:
        _number_column(table, f"{h} session{'s' if h > 1 else ''}")
    for label, weights in baskets.items():
        table.add_row(escape(label), *(_fmt(fwd.basket_return(weights, h)) if h not in fwd.missing else "past the data"
                                       if "past the data" in fwd.missing[h] else "not yet" for h in HORIZONS))
    return table


#: How a first touch reads in the table.
_TOUCH = {"target_2r": "2R", "target_1r": "1R", "invalidation": "[red]stop[/]", "neither": "-"}


def touches_table(plan: Plan, t: Touches) -> Table:
    """Pick by pick, grouped by bucket: its levels and what the sessions after the scan touched first
    within 1, 5 and 20 sessions (``not yet`` where the horizon runs past the data and nothing was
    touched), and when.  Fits 80 columns."""
    table = _table(f"price levels of the scan of {plan.scan_session}: what came first")
    table.add_column("symbol", no_wrap=True)
    for header in ("entry", "stop", "1R", "2R"):
        _number_column(table, header)
    for h in t.horizons:
        _number_column(table, f"+{h}")
    table.add_column("first touch", no_wrap=True)
    groups = [[s for s in symbols if s in t.levels] for symbols in _picks(plan).values()]
    grouped = {s for g in groups for s in g}
    longest = max(t.horizons)
    for group in [g for g in groups if g] + [sorted(set(t.levels) - grouped)]:
        if table.rows and group:
            table.add_section()
        for s in group:
            lv, per = t.levels[s], t.first[s]
            cells = ["not yet" if per[h][0] == "neither" and h in t.undecided else _TOUCH[per[h][0]]
                     for h in t.horizons]
            what, when = per[longest]
            table.add_row(s, *(f"{x:.2f}" for x in (lv.entry, lv.invalidation, lv.target_1r, lv.target_2r)),
                          *cells, str(when) if what != "neither" else "-")
    return table


def touches_summary(t: Touches) -> list[str]:
    """One line per horizon: how many picks touched a target first, the invalidation first, neither."""
    lines = []
    for h in t.horizons:
        c = t.counts(h)
        rest = "not yet" if h in t.undecided else "neither"
        lines.append(f"+{h} session{'s' if h > 1 else ''}: {c['target']} of {len(t.levels)} picks touched a target "
                     f"first, {c['invalidation']} the stop, {c['neither']} {rest}")
    return lines


def _replay_touches(console: Console, t: Touches, plan: Plan) -> None:
    """The levels table, its legend and the summary lines."""
    console.print(touches_table(plan, t))
    console.print("stop: entry - k x ATR; 1R, 2R: targets; a bar touching both counts as the stop", markup=False)
    console.print(f"+1, +5, +20: touched first within that many sessions from {plan.target_session}", markup=False)
    for line in touches_summary(t):
        console.print(line, markup=False)


def _replay_header(console: Console, r: Replay) -> None:
    """The plan, its archive, and the strategy chosen with every strategy's validation rate."""
    plan, vr = r.plan, r.plan.validation_results
    if r.note:
        console.print(r.note, markup=False)
    console.print(f"[bold]replay[/] plan {plan.plan_id}: scan of {plan.scan_session} for session "
                  f"{plan.target_session}, {escape(r.status)}, data {escape(plan.data_source)}")
    console.print(f"archive: {escape(str(r.path.name))}")
    if vr is None:
        console.print("never validated: no strategy was chosen; showing each strategy's evening weights.")
    else:
        min_rate = (plan.config.get("validation") or {}).get("min_validation_rate")
        rates = ", ".join(f"{n} {percent_of(v.validation_rate, min_rate)}"
                          for n, v in vr.validated_strategies.items() if n != StrategyName.BUY_HOLD)
        console.print(f"selected [bold]{vr.selected_strategy}[/]: {escape(vr.selection_reason)} "
                      f"(validation rates: {rates})")


def replay(console: Console, r: Replay) -> None:
    """Print what a plan decided pick by pick, its orders, what followed, and where the chart went."""
    plan, vr = r.plan, r.plan.validation_results
    _replay_header(console, r)
    console.print(picks_table(plan, r.forward))
    console.print("weight: of the basket traded; +1, +5, +20: return from the open of "
                  f"{plan.target_session} to the close 1, 5 and 20 sessions on")
    if vr is not None:
        for s, c in sorted(vr.checks.items()):
            if not c.passed and c.retention is None:
                console.print(f"{s} rejected: {escape(c.reason)}")
    o = r.orders
    if o is not None:
        console.print(f"orders: {o.sent} sent, {o.filled} filled, bought ${o.bought:,.2f}, sold ${o.sold:,.2f}"
                      + (f"; equity after ${o.equity_after:,.2f}" if o.equity_after is not None else ""))
    elif vr is not None:
        console.print("orders: none recorded (not executed, or a dry run)")
    console.print(forward_table(r.baskets, r.forward, plan.target_session))
    for h, why in r.forward.missing.items():
        console.print(f"{h}-session horizon: {why}")
    if r.touches is not None:
        _replay_touches(console, r.touches, plan)
    console.print(f"chart: {r.chart}", markup=False)
