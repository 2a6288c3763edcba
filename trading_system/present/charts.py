"""PNG charts for ``prep backtest`` and ``prep replay`` (matplotlib, Agg canvas, no display).

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas directly, so no
pyplot state is touched and nothing needs a display.  Files are written atomically.

Every account has one colour in every chart (``ACCOUNT_COLOURS``): the system is the same blue in
the backtest's equity curves and in a replay's forward returns, BUY_HOLD the same grey, and so on.
``*_figure`` builds a figure, ``*_chart`` saves it as a PNG.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Mapping

import pandas as pd

from trading_system.state.atomic import atomic_write
from trading_system.vocabulary import StrategyName

#: One colour per account or series, in every chart (matplotlib's tab10 colours, by name).
#: "system" is what the nightly cycle trades (a replay's "(traded)" basket), "no gate" the same
#: system with the retention gate off (a replay's "before the gate" basket), "rejected" the picks the
#: gate rejected; TACTICAL / SPEC / ASYM are a never-validated plan's evening strategies; "no regime" and
#: "no events" the backtest's system with the market regime / the earnings gate off (colours outside
#: ``_SPARE``, so no other series shares them).
ACCOUNT_COLOURS: dict[str, str] = {
    "system": "#1f77b4",      # blue
    "no gate": "#ff7f0e",     # orange
    StrategyName.BUY_HOLD.value: "#7f7f7f",   # grey
    "rejected": "#d62728",    # red
    StrategyName.TACTICAL.value: "#2ca02c",   # green
    StrategyName.SPEC.value: "#9467bd",       # purple
    StrategyName.ASYM.value: "#8c564b",       # brown
    "no regime": "#008080",   # teal
    "no events": "#c71585",   # medium violet red (magenta)
}
#: Colours for series no entry names, chosen by a stable hash of the name (never by drawing order).
_SPARE = ("#e377c2", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a")
#: At most this many session ticks on a replay's x axis; more sessions get every n-th one.
MAX_SESSION_TICKS = 8


def colour(account: str) -> str:
    """The colour of ``account`` (a key of ``ACCOUNT_COLOURS``; any other name gets a spare colour of its own)."""
    if account in ACCOUNT_COLOURS:
        return ACCOUNT_COLOURS[account]
    return _SPARE[zlib.crc32(account.encode()) % len(_SPARE)]


def preload() -> None:
    """Import matplotlib's figure and Agg canvas now (about half a second), ahead of drawing.

    ``prep backtest`` calls it as its first session begins: its worker processes are then computing
    the first nights and the backtest's own process would only wait for them, so the import costs
    no time there (and the same time as later, with no workers).
    """
    import matplotlib.figure  # noqa: F401
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401


def _save(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def equity_figure(equity: pd.DataFrame, title: str, accounts: Mapping[str, str] | None = None):
    """Equity curves (dollars, one column per account) over drawdowns from their peaks (%).

    Requires: ``equity`` indexed by session date, one column per curve, first row = start;
    ``accounts`` maps a column to its account in ``ACCOUNT_COLOURS`` (default: the column's own name).
    Sets: a ``Figure``: each account in its own colour, in both panels.
    """
    from matplotlib.figure import Figure

    accounts = accounts or {}
    fig = Figure(figsize=(10, 6.5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    index = pd.to_datetime(pd.Index(equity.index))
    for name in equity.columns:
        values = equity[name].to_numpy(dtype=float)
        tint = colour(accounts.get(name, name))
        top.plot(index, values, label=name, linewidth=1.4, color=tint)
        peaks = pd.Series(values).cummax().to_numpy()
        bottom.plot(index, 100.0 * (values / peaks - 1.0), linewidth=1.0, color=tint, label=name)
    top.set_title(title)
    top.set_ylabel("equity ($)")
    top.grid(alpha=0.3)
    top.legend(loc="upper left")
    bottom.set_ylabel("drawdown (%)")
    bottom.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def equity_chart(equity: pd.DataFrame, path: Path, title: str, accounts: Mapping[str, str] | None = None) -> Path:
    """``equity_figure`` saved as a PNG at ``path``; returns the path."""
    return _save(equity_figure(equity, title, accounts), path)


def session_ticks(sessions: list, most: int = MAX_SESSION_TICKS) -> list:
    """Every n-th session (the first included) so that at most ``most`` ticks are left: labels of
    dates one session apart would overlap beyond a handful."""
    ordered = sorted(sessions)
    step = max(1, math.ceil(len(ordered) / most))
    return ordered[::step]


def forward_figure(paths: Mapping[str, pd.Series], title: str, accounts: Mapping[str, str] | None = None):
    """Cumulative returns (%) of several baskets, session by session after the entry.

    Requires: ``paths`` maps a label to a Series indexed by session date, values the
    cumulative return (fraction) since the entry at the first session's open; ``accounts``
    maps a label to its account in ``ACCOUNT_COLOURS`` (default: the label itself).
    Sets: a ``Figure`` with one tick per session while they fit (at most ``MAX_SESSION_TICKS``,
    else every n-th session), labelled ``MM-DD`` with the year on the axis, never an hour tick
    between two sessions.
    """
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    accounts = accounts or {}
    fig = Figure(figsize=(9, 5))
    ax = fig.subplots()
    drawn = 0
    days: set = set()
    for label, series in paths.items():
        if len(series):
            x = pd.to_datetime(pd.Index(series.index))
            ax.plot(x, 100.0 * series.to_numpy(dtype=float), marker="o", markersize=3, linewidth=1.4, label=label,
                    color=colour(accounts.get(label, label)))
            days |= set(x)
            drawn += 1
    if days:
        ax.set_xticks(session_ticks(list(days)))
        ax.xaxis.set_major_formatter(DateFormatter("%m-%d"))
        years = sorted({d.year for d in days})
        ax.set_xlabel(f"session ({'-'.join(map(str, (years[0], years[-1]))) if len(years) > 1 else years[0]})")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_title(title)
    ax.set_ylabel("return since the open of the target session (%)")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(loc="best")
    else:
        ax.text(0.5, 0.5, "no session has closed since the entry yet", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    return fig


def forward_chart(paths: Mapping[str, pd.Series], path: Path, title: str,
                  accounts: Mapping[str, str] | None = None) -> Path:
    """``forward_figure`` saved as a PNG at ``path``; returns the path."""
    return _save(forward_figure(paths, title, accounts), path)


def cumulative_chart(curves: pd.DataFrame, path: Path, title: str, accounts: Mapping[str, str] | None = None) -> Path:
    """Cumulative returns (%) of several series over sessions, saved as a PNG at ``path``; returns the path.

    Requires: ``curves`` indexed by session date, one column per series (e.g. a scanner's finds and
    ``universe``), values the cumulative return (fraction) since the first session; each series
    gets the colour of its account (``accounts`` maps a column to a key of ``ACCOUNT_COLOURS``; default
    the column's own name).  An empty frame draws a note instead of lines.
    Sets: the PNG (``prep scan-backtest``).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5.5))
    ax = fig.subplots()
    if len(curves):
        index = pd.to_datetime(pd.Index(curves.index))
        for name in curves.columns:
            ax.plot(index, 100.0 * curves[name].to_numpy(dtype=float), linewidth=1.4, label=str(name),
                    color=colour((accounts or {}).get(str(name), str(name))))
        ax.legend(loc="upper left")
        fig.autofmt_xdate()
    else:
        ax.text(0.5, 0.5, "no night has a session after it in the data yet", transform=ax.transAxes, ha="center")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("cumulative return (%)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
