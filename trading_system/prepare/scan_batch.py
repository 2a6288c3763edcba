"""Every night's evening scan of a backtest in one pass over the panel (DESIGN §12, "Speed").

The scan of a night depends only on the bars up to it: each symbol's last ``HISTORY_DAYS``
calendar days of bars, split-adjusted as the splits known that night say.  The nightly path
reads those bars as a long frame and ``score_universe`` builds one right-aligned panel from
them; here the panels of many nights sit side by side as the columns of one wide panel
(``scan_depth`` rows, one column per (night, symbol)), taken straight from the source's
arrays, and the very same ``panel_metrics`` / ``panel_median`` / ``scan_frame`` of
``scoring`` turn them into each night's frame.  Every reduction runs along the rows, so a
column's figures never depend on its neighbours (``panel_metrics`` makes sure of it whatever the
panel's layout or width): the frames equal ``score_universe``'s to the bit
(``tests/test_backtest_batch.py`` proves it night by night, and the whole backtest's
decisions identical, over the 2020 crash and two splits).

Choices: the nights are scored in chunks of ``CHUNK`` (a wide panel of 32 nights x 500
symbols x 250 rows is ~32 MB); a symbol the source holds but a night's universe does not is
scored and dropped (the union of the nights' universes is scored each night).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from trading_system.config import Config
from trading_system.prepare.discovery import history_start
from trading_system.prepare.panels import EPOCH
from trading_system.prepare.scoring import as_price, panel_median, panel_metrics, scan_depth, scan_frame

#: Nights scored together in one wide panel.
CHUNK = 32

#: No bar: the ``last_day`` sentinel ``scan_frame`` reads as "no date".
NO_DAY = np.iinfo(np.int64).min


class PanelSource(Protocol):
    """What the batch reads of a bar source (``marketdata.cached.CachedSource`` has it)."""

    def layout(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(symbols sorted, first row per symbol, end row per symbol, day number per row)."""
        ...

    def adjusted(self, through: dt.date) -> tuple[np.ndarray, np.ndarray]:
        """(close, volume) per row, split-adjusted as known on ``through``."""
        ...


@dataclasses.dataclass(frozen=True)
class NightScan:
    """One night's scan (``score_universe``'s frame), the universe's symbols with a bar dated the
    night (the coverage check's input) and the oldest bar of the window (None without bars)."""

    frame: pd.DataFrame
    have_bar: frozenset[str]
    first_bar: dt.date | None


@dataclasses.dataclass(frozen=True)
class RescoreJob:
    """One morning re-score: the picks' ``prices`` (symbol -> dollars) at ``session``'s open, their
    history up to ``night`` (the scan session before it)."""

    night: dt.date
    session: dt.date
    prices: Mapping[str, float]


class NightlyScans:
    """The evening scans of ``nights`` (sorted sessions), each of its own universe, computed a chunk
    at a time on first request.

    ``night(n).frame`` is what ``score_universe(bars, n, ...)`` answers for the bars the nightly
    path reads that night (the universe's bars dated in [``history_start(n)``, ``n``], adjusted
    through ``n``); the caller copies it before changing it.  KeyError for a night not asked.
    """

    def __init__(self, source: PanelSource, nights: Sequence[dt.date], universes: Mapping[dt.date, list[str]],
                 cfg: Config):
        self._source = source
        self._nights = list(nights)
        self._chunk_of = {night: i // CHUNK for i, night in enumerate(self._nights)}
        self._cfg = cfg
        symbols, first, end, day = source.layout()
        self._symbols, self._day = symbols, day
        wanted = set().union(*(set(u) for u in universes.values())) if universes else set()
        self._codes = np.array([i for i, s in enumerate(symbols) if s in wanted], dtype=np.int64)
        position = {s: i for i, s in enumerate(symbols[self._codes])}
        self._in_universe = {}
        for night, universe in universes.items():
            mask = np.zeros(len(self._codes), dtype=bool)
            mask[[position[s] for s in universe if s in position]] = True
            self._in_universe[night] = mask
        # One sorted key per row, (code, day), so each night's window of every symbol is two searches.
        self._key_scale = int(day.max()) + 2 if len(day) else 1
        codes = np.repeat(np.arange(len(symbols), dtype=np.int64), end - first)
        self._keys = codes * self._key_scale + day
        self._depth = scan_depth(cfg.scoring, cfg.eligibility.dollar_volume_window)
        self._code_of = {str(sym): i for i, sym in enumerate(symbols)}
        self._frames: dict[dt.date, NightScan] = {}
        self._done_chunk: int | None = None

    def night(self, night: dt.date) -> NightScan:
        """The scan of ``night`` (scoring its chunk of nights first if needed)."""
        chunk = self._chunk_of[night]
        if chunk != self._done_chunk:
            self._frames = self._score_chunk(self._nights[chunk * CHUNK:(chunk + 1) * CHUNK])
            self._done_chunk = chunk
        return self._frames[night]

    def _window(self, night: dt.date, codes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) rows of each symbol's bars dated in [history_start(night), night]: of ``codes``
        (default: every scored symbol)."""
        base = (self._codes if codes is None else codes) * self._key_scale
        start = np.searchsorted(self._keys, base + (history_start(night) - EPOCH).days, side="left")
        end = np.searchsorted(self._keys, base + (night - EPOCH).days, side="right")
        return start, end

    def rescore(self, jobs: Sequence[RescoreJob]) -> list[dict[str, float]]:
        """Many morning re-scores at once: per job, symbol -> score (0-100 points) of each symbol
        ``scoring.rescore`` scores (a usable price and some history), NaN scores left out (as
        ``morning_scores`` keeps them).

        Each column is what ``rescore`` builds for the symbol: its last ``depth - 1`` closes dated in
        [``history_start(night)``, ``night``], split-adjusted through the job's session, and the price
        below them; the columns of every job are scored together by the same ``panel_metrics``.
        """
        depth = scan_depth(self._cfg.scoring)
        rows = np.arange(depth - 1, dtype=np.int64)[:, None]
        columns, layout = [], []
        for job in jobs:
            names = sorted(job.prices)
            prices = np.array([as_price(job.prices[s]) for s in names], dtype=float)
            codes = np.array([self._code_of.get(s, -1) for s in names], dtype=np.int64)
            start, end = self._window(job.night, np.maximum(codes, 0))
            scored = np.isfinite(prices) & (prices > 0) & (codes >= 0) & (end > start)
            close, _volume = self._source.adjusted(job.session)
            idx = end[None, :] - (depth - 1) + rows
            history = np.where(idx >= start[None, :], close[np.maximum(idx, 0)], np.nan)
            columns.append(np.vstack([history, prices[None, :]])[:, scored])
            layout.append([s for s, ok in zip(names, scored) if ok])
        if not columns:
            return []
        scores = panel_metrics(np.hstack(columns), self._cfg.scoring)["score"]
        out, at = [], 0
        for names in layout:
            out.append({s: v for s, v in zip(names, scores[at:at + len(names)].tolist()) if v == v})
            at += len(names)
        return out

    def _score_chunk(self, nights: list[dt.date]) -> dict[dt.date, NightScan]:
        """Each night of ``nights``: its panel columns gathered side by side, scored at once, cut apart."""
        depth, dv_window, width = self._depth, self._cfg.eligibility.dollar_volume_window, len(self._codes)
        closes = np.full((depth, width * len(nights)), np.nan)
        dollars = np.full((dv_window, width * len(nights)), np.nan)
        rows = np.arange(depth, dtype=np.int64)[:, None]
        per_night = []
        for j, night in enumerate(nights):
            close, volume = self._source.adjusted(night)
            start, end = self._window(night)
            idx = end[None, :] - depth + rows                     # row k from the end sits at depth-1-k
            valid = idx >= start[None, :]
            cols = slice(j * width, (j + 1) * width)
            closes[:, cols] = np.where(valid, close[np.maximum(idx, 0)], np.nan)
            tail = idx[depth - dv_window:]
            product = close[np.maximum(tail, 0)] * volume[np.maximum(tail, 0)]
            dollars[:, cols] = np.where(valid[depth - dv_window:], product, np.nan)
            per_night.append((start, end, close))
        metrics = panel_metrics(closes, self._cfg.scoring)
        medians = panel_median(dollars)
        out = {}
        for j, (night, (start, end, close)) in enumerate(zip(nights, per_night)):
            keep = np.flatnonzero(self._in_universe[night] & (end > start))
            picked = j * width + keep
            m = {k: v[picked] for k, v in metrics.items()}
            out[night] = self._frame(night, keep, start, end, close, m, medians[picked])
        return out

    def _frame(self, night: dt.date, keep: np.ndarray, start: np.ndarray, end: np.ndarray, close: np.ndarray,
               metrics: dict[str, np.ndarray], dollar_volume: np.ndarray) -> NightScan:
        """The night's scan frame over ``keep``: the universe's symbols that have a bar in the window
        (``metrics`` and ``dollar_volume`` already cut to them)."""
        counts = (end[keep] - start[keep]).astype(np.int64)
        last = end[keep] - 1
        last_day = self._day[last].astype(np.int64)
        symbols = pd.Index(self._symbols[self._codes[keep]], name="symbol", dtype=object)
        c = self._cfg
        frame = scan_frame(symbols, counts, close[last], last_day, dollar_volume, metrics, night, c.scoring,
                           c.eligibility, c.buckets)
        have = frozenset(symbols[last_day == (night - EPOCH).days])
        first = int(self._day[start[keep]].min()) if len(keep) else None
        return NightScan(frame, have, None if first is None else EPOCH + dt.timedelta(days=first))
