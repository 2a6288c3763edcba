"""``prep context``: the regime with every input, and the universe's earnings reports of the next sessions."""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trading_system.prepare.context.build import ContextReport, regime_line


def _figure(value) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else ("yes" if value else "no")
    return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"


def context(console: Console, r: ContextReport, as_json: bool = False) -> None:
    """The report as tables, or (``as_json``) one JSON object on stdout and nothing else."""
    if as_json:
        console.out(json.dumps(r.to_json()), highlight=False)   # no wrapping, no markup: one parsable line
        return
    console.print(f"[bold]context[/] as of the close of {r.session} (for session {r.target}), "
                  f"universe {r.universe_size} symbols")
    console.print(escape(regime_line(r.regime)))
    if r.regime.source:
        console.print(f"source: {escape(r.regime.source)}")
    if r.regime.inputs:
        table = Table(title="regime inputs (index points; drawdown and percentile are fractions)")
        table.add_column("input")
        table.add_column("value", justify="right")
        for name, value in r.regime.inputs.items():
            table.add_row(name, _figure(value))
        console.print(table)
    ev = r.events
    if ev.status != "ok":
        console.print(f"earnings: {ev.status}" + (f" ({escape(ev.note)})" if ev.note else ""))
        return
    console.print(f"earnings ({escape(ev.source or '')}), sessions {ev.window[0]} to {ev.window[-1]}: "
                  f"{len(ev.events)} report(s); {len(ev.unknown)} names of the universe not covered")
    table = Table(title="earnings reports")
    for col in ("session", "symbol", "time"):
        table.add_column(col)
    for e in sorted(ev.events, key=lambda e: (e.date, e.symbol)):
        table.add_row(str(e.date), e.symbol, e.time or "not given")
    console.print(table)
