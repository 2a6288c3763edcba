"""``prep sweep`` as a command: check everything, run the missing trials with progress, rank, write, print.

Everything a user can get wrong is refused before the first trial runs, in one sentence: the grid
(``sweep.trials``), the dates, ``--holdout``, ``--out``, ``--bars``/``--splits``, the data's
coverage (exit 2), and a ``--scheduler`` that cannot be reached or has no worker (exit 1).

Files, in ``reports/sweeps/<sweep id>/`` (``--out DIR``: ``DIR/sweeps/<sweep id>/``):

- ``trials.jsonl``: one line per finished trial, appended as it finishes (the resume point);
- ``sweep.json``: the ranked table, BUY_HOLD, the holdout's figures, the heat map's keys, the bias note;
- ``heatmap.png``: mean Sharpe over the two grid keys that move it most.

Progress (``progress.Reporter``): trials done / to run, elapsed and the ETA, as a bar on a terminal or
a line per ~10 % elsewhere.  A second ``prep sweep`` on the same folder at once is refused (a lock).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import statistics
import time
from pathlib import Path

from filelock import FileLock, Timeout
from rich.console import Console

from trading_system import sessions
from trading_system.config import Config
from trading_system.errors import BadInputError, LockHeldError, RunFailure
from trading_system.marketdata.cached import CachedSource
from trading_system.present import sweep as show
from trading_system.progress import Reporter
from trading_system.review import sweep, sweep_rank
from trading_system.review.backtest_report import load_source, output_folder
from trading_system.review.sweep_engines import DaskCluster, LocalPool
from trading_system.state.atomic import write_json_atomic

#: ``--max-trials`` default: a grid larger than this is refused unless raised.
MAX_TRIALS = 500
#: Without ``--start``: this many calendar days before the end.
DEFAULT_DAYS = 365


@dataclasses.dataclass
class SweepReport:
    """What ``prep sweep`` found: the ranked trials, BUY_HOLD on the same sessions, the holdout, the files."""

    sweep_id: str
    folder: Path
    grid: sweep.Grid
    start: dt.date
    end: dt.date
    holdout: dt.date | None
    engine: str                        # where the trials ran
    total: int                         # trials in the grid
    ran: int                           # trials run by this invocation
    reused: int                        # trials found done in trials.jsonl
    rows: list[sweep_rank.Row]              # successful trials, best Sharpe (on the ranked span) first
    failed: list[sweep_rank.Row]
    buy_hold: sweep_rank.Row | None
    buy_hold_same: bool                # every trial had the same BUY_HOLD curve
    luck: float | None                 # ``luck_lift`` of the rows
    oos_rank: int | None               # the best trial's rank among the rows on the sessions after the holdout
    seconds: float
    trials_file: Path
    torn_lines: int = 0                # lines of trials.jsonl cut short by a kill, skipped
    json_file: Path | None = None
    png_file: Path | None = None
    heat_keys: tuple[str | None, str | None] = (None, None)   # (rows, columns) of the heat map
    heat_spread: dict[str, float] = dataclasses.field(default_factory=dict)  # key -> max - min mean Sharpe


# ---------------------------------------------------------------------------------------- overfitting

_EULER_GAMMA = 0.5772156649015329


def expected_max_z(n: int) -> float:
    """E[max of n independent standard normals], approximately: (1 - g) Z(1 - 1/n) + g Z(1 - 1/(n e)),
    g the Euler-Mascheroni constant, Z the standard normal quantile.

    Source: D. H. Bailey and M. López de Prado, "The Deflated Sharpe Ratio", Journal of Portfolio
    Management 40(5), 2014 (the expected maximum Sharpe ratio of n trials that are all noise).  0 for n = 1.
    """
    if n < 2:
        return 0.0
    z = statistics.NormalDist().inv_cdf
    return (1 - _EULER_GAMMA) * z(1 - 1 / n) + _EULER_GAMMA * z(1 - 1 / (n * math.e))


def luck_lift(rows: list[sweep_rank.Row]) -> float | None:
    """How far above the trials' mean Sharpe the best of them is expected to land by luck alone, were
    every setting equally good: the spread (std) of their Sharpe ratios x ``expected_max_z(n)``."""
    sharpes = [s for s in (sweep_rank.sharpe_of(r.figures) for r in rows) if s is not None]
    if len(sharpes) < 2:
        return None
    return statistics.stdev(sharpes) * expected_max_z(len(sharpes))


# ---------------------------------------------------------------------------------------- the command


def _dates(clock: sessions.Clock, start: dt.date | None, end: dt.date | None) -> None:
    """Refuse an end after the as-of instant's last closed session, a reversed range, a start before the calendar.

    Raises:
        BadInputError: one sentence naming the flag.
    """
    last = sessions.last_closed_session(clock.now())
    if end is not None and end > last:
        raise BadInputError(f"--end {end} is after the last closed session {last} as of "
                            f"{clock.now():%Y-%m-%d %H:%M %Z}; pick an earlier --end.")
    if start is not None and end is not None and start > end:
        raise BadInputError(f"--start {start} is after --end {end}; swap them.")
    first = sessions.usable_range()[0]
    if start is not None and start < first:
        raise BadInputError(f"--start {start} is before the exchange calendar this tool knows; "
                            f"pick a --start from {first}.")


def _span(source: CachedSource, clock: sessions.Clock, start: dt.date | None,
          end: dt.date | None) -> tuple[dt.date, dt.date]:
    """(first session, last session): ``--end`` defaults to the data's last closed session, ``--start``
    to ``DEFAULT_DAYS`` before the end.

    Raises:
        BadInputError: no session in the range, or a range the bars do not cover.
    """
    end = end or min(source.last_date(), sessions.last_closed_session(clock.now()))
    start = start or end - dt.timedelta(days=DEFAULT_DAYS)
    days = sessions.sessions_between(start, end) if start <= end else []
    if not days:
        raise BadInputError(f"there is no trading session between {start} and {end}; widen the range.")
    first_scan = sessions.previous_session(days[0])
    if first_scan < source.first_date() or days[-1] > source.last_date():
        raise BadInputError(f"the sweep needs bars from {first_scan} (the scan before its first session) to "
                            f"{days[-1]}, but the data covers {source.first_date()} to {source.last_date()}; "
                            "pick --start/--end inside it.")
    return days[0], days[-1]


def _check_benchmarks(source: CachedSource, configs: list[Config], first_scan: dt.date, last: dt.date) -> None:
    """Every trial's BUY_HOLD benchmarks have bars over the whole sweep.

    Raises:
        BadInputError: naming the symbol and what the data has.
    """
    for sym in sorted({s for c in configs for s in c.strategies.benchmarks}):
        span = source.symbol_dates(sym)
        if span is None or span[0] > first_scan or span[1] < last:
            have = "no bars" if span is None else f"bars from {span[0]} to {span[1]}"
            raise BadInputError(f"BUY_HOLD needs {sym} over the whole sweep but the data has {have}; "
                                "pick --start/--end inside that range.")


def _check_holdout(holdout: dt.date | None, start: dt.date, end: dt.date) -> None:
    """At least 2 sessions on each side of ``holdout`` (a Sharpe ratio needs two returns).

    Raises:
        BadInputError: the date is outside the range or leaves a side too short.
    """
    if holdout is None:
        return
    inside = sessions.sessions_between(start, min(holdout, end)) if holdout >= start else []
    after = sessions.sessions_between(holdout + dt.timedelta(days=1), end) if holdout < end else []
    if len(inside) < 2 or len(after) < 2:
        raise BadInputError(f"--holdout {holdout} leaves {len(inside)} session(s) to rank on and {len(after)} "
                            f"after it, between {start} and {end}; pick a date with at least 2 sessions on each side.")


def _lock(folder: Path) -> FileLock:
    """The sweep folder's lock, held for the whole run.

    Raises:
        LockHeldError: another ``prep sweep`` is running on this folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / ".sweep.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise LockHeldError(f"another prep sweep is running on {folder}; wait for it to end.") from None
    return lock


def _run_trials(engine: LocalPool | DaskCluster, todo: list[sweep.TrialSpec], source: CachedSource,
                store: sweep.TrialStore, done: dict[str, dict], console: Console, reused: int) -> None:
    """Run ``todo`` on ``engine``, appending each record to ``store`` (and ``done``) as it finishes."""
    reporter = Reporter("sweep", "trials", console=console)
    records = engine.submit(todo, source)   # worker processes start before the progress bar's thread
    reporter.begin(len(todo), f"{reused} already done, on {engine.description}")
    failed = 0
    try:
        for n, record in enumerate(records, 1):
            store.append(record)
            done[record["key"]] = record
            failed += record["status"] != "ok"
            reporter.update(n, f"{failed} failed" if failed else "")
    except BaseException:
        reporter.end(ok=False)
        raise
    reporter.end(ok=True)


def _all_failed(failed: list[sweep_rank.Row], exit_codes: list[int]) -> None:
    """Raise when no trial produced a result: bad input if every failure was one (exit 2), else exit 1."""
    first = failed[0].error
    sentence = (f"all {len(failed)} trials failed (the first: {first}); nothing to rank. "
                "They are recorded in trials.jsonl and run again next time.")
    raise BadInputError(sentence) if all(c == 2 for c in exit_codes) else RunFailure(sentence)


def _row_json(row: sweep_rank.Row | None) -> dict | None:
    if row is None:
        return None
    return {"key": row.key, "settings": row.settings, "status": row.status, "figures": row.figures,
            "out_of_sample": row.out_of_sample, "error": row.error}


def summary(report: SweepReport) -> dict:
    """``sweep.json``: the grid, the ranked table (BUY_HOLD first), failures, the holdout and the bias note."""
    return sweep.clean({
        "sweep_id": report.sweep_id, "start": str(report.start), "end": str(report.end),
        "holdout": str(report.holdout) if report.holdout else None,
        "ranked_on": f"sessions up to {report.holdout}" if report.holdout else "every session",
        "grid": dict(zip(report.grid.keys, map(list, report.grid.values))),
        "engine": report.engine, "trials": report.total, "ran": report.ran, "reused": report.reused,
        "failed": len(report.failed), "selection_bias": show.bias_note(report),
        "heat_map": {"rows": report.heat_keys[0], "columns": report.heat_keys[1], "spread": report.heat_spread,
                     "chosen_by": "the two grid keys whose values move the mean Sharpe most (spread: the highest "
                                  "minus the lowest mean Sharpe of the trials at one of the key's values)"},
        "buy_hold_same_in_every_trial": report.buy_hold_same,
        "table": [_row_json(report.buy_hold), *map(_row_json, report.rows)],
        "failures": [_row_json(r) for r in report.failed],
        "best_out_of_sample_rank": report.oos_rank,
        "trials_file": str(report.trials_file), "seconds": round(report.seconds, 2),
    })


def sweep_command(cfg: Config, clock: sessions.Clock, console: Console, grid_file: str, start: dt.date | None,
                  end: dt.date | None, jobs: int | None, scheduler: str | None, max_trials: int = MAX_TRIALS,
                  holdout: dt.date | None = None, out: str | None = None, bars: str | None = None,
                  splits: str | None = None) -> SweepReport:
    """``prep sweep``: one backtest per combination of the grid, resumed from ``trials.jsonl``, ranked.

    Raises:
        BadInputError: the grid, the dates, ``--holdout``, ``--jobs``, ``--max-trials``, ``--out``, the bars
            or their coverage (all before any trial runs), or every trial failed on bad input.
        RunFailure: the scheduler cannot be reached or has no worker (before any trial runs), or every
            trial failed.
        LockHeldError: another sweep is running in the same folder.
    """
    t0 = time.perf_counter()
    if jobs is not None and jobs < 1:
        raise BadInputError(f"--jobs {jobs}: run at least 1 trial at a time.")
    if jobs is not None and scheduler:
        raise BadInputError("--jobs sizes the local pool; with --scheduler the cluster's workers run the trials "
                            "(start more of them instead), so drop --jobs.")
    if max_trials < 1:
        raise BadInputError(f"--max-trials {max_trials}: allow at least 1 trial.")
    grid = sweep.load_grid(Path(grid_file))
    _dates(clock, start, end)
    combos = sweep.trials(cfg, grid, max_trials)
    root = output_folder(cfg, out) / "sweeps"
    source = load_source(cfg, bars, splits, start or sessions.usable_range()[0])
    start, end = _span(source, clock, start, end)
    _check_benchmarks(source, [c for _, c in combos], sessions.previous_session(start), end)
    _check_holdout(holdout, start, end)
    data = sweep.data_identity(cfg, bars, splits)
    specs = [sweep.TrialSpec(key=sweep.trial_key(c, start, end, data), settings=s, cfg=c, start=start, end=end)
             for s, c in combos]
    sid = sweep.sweep_id(grid, cfg, start, end, data)
    folder = root / sid
    store = sweep.TrialStore(folder / "trials.jsonl")
    with DaskCluster(scheduler) if scheduler else LocalPool(jobs or os.cpu_count() or 1) as engine:
        lock = _lock(folder)   # only once the scheduler answered: a refused sweep leaves no folder behind
        try:
            done = store.load()
            todo = [s for s in specs if done.get(s.key, {}).get("status") != "ok"]
            _run_trials(engine, todo, source, store, done, console, len(specs) - len(todo))
        finally:
            store.close()
            lock.release()
    return _report(grid, specs, done, sid, folder, start, end, holdout, engine.description, len(todo),
                   t0, store, console)


def _report(grid: sweep.Grid, specs: list[sweep.TrialSpec], done: dict[str, dict], sid: str, folder: Path,
            start: dt.date, end: dt.date, holdout: dt.date | None, engine: str, ran: int, t0: float,
            store: sweep.TrialStore, console: Console) -> SweepReport:
    """Rank the grid's trials, write ``sweep.json`` and the heat map, print the report."""
    # a trial found done may come from another grid of this folder: shown with this grid's settings
    records = [{**done[s.key], "settings": s.settings} for s in specs if s.key in done]
    rows, failed = sweep_rank.rank(records, holdout)
    if not rows:
        _all_failed(failed, [r.get("exit_code", 1) for r in records if r.get("status") != "ok"])
    bh, same = sweep_rank.buy_hold(records, rows[0].key, holdout)
    report = SweepReport(
        sweep_id=sid, folder=folder, grid=grid, start=start, end=end, holdout=holdout, engine=engine,
        total=len(specs), ran=ran, reused=len(specs) - ran, rows=rows, failed=failed, buy_hold=bh,
        buy_hold_same=same, luck=luck_lift(rows), oos_rank=sweep_rank.oos_rank(rows),
        seconds=time.perf_counter() - t0, trials_file=store.path, torn_lines=store.skipped)
    heat = show.heat(rows, grid)
    report.heat_keys, report.heat_spread = (heat.rows_key, heat.cols_key), heat.spread
    report.json_file = folder / "sweep.json"
    write_json_atomic(report.json_file, summary(report))
    report.png_file = show.heatmap_chart(heat, folder / "heatmap.png", show.heat_title(report))
    show.render(console, report)
    return report
