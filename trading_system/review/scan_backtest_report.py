"""``prep scan-backtest`` as a command: where the bars come from, the progress, the files.

The bars are those of ``prep backtest`` (``backtest_report.load_source``: ``--bars FILE`` with
``splits.csv`` beside it or ``--splits``, else the configured store, read once into memory).
Writes ``reports/scan_backtest_<name>_YYYYMMDD_YYYYMMDD.json`` (atomically: the figures, the
overlap, the curve and every night's finds with their forward returns) and a ``.png`` beside it
(the cumulative next-session return of the finds against the universe's).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from rich.console import Console

from trading_system import sessions
from trading_system.config import Config
from trading_system.errors import BadInputError
from trading_system.prepare.scanners.loader import bind, find_entry
from trading_system.present.charts import cumulative_chart
from trading_system.progress import Reporter
from trading_system.review.backtest import BUY_HOLD
from trading_system.review.backtest_report import load_source, output_folder
from trading_system.review.scan_backtest import UNIVERSE, ScanBacktestResult, run_scan_backtest
from trading_system.review.scanners import module_text
from trading_system.state.atomic import write_json_atomic


@dataclasses.dataclass
class ScanBacktestReport:
    """The result and where it was written; ``survivorship``: the universe's bias, in one sentence."""

    result: ScanBacktestResult
    json_path: Path
    png_path: Path
    survivorship: str


def survivorship_note(cfg: Config) -> str:
    """The universe's survivorship bias, as it bears on a scanner's figures."""
    held = " and the sample's bars hold only those names" if cfg.data.source == "sample" else ""
    return (f"survivorship bias: the universe is the index list in {cfg.universe.constituents_file} (the S&P 500 "
            f"of 2021 for the sample){held}; stocks that left the index before then are absent, so the finds and "
            "the universe alike are future survivors, which flatters both.")


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def summary(result: ScanBacktestResult, bars_file: str | None, splits_file: str | None, bias: str) -> dict:
    """The JSON summary (returns are fractions, rounded to 6 decimals; None where there is none)."""
    hits = result.hits
    return {
        "scanner": result.entry.name, "module": module_text(result.entry), "start": str(result.start),
        "end": str(result.end), "data_source": result.data_source, "bars_file": bars_file,
        "splits_file": splits_file, "forward_data_through": str(result.last_data),
        "nights": len(result.nights), "nights_with_hits": result.nights_with_hits, "finds": sum(hits),
        "hits_per_night": {"mean": _r(sum(hits) / len(hits)), "max": max(hits)},
        "failed_nights": len(result.failed),
        "forward_returns": "close of the h-th session after the night over the open of the next session, minus 1",
        "horizons": {str(h.sessions): {"nights": h.nights, "finds_measured": h.finds, "finds_mean": _r(h.finds_mean),
                                       "universe_mean_same_nights": _r(h.universe_mean),
                                       "difference": _r(h.difference), "universe_mean_all_nights": _r(h.universe_all)}
                     for h in result.horizons},
        "overlap": {o.name: {"share": _r(o.share), "shared": o.shared, "their_finds": o.their_finds,
                             "missing_nights": o.missing_nights} for o in result.overlap},
        "curve": {"session": [str(d) for d in result.curve.index],
                  **{c: [round(float(v), 6) for v in result.curve[c]] for c in result.curve.columns}},
        "per_night": [_night(result, n.session, n.finds, n.error) for n in result.nights],
        "survivorship_bias": bias, "notes": result.notes, "seconds": round(result.seconds, 2),
    }


def _night(result: ScanBacktestResult, night: dt.date, finds: list[str], error: str | None) -> dict:
    """One night of the summary: its finds, each one's return per horizon, the universe's mean."""
    return {"session": str(night), "finds": finds, "error": error,
            "returns": {s: {str(h): _r(v) for h, v in r.items()} for s, r in result.returns[night].items()},
            "universe": {str(h): _r(v) for h, v in result.universe_returns[night].items()}}


def _check_range(clock: sessions.Clock, start: dt.date, end: dt.date) -> None:
    """BadInputError for a reversed range, one past the last closed session, or before the calendar."""
    last = sessions.last_closed_session(clock.now())
    if end > last:
        raise BadInputError(f"--end {end} is after the last closed session {last} as of "
                            f"{clock.now():%Y-%m-%d %H:%M %Z}; pick an earlier --end.")
    if start > end:
        raise BadInputError(f"--start {start} is after --end {end}; swap them.")
    first = sessions.usable_range()[0]
    if start < first:
        raise BadInputError(f"--start {start} is before the exchange calendar this tool knows; "
                            f"pick a --start from {first}.")


def scan_backtest_command(cfg: Config, clock: sessions.Clock, console: Console, name: str, start: dt.date,
                          end: dt.date, bars: str | None = None, splits: str | None = None,
                          out: str | None = None) -> ScanBacktestReport:
    """``prep scan-backtest``: check the range and ``--out``, load the bars, run every night showing
    progress, write the JSON and the PNG.  Nothing is printed but the progress (``present.scanners``).

    Raises:
        BadInputError: a bad range, file or ``--out`` (checked before the long run), an unknown
            scanner or one whose module does not load (ConfigError).
        RunFailure: the scanner failed on every night.
    """
    _check_range(clock, start, end)
    bind(find_entry(cfg.scanners, name), cfg.scanners)  # an unknown or broken scanner: before the bars are read
    folder = output_folder(cfg, out)
    source = load_source(cfg, bars, splits, start)
    reporter = Reporter("scan-backtest", "nights", console=console)
    begun = False

    def step(done: int, total: int, night: dt.date) -> None:
        nonlocal begun
        if not begun:
            reporter.begin(total, f"{start} to {end}")
            begun = True
        reporter.update(done, f"night {night}")

    try:
        result = run_scan_backtest(cfg, name, start, end, source, clock.now(), step)
    except BaseException:
        if begun:
            reporter.end(ok=False)
        raise
    reporter.end(ok=True)
    stem = f"scan_backtest_{result.entry.name}_{result.start:%Y%m%d}_{result.end:%Y%m%d}"
    splits_file = (splits or str(Path(bars).parent / "splits.csv")) if bars else None
    bias = survivorship_note(cfg)
    json_path = folder / f"{stem}.json"
    write_json_atomic(json_path, summary(result, bars, splits_file, bias))
    png_path = cumulative_chart(result.curve, folder / f"{stem}.png",
                                f"prep scan-backtest {result.entry.name} {result.start} -> {result.end}: next-session "
                                f"return of the finds (equal weight per night) vs the {UNIVERSE}",
                                {UNIVERSE: BUY_HOLD})
    return ScanBacktestReport(result=result, json_path=json_path, png_path=png_path,
                              survivorship=bias)

