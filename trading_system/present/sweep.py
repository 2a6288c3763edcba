"""What ``prep sweep`` prints and draws: the ranked table, the holdout, the bias note, the heat map PNG.

The heat map shows the mean Sharpe ratio (on the ranked span) of the trials at each pair of values
of the two grid keys that matter most: for each key with two values or more, the spread between the
highest and the lowest mean Sharpe of the trials at one of its values; the two largest spreads win
(ties: the grid's order), and every other key is averaged over.  A grid with one varying key draws
one row.  Drawn on a ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot, no display) and
written atomically, as ``present/charts.py`` does.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trading_system.review.sweep import Grid
from trading_system.review.sweep_rank import Row, sharpe_of
from trading_system.state.atomic import atomic_write

if TYPE_CHECKING:  # the report module prints through this one
    from trading_system.review.sweep_report import SweepReport

#: Rows of the table printed (every row is in sweep.json).
TOP_ROWS = 20
#: Failed trials named one by one (the rest are counted).
FAILURES_SHOWN = 5


# ---------------------------------------------------------------------------------------- heat map data


@dataclasses.dataclass
class Heat:
    """Mean Sharpe of the trials for each pair of values of two grid keys (one key: one row)."""

    rows_key: str | None              # None: a single row
    cols_key: str | None              # None: a single cell (no key varies)
    row_values: list[Any]
    col_values: list[Any]
    cells: list[list[float | None]]   # [row][column]; None where no trial at those values finished
    spread: dict[str, float]          # varying grid key -> max - min of the mean Sharpe over its values


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _mean(xs: list[float | None]) -> float | None:
    known = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.fmean(known) if known else None


def heat(rows: list[Row], grid: Grid) -> Heat:
    """The two grid keys whose values move the mean Sharpe most, and the mean Sharpe at every pair of their values."""
    spread: dict[str, float] = {}
    for key, values in zip(grid.keys, grid.values):
        if len(values) < 2:
            continue
        means = [m for m in (_mean([r.figures.get("sharpe") for r in rows if _same(r.settings.get(key), v)])
                             for v in values) if m is not None]
        spread[key] = max(means) - min(means) if len(means) > 1 else 0.0
    chosen = sorted(spread, key=lambda k: (-spread[k], grid.keys.index(k)))[:2]
    cols_key = chosen[0] if chosen else None
    rows_key = chosen[1] if len(chosen) > 1 else None
    by_key = dict(zip(grid.keys, grid.values))
    col_values = list(by_key[cols_key]) if cols_key else [None]
    row_values = list(by_key[rows_key]) if rows_key else [None]

    def cell(rv: Any, cv: Any) -> float | None:
        return _mean([r.figures.get("sharpe") for r in rows
                      if (rows_key is None or _same(r.settings.get(rows_key), rv))
                      and (cols_key is None or _same(r.settings.get(cols_key), cv))])

    return Heat(rows_key=rows_key, cols_key=cols_key, row_values=row_values, col_values=col_values,
                cells=[[cell(rv, cv) for cv in col_values] for rv in row_values], spread=spread)


# ---------------------------------------------------------------------------------------- the chart


def value_text(value: Any) -> str:
    """A grid value as the grid file writes it: ``true``, ``0.85``, ``[8, 21, 50]``."""
    if value is None:
        return "-"
    return json.dumps(value, default=str) if not isinstance(value, str) else value


def heat_title(report: SweepReport) -> str:
    span = f"up to {report.holdout}" if report.holdout else f"{report.start} -> {report.end}"
    return (f"prep sweep: mean Sharpe {span}\n{report.sweep_id}\n"
            f"{len(report.rows)} trials; the best of {len(report.rows)} is biased upwards")


def heatmap_figure(h: Heat, title: str):
    """The heat map: one cell per pair of values, its mean Sharpe written in it; grey where no trial finished."""
    import numpy as np
    from matplotlib.figure import Figure

    grid = np.array([[math.nan if c is None else c for c in row] for row in h.cells], dtype=float)
    fig = Figure(figsize=(max(7.0, 1.3 * len(h.col_values) + 3), max(3.5, 0.8 * len(h.row_values) + 2.5)))
    ax = fig.subplots()
    finite = grid[np.isfinite(grid)]
    bound = float(np.max(np.abs(finite))) if finite.size else 1.0
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="RdYlGn", vmin=-bound or -1.0, vmax=bound or 1.0,
                      aspect="auto")
    ax.set_facecolor("#d9d9d9")
    for i, row in enumerate(h.cells):
        for j, c in enumerate(row):
            ax.text(j, i, "-" if c is None else f"{c:.2f}", ha="center", va="center", fontsize=10)
    ax.set_xticks(range(len(h.col_values)), [value_text(v) for v in h.col_values])
    ax.set_yticks(range(len(h.row_values)), [value_text(v) for v in h.row_values])
    ax.set_xlabel(h.cols_key or "(no key varies)")
    ax.set_ylabel(h.rows_key or "")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="mean Sharpe")
    fig.tight_layout()
    return fig


def heatmap_chart(h: Heat, path: Path, title: str) -> Path:
    """``heatmap_figure`` saved as a PNG at ``path`` (atomically); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = heatmap_figure(h, title)
    FigureCanvasAgg(fig)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


# ---------------------------------------------------------------------------------------- the report


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:+.1%}" if signed else f"{x:.1%}"


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None or not math.isfinite(x) else format(x, fmt)


def _money(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"${x:,.0f}"


def _x(turnover: float | None) -> str:
    return "x" if turnover is not None and math.isfinite(turnover) else ""


def _labels(keys: tuple[str, ...]) -> list[str]:
    """Each key's last part (its last two for a bare switch like ``regime.enabled``), or the whole path
    when two keys share it."""
    last = [".".join(k.split(".")[-2:]) if k.rsplit(".", 1)[-1] in ("enabled", "required") else k.rsplit(".", 1)[-1]
            for k in keys]
    return [lab if last.count(lab) == 1 else k for k, lab in zip(keys, last)]


def bias_note(report: SweepReport) -> str:
    """The plain statement of the selection bias of the best of N."""
    n = len(report.rows)
    note = (f"{n} trials ran: the best of {n} is biased upwards (picking the top of {n} noisy backtests picks "
            "luck as well as merit), so expect less from it on sessions it was not chosen on")
    if report.luck is not None:
        mean = statistics.fmean([s for s in (sharpe_of(r.figures) for r in report.rows) if s is not None])
        note += (f"; were every setting equally good, luck alone would put the best about {report.luck:.2f} "
                 f"Sharpe above the trials' mean {mean:.2f} (Bailey and López de Prado, the deflated Sharpe ratio)")
    if report.holdout is None:
        note += "; --holdout D ranks on the sessions up to D and measures the winner on the rest"
    return note + "."


def _table(report: SweepReport) -> Table:
    ranked = "up to " + str(report.holdout) if report.holdout else "over every session"
    whole = " (whole run)" if report.holdout else ""
    table = Table(title=f"trials by Sharpe {ranked}, net of the backtest's costs", box=box.SIMPLE_HEAD)
    labels = _labels(report.grid.keys)
    for col in ("#", *labels, "Sharpe", "CAGR", "volatility", "max DD", f"turnover/yr{whole}", "costs"):
        table.add_column(col, justify="left" if col in labels else "right", no_wrap=True)   # never cut a figure

    def cells(row: Row) -> list[str]:
        f = row.figures
        return [_num(f.get("sharpe"), ".2f"), _pct(f.get("cagr"), True), _pct(f.get("volatility")),
                _pct(f.get("max_drawdown")), _num(f.get("turnover"), ".1f") + _x(f.get("turnover")),
                _money(f.get("costs"))]

    if report.buy_hold is not None:
        table.add_row("BUY_HOLD", *(["(benchmarks)"] + [""] * (len(labels) - 1)), *cells(report.buy_hold),
                      style="dim")
    for i, row in enumerate(report.rows[:TOP_ROWS], 1):
        table.add_row(str(i), *(value_text(row.settings.get(k)) for k in report.grid.keys), *cells(row))
    return table


def _holdout_lines(console: Console, report: SweepReport) -> None:
    best, bh = report.rows[0], report.buy_hold
    if report.holdout is None or best.out_of_sample is None:
        return
    o = best.out_of_sample
    settings = ", ".join(f"{k}={value_text(v)}" for k, v in best.settings.items())
    line = (f"held out, the sessions after {report.holdout}: the best settings ({settings}) had Sharpe "
            f"{_num(o['sharpe'], '.2f')}, return {_pct(o['total_return'], True)}, "
            f"max drawdown {_pct(o['max_drawdown'])}, costs {_money(o.get('costs'))}")
    if bh is not None and bh.out_of_sample is not None:
        line += (f", against BUY_HOLD's Sharpe {_num(bh.out_of_sample['sharpe'], '.2f')}, return "
                 f"{_pct(bh.out_of_sample['total_return'], True)}")
    console.print(f"[bold]{escape(line)}; out of sample they rank {report.oos_rank} of {len(report.rows)}.[/]")


def render(console: Console, report: SweepReport) -> None:
    """The header, the table (BUY_HOLD first), failures, the holdout, the bias, the files."""
    failed = f", {len(report.failed)} failed (run again next time)" if report.failed else ""
    console.print(f"[bold]sweep[/] {report.sweep_id}: {report.total} trials ({report.ran} run now, "
                  f"{report.reused} from trials.jsonl{failed}) on {report.engine}, {report.start} -> {report.end}")
    if report.torn_lines:
        console.print(f"{report.trials_file}: {report.torn_lines} line(s) cut short by a stopped run skipped; "
                      "their trials ran again.")
    console.print(_table(report))
    if len(report.rows) > TOP_ROWS:
        console.print(f"... and {len(report.rows) - TOP_ROWS} more trials in {report.json_file}")
    if not report.buy_hold_same:
        console.print("BUY_HOLD differs between trials (a swept setting changes it: the cash buffer, the "
                      "benchmarks, the starting cash); the row shows the best trial's.")
    for row in report.failed[:FAILURES_SHOWN]:
        shown = ", ".join(f"{k}={value_text(v)}" for k, v in row.settings.items())
        console.print(f"[red]failed[/] {escape(shown)}: {escape(row.error or '')}")
    if len(report.failed) > FAILURES_SHOWN:
        console.print(f"... and {len(report.failed) - FAILURES_SHOWN} more failures in {report.trials_file}")
    _holdout_lines(console, report)
    console.print(f"[yellow]{bias_note(report)}[/]")
    axes = [f"{k} ({where}; its values move the mean Sharpe by {report.heat_spread.get(k, 0.0):.2f})"
            for k, where in zip(report.heat_keys[::-1], ("columns", "rows")) if k]
    console.print(f"heat map: mean Sharpe by {' and '.join(axes) or 'no key (no grid key has two values)'}, "
                  "the grid keys that move it most")
    for label, path in (("trials", report.trials_file), ("summary", report.json_file), ("chart", report.png_file)):
        if path:
            console.print(f"{label}: {path}")
    console.print(f"{report.total} trials in {report.seconds:.1f} s")
