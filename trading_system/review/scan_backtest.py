"""``prep scan-backtest NAME --start --end`` (DESIGN §10): what a scanner's finds did next.

Every session night t in [start, end], the scanner runs on the context the nightly run would
build that evening: the whole market's bars from ``discovery.history_start(t)`` to t, split-adjusted
as known on t (``CachedSource.bars(end=t)``: no bar and no split dated after t), phase
``backtest``, the universe of that night (``build_universe``).  Every other scanner enabled in
config.yaml runs on the same context, for the overlap.  Scanners run in-process
(``isolate=False``: hundreds of nights, a user watching; no timeout is enforced), on one bar panel
built per night.  As in the nightly run, ``record.DISABLE_AFTER`` failed nights in a row end the
scan-backtest (exit 1) for the scanner itself, and leave another scanner out from then on.

Only once every night has run are the forward returns read, from the bars up to the last
session closed as of the clock, all adjusted as of that session (one share basis per ratio)::

    r_h(t, s) = close(s, t+h) / open(s, t+1) - 1        h in HORIZONS (sessions)

t+1 is the session after the night, so r_1 is the next session's close over its open.  A symbol
without a bar on t+1 or t+h has no r_h.  A night with fewer than h sessions after it in the data
counts for the shorter horizons only.  Figures per horizon (fractions):

- finds: the mean of r_h over every (night, find) that has one;
- universe: over the same (night, find) pairs, the universe's equal-weight mean r_h of that night
  (the finds' benchmark, weighted as the finds are); difference = finds - universe;
- universe, all nights: the mean over the nights with h sessions after them of the universe's mean.

Overlap with another scanner: the share of this scanner's (night, find) pairs it also found that
night.  The curve (PNG): per night that has a next session, the finds' equal-weight mean r_1 (0 on
a night without finds: cash) and the universe's mean r_1, compounded, dated by the session the
return is earned in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from typing import Callable

import numpy as np
import pandas as pd

from trading_system import sessions
from trading_system.config import Config
from trading_system.config_scanners import ScannerEntry
from trading_system.errors import BadInputError, RunFailure
from trading_system.marketdata.cached import CachedSource
from trading_system.prepare import discovery
from trading_system.prepare.panels import day_numbers
from trading_system.prepare.scanners.loader import ScannerLoadError, bind, find_entry
from trading_system.prepare.scanners.record import DISABLE_AFTER
from trading_system.prepare.scanners.runner import run_entry
from trading_system.prepare.universe import build_universe

#: Forward horizons, in sessions after the night (the first is the next session).
HORIZONS = (1, 5, 20)
#: The benchmark's label in the curve and the figures.
UNIVERSE = "universe"
#: The instant each night's context is built at (the nightly scan's hour, ET).
EVENING = dt.time(20, 0)

Step = Callable[[int, int, dt.date], None]


@dataclasses.dataclass
class NightRun:
    """One night: the scanner's finds (best first), the universe, the other scanners' finds
    (a scanner that failed that night is absent), and the scanner's error / skip / cap."""

    session: dt.date
    finds: list[str]
    universe: list[str]
    others: dict[str, list[str]]
    error: str | None = None
    skipped: bool = False
    capped: bool = False


@dataclasses.dataclass
class Horizon:
    """The figures at ``sessions`` after the night (returns are fractions; None when nothing to average)."""

    sessions: int
    nights: int                      # nights with ``sessions`` sessions after them in the data
    finds: int                       # (night, find) pairs with a return
    finds_mean: float | None
    universe_mean: float | None      # over the same pairs: the universe's mean of the find's night
    universe_all: float | None       # over every night with the horizon

    @property
    def difference(self) -> float | None:
        """Finds minus universe (same nights), a fraction."""
        if self.finds_mean is None or self.universe_mean is None:
            return None
        return self.finds_mean - self.universe_mean


@dataclasses.dataclass
class Overlap:
    """Another scanner against this one: the pairs both found, and its own count."""

    name: str
    shared: int
    share: float | None              # shared / this scanner's finds
    their_finds: int
    missing_nights: int              # nights it failed, or was no longer run after failing


@dataclasses.dataclass
class ScanBacktestResult:
    """Everything ``prep scan-backtest`` reports.

    ``returns``: night -> find -> horizon -> r_h (None: no bar, or the horizon is past the data);
    ``universe_returns``: night -> horizon -> the universe's mean r_h; ``curve``: cumulative r_1
    (fractions) of the finds (column = the scanner's name) and of ``UNIVERSE``, indexed by the
    session the return is earned in; ``last_data``: the last session the forward returns may read.
    """

    entry: ScannerEntry
    start: dt.date
    end: dt.date
    data_source: str
    last_data: dt.date
    nights: list[NightRun]
    returns: dict[dt.date, dict[str, dict[int, float | None]]]
    universe_returns: dict[dt.date, dict[int, float | None]]
    horizons: list[Horizon]
    overlap: list[Overlap]
    curve: pd.DataFrame
    notes: list[str]
    seconds: float

    @property
    def hits(self) -> list[int]:
        """Finds per night."""
        return [len(n.finds) for n in self.nights]

    @property
    def nights_with_hits(self) -> int:
        return sum(1 for h in self.hits if h)

    @property
    def failed(self) -> list[NightRun]:
        return [n for n in self.nights if n.error is not None]


def night_instant(day: dt.date) -> dt.datetime:
    """The as-of instant of night ``day``'s context: 20:00 ET."""
    return dt.datetime.combine(day, EVENING, tzinfo=sessions.ET)


def backtest_nights(source: CachedSource, start: dt.date, end: dt.date, last: dt.date) -> list[dt.date]:
    """The sessions in [start, end] that the data and the clock can serve.

    Raises:
        BadInputError: a reversed or empty range, or one outside the data or past ``last``.
    """
    if start > end:
        raise BadInputError(f"--start {start} is after --end {end}; swap them.")
    days = sessions.sessions_between(start, end)
    if not days:
        raise BadInputError(f"there is no trading session between {start} and {end}; widen the range.")
    first, newest = source.first_date(), source.last_date()
    if days[0] < first or days[-1] > min(newest, last):
        raise BadInputError(f"the scan-backtest needs bars from {days[0]} to {days[-1]}, but the data covers "
                            f"{first} to {min(newest, last)}; pick --start/--end inside it.")
    return days


def _run_night(cfg: Config, entry: ScannerEntry, others: list[ScannerEntry], source: CachedSource,
               day: dt.date) -> NightRun:
    """Build night ``day``'s context (clamped to it) and run the scanner and the others on it."""
    bars = source.bars(end=day, start=discovery.history_start(day))
    universe = build_universe(cfg, source, day).symbols
    ctx = discovery.scan_context(cfg, bars, day, night_instant(day), "backtest", universe)
    ctx.panel  # noqa: B018 (built once: with_params shares a built panel with every scanner of the night)
    run, _ = run_entry(entry, cfg.scanners, ctx, isolate=False)
    found = {}
    for other in others:
        theirs, _ = run_entry(other, cfg.scanners, ctx, isolate=False)
        if not theirs.failed:
            found[other.name] = theirs.symbols
    return NightRun(session=day, finds=run.symbols, universe=universe, others=found, error=run.error,
                    skipped=run.skipped, capped=run.capped_from is not None)


class Forward:
    """Opens and closes of every symbol on every session from the first night to ``last`` (wide,
    sessions x symbols, NaN without a bar), one share basis; r_h per night as in the module doc."""

    def __init__(self, bars: pd.DataFrame, days: list[dt.date]):
        self.days = days
        numbers = np.array([(d - dt.date(1970, 1, 1)).days for d in days], dtype=np.int64)
        codes, symbols = pd.factorize(bars["symbol"].astype(str))
        at = day_numbers(bars["date"]) if len(bars) else np.empty(0, dtype=np.int64)
        pos = np.minimum(np.searchsorted(numbers, at), len(numbers) - 1)
        ok = numbers[pos] == at
        n, m = len(days), len(symbols)
        opens, closes = np.full((n, m), np.nan), np.full((n, m), np.nan)
        opens[pos[ok], codes[ok]] = bars["open"].to_numpy(dtype=float)[ok]
        closes[pos[ok], codes[ok]] = bars["close"].to_numpy(dtype=float)[ok]
        self.column = {str(s): i for i, s in enumerate(symbols)}
        self.r: dict[int, np.ndarray] = {}
        for h in HORIZONS:
            r = np.full((n, m), np.nan)
            if n > h:
                with np.errstate(divide="ignore", invalid="ignore"):
                    r[: n - h] = closes[h:] / opens[1: n - h + 1] - 1.0
            self.r[h] = r

    def has(self, i: int, h: int) -> bool:
        """Whether night ``i`` has ``h`` sessions after it in the data."""
        return i + h < len(self.days)

    def of(self, i: int, symbols: list[str]) -> dict[str, dict[int, float | None]]:
        """symbol -> horizon -> r_h of night ``i`` (None: no value)."""
        cols = [self.column.get(s) for s in symbols]
        return {s: {h: _num(self.r[h][i, c]) if c is not None else None for h in HORIZONS}
                for s, c in zip(symbols, cols)}

    def mean(self, i: int, symbols: list[str]) -> dict[int, float | None]:
        """horizon -> the equal-weight mean r_h of ``symbols`` on night ``i`` (those with a value)."""
        cols = [c for c in (self.column.get(s) for s in symbols) if c is not None]
        out: dict[int, float | None] = {}
        for h in HORIZONS:
            values = self.r[h][i, cols]
            values = values[np.isfinite(values)]
            out[h] = float(values.mean()) if len(values) else None
        return out


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def horizons(nights: list[NightRun], fwd: Forward, returns, universe_returns) -> list[Horizon]:
    """The figures per horizon (see the module doc)."""
    out = []
    for h in HORIZONS:
        pairs = [(r[h], universe_returns[n.session][h]) for n in nights for r in returns[n.session].values()
                 if r[h] is not None and universe_returns[n.session][h] is not None]
        every = [universe_returns[n.session][h] for n in nights if universe_returns[n.session][h] is not None]
        out.append(Horizon(sessions=h, nights=sum(fwd.has(i, h) for i in range(len(nights))), finds=len(pairs),
                           finds_mean=_mean([p[0] for p in pairs]), universe_mean=_mean([p[1] for p in pairs]),
                           universe_all=_mean(every)))
    return out


def overlaps(nights: list[NightRun], others: list[ScannerEntry]) -> list[Overlap]:
    """Each other scanner's overlap with the scanner's finds, over the same nights."""
    total = sum(len(n.finds) for n in nights)
    out = []
    for other in others:
        shared = sum(len(set(n.finds) & set(n.others.get(other.name, ()))) for n in nights)
        out.append(Overlap(name=other.name, shared=shared, share=shared / total if total else None,
                           their_finds=sum(len(n.others.get(other.name, ())) for n in nights),
                           missing_nights=sum(other.name not in n.others for n in nights)))
    return out


def curve(name: str, nights: list[NightRun], fwd: Forward, returns, universe_returns) -> pd.DataFrame:
    """Cumulative r_1 (fractions) of the finds (equal weight per night, 0 without finds) and of the
    universe, indexed by the session after each night (the session the return is earned in)."""
    rows = []
    for i, n in enumerate(nights):
        u = universe_returns[n.session][1]
        if not fwd.has(i, 1) or u is None:
            continue
        mine = [r[1] for r in returns[n.session].values() if r[1] is not None]
        rows.append((fwd.days[i + 1], _mean(mine) or 0.0, u))
    frame = pd.DataFrame(rows, columns=["session", name, UNIVERSE]).set_index("session")
    return (1.0 + frame).cumprod() - 1.0


def _others(cfg: Config, entry: ScannerEntry) -> tuple[list[ScannerEntry], list[str]]:
    """The configured scanners enabled in config.yaml other than ``entry`` that load; a note per one that does not."""
    others, notes = [], []
    for e in cfg.scanners:
        if e.name == entry.name or not e.enabled:
            continue
        try:
            bind(e, cfg.scanners)
            others.append(e)
        except ScannerLoadError as exc:
            notes.append(f"left out of the overlap: {exc}")
    return others, notes


def _stop_if_broken(entry: ScannerEntry, nights: list[NightRun]) -> None:
    """RunFailure once the scanner has failed ``DISABLE_AFTER`` nights in a row (a nightly run would
    disable it): its figures would mean nothing, and every failure costs two attempts."""
    recent = nights[-DISABLE_AFTER:]
    if len(recent) == DISABLE_AFTER and all(n.error is not None for n in recent):
        raise RunFailure(f"scanner {entry.name} failed {DISABLE_AFTER} nights in a row ({recent[0].session} to "
                         f"{recent[-1].session}; last: {recent[-1].error}); a nightly run would disable it: "
                         "fix it and run again.")


def _still_running(others: list[ScannerEntry], nights: list[NightRun], notes: list[str]) -> list[ScannerEntry]:
    """``others`` but those that failed the last ``DISABLE_AFTER`` nights in a row (a note for each):
    they are left out from the next night on, as a nightly run would disable them."""
    recent = nights[-DISABLE_AFTER:]
    if len(recent) < DISABLE_AFTER:
        return others
    keep = []
    for other in others:
        if all(other.name not in n.others for n in recent):
            notes.append(f"scanner {other.name} failed {DISABLE_AFTER} nights in a row (to {recent[-1].session}) "
                         "and was not run after them; its overlap counts the nights it ran.")
        else:
            keep.append(other)
    return keep


def _notes(entry: ScannerEntry, nights: list[NightRun], window: int, source: CachedSource) -> list[str]:
    """What the reader should know: the morning choice, thin early history, caps, failures, skips."""
    notes = []
    if entry.phase == "morning":
        notes.append(f"scanner {entry.name} runs in the morning on pre-market prices; history has none, so each "
                     "night it ran on that night's bars (phase backtest).")
    known = sessions.sessions_between(source.first_date(), nights[-1].session)
    if len(known) >= window and known[window - 1] > nights[0].session:
        notes.append(f"the data starts {source.first_date()}: until {known[window - 1]} a night has fewer than the "
                     f"{window} sessions of bars scanner {entry.name} reads, so it may find less there.")
    capped = sum(n.capped for n in nights)
    if capped:
        notes.append(f"{capped} night(s) had more finds than max_symbols {entry.max_symbols}; the top ones were kept.")
    failed = [n for n in nights if n.error is not None]
    if failed:
        notes.append(f"scanner {entry.name} failed both attempts on {len(failed)} night(s) (first {failed[0].session}: "
                     f"{failed[0].error}); they count as nights without finds.")
    skipped = sum(n.skipped for n in nights)
    if skipped:
        notes.append(f"its setup declined {skipped} night(s); they count as nights without finds.")
    return notes


def run_scan_backtest(cfg: Config, name: str, start: dt.date, end: dt.date, source: CachedSource,
                      now: dt.datetime, step: Step | None = None) -> ScanBacktestResult:
    """Run scanner ``name`` (configured, else the built-in with its defaults) every night in
    [start, end], then read the forward returns (see the module doc).

    Requires: ``source`` holding the bars from ``discovery.history_start(start)`` (less is served,
    with a note) to ``end``.  ``step(done, total, night)`` is called after each night.
    Raises:
        ConfigError: no such scanner, or its module does not load.
        BadInputError: see :func:`backtest_nights`.
        RunFailure: the scanner failed on every night, or on ``DISABLE_AFTER`` nights in a row.
    """
    t0 = time.perf_counter()
    entry = find_entry(cfg.scanners, name)
    window = bind(entry, cfg.scanners).scanner.window()
    others, notes = _others(cfg, entry)
    last = min(source.last_date(), sessions.last_closed_session(now))
    days = backtest_nights(source, start, end, last)
    nights: list[NightRun] = []
    running = others
    for i, day in enumerate(days):
        nights.append(_run_night(cfg, entry, running, source, day))
        _stop_if_broken(entry, nights)
        running = _still_running(running, nights, notes)
        if step is not None:
            step(i + 1, len(days), day)
    if all(n.error is not None for n in nights):
        raise RunFailure(f"scanner {entry.name} failed on every night from {days[0]} to {days[-1]} "
                         f"(first: {nights[0].error}).")
    # the scanners are done: only now are the bars after each night read
    fwd = Forward(source.bars(end=last, start=days[0]), sessions.sessions_between(days[0], last))
    returns = {n.session: fwd.of(i, n.finds) for i, n in enumerate(nights)}
    universe_returns = {n.session: fwd.mean(i, n.universe) for i, n in enumerate(nights)}
    return ScanBacktestResult(
        entry=entry, start=days[0], end=days[-1], data_source=source.name, last_data=last, nights=nights,
        returns=returns, universe_returns=universe_returns,
        horizons=horizons(nights, fwd, returns, universe_returns), overlap=overlaps(nights, others),
        curve=curve(entry.name, nights, fwd, returns, universe_returns),
        notes=notes + _notes(entry, nights, window, source), seconds=time.perf_counter() - t0)
