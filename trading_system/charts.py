"""PNG charts for ``prep backtest`` and ``prep replay`` (matplotlib, Agg canvas, no display).

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas directly, so no
pyplot state is touched and nothing needs a display.  Files are written atomically.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .atomic import atomic_write


def _save(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def equity_chart(equity: pd.DataFrame, path: Path, title: str) -> Path:
    """Equity curves (dollars, one column per account) over drawdowns from their peaks (%).

    Requires: ``equity`` indexed by session date, one column per curve, first row = start.
    Sets: a PNG at ``path``; returns the path.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6.5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    index = pd.to_datetime(pd.Index(equity.index))
    for name in equity.columns:
        values = equity[name].to_numpy(dtype=float)
        top.plot(index, values, label=name, linewidth=1.4)
        peaks = pd.Series(values).cummax().to_numpy()
        bottom.plot(index, 100.0 * (values / peaks - 1.0), linewidth=1.0)
    top.set_title(title)
    top.set_ylabel("equity ($)")
    top.grid(alpha=0.3)
    top.legend(loc="upper left")
    bottom.set_ylabel("drawdown (%)")
    bottom.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return _save(fig, path)


def forward_chart(paths: dict[str, pd.Series], path: Path, title: str) -> Path:
    """Cumulative returns (%) of several baskets, session by session after the entry.

    Requires: ``paths`` maps a label to a Series indexed by session date, values the
    cumulative return (fraction) since the entry at the first session's open.
    Sets: a PNG at ``path``; returns the path.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5))
    ax = fig.subplots()
    drawn = 0
    sessions: set = set()
    for label, series in paths.items():
        if len(series):
            x = pd.to_datetime(pd.Index(series.index))
            ax.plot(x, 100.0 * series.to_numpy(dtype=float), marker="o", markersize=3, linewidth=1.4, label=label)
            sessions |= set(x)
            drawn += 1
    if 0 < len(sessions) <= 25:  # daily points: one tick per session, never hour ticks between two
        from matplotlib.dates import DateFormatter

        ax.set_xticks(sorted(sessions))
        ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_title(title)
    ax.set_ylabel("return since the open of the target session (%)")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(loc="best")
    else:
        ax.text(0.5, 0.5, "no session has closed since the entry yet", transform=ax.transAxes, ha="center")
    fig.autofmt_xdate()
    fig.tight_layout()
    return _save(fig, path)
