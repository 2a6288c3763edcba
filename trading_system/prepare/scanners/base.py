"""The scanner contract (DESIGN §10): ``Scanner``, ``ScanContext``, ``ScanResult``.

A scanner is a class with ``setup(ctx) -> bool`` (False: skip this run, e.g. no data it
needs), ``scan(ctx) -> ScanResult`` and ``teardown(ctx)``.  It reads everything from the
context, never from the network or the disk: the context's bars are already split-adjusted
and clamped to the as-of instant, so a scanner cannot see a bar after the night it scans.

Its criteria arrive validated in ``self.params`` (the class's ``Params`` model when it declares
one, else the entry's ``params`` mapping as given).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from functools import cached_property
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from trading_system.prepare.panels import day_numbers, factorize_grouped, right_aligned, rows_from_end, to_date

Phase = Literal["evening", "morning", "backtest"]
_FIELDS = ("open", "high", "low", "close", "volume")


@dataclasses.dataclass
class ScanResult:
    """What one scanner found on one night.

    ``symbols``: the finds, best first by the scanner's own ranking (``max_symbols`` keeps the
    head).  ``metadata``: per find, the figures that made it a find (plain numbers or strings;
    ``reason`` if given is what a veto prints).  ``execution_time_ms``, ``skipped`` (its
    ``setup`` declined the night), ``error`` (one sentence) and ``notes`` (one line per problem
    with what was returned, e.g. symbols dropped) are filled by the runner.
    """

    symbols: list[str]
    metadata: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    execution_time_ms: float = 0.0
    skipped: bool = False
    error: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class ScanContext:
    """Everything a scanner may read about one night.

    ``session``: the session scanned (the scan session in the evening and in a backtest; in the
    morning, the last closed session, whose close the pre-market prices are compared with).
    ``phase``: ``evening`` | ``morning`` | ``backtest``.  ``now``: the as-of instant (ET).
    ``bars``: long frame (symbol, date, open, high, low, close, volume), split-adjusted, no bar
    dated after ``session``.  ``premarket``: symbol -> pre-market price in dollars (morning only,
    else empty).  ``params``: the scanner's criteria.  ``universe``: the evening universe's
    symbols (``set()`` when the scanner runs alone); ``watchlist``: ``universe.watchlist``.
    """

    session: dt.date
    phase: Phase
    now: dt.datetime
    bars: pd.DataFrame
    premarket: Mapping[str, float] = dataclasses.field(default_factory=dict)
    params: Any = None
    universe: frozenset[str] = frozenset()
    watchlist: frozenset[str] = frozenset()

    def with_params(self, params: Any) -> "ScanContext":
        """The same night for another scanner (its own criteria); the bar panel is shared."""
        ctx = dataclasses.replace(self, params=params)
        object.__setattr__(ctx, "panel", self.panel)   # built once for the night, whoever asks first
        return ctx

    @cached_property
    def panel(self) -> "BarPanel":
        """The bars as right-aligned panels of the symbols that have a bar dated ``session``."""
        return BarPanel(self.bars, self.session)

    @property
    def symbols(self) -> pd.Index:
        """The symbols with a bar on ``session`` (sorted): the columns of every :meth:`history` panel."""
        return self.panel.symbols

    def history(self, field: str, sessions: int) -> np.ndarray:
        """The last ``sessions`` values of ``field`` (open/high/low/close in dollars, volume in shares)
        per symbol: shape ``(sessions, len(symbols))``, the last row on ``session``, NaN above a
        symbol's first bar.  Each column is the symbol's own bars (no calendar alignment)."""
        return self.panel.history(field, sessions)

    def last(self) -> pd.DataFrame:
        """One row per symbol of :attr:`symbols`: the session's open, high, low, close, volume and
        ``prev_close`` (the close of the symbol's previous bar; NaN for a first bar)."""
        return self.panel.last()


class BarPanel:
    """Long bars -> right-aligned panels for the symbols that have a bar dated ``session``.

    Built once per night and shared by every scanner (the arrays are grouped once; each
    ``history(field, n)`` is one numpy scatter).  Bars dated after ``session`` raise: the
    context must be clamped by its builder, and this is the last line of the no-peek proof.

    Raises:
        ValueError: a bar is dated after ``session``, or a column of ``_FIELDS`` is missing.
    """

    def __init__(self, bars: pd.DataFrame, session: dt.date):
        missing = [c for c in ("symbol", "date", *_FIELDS) if c not in bars.columns]
        if missing:
            raise ValueError(f"the scan's bars have no {', '.join(missing)} column")
        day = (to_date(session) - dt.date(1970, 1, 1)).days
        days = day_numbers(bars["date"]) if len(bars) else np.empty(0, dtype=np.int64)
        if len(days) and days.max() > day:
            raise ValueError(f"the scan's bars hold a bar after session {session}: the context must be clamped")
        if len(bars) > 1:
            codes, symbols = factorize_grouped(bars["symbol"]) or pd.factorize(bars["symbol"], sort=True)
        else:
            codes, symbols = pd.factorize(bars["symbol"], sort=True)
        codes = np.asarray(codes, dtype=np.int64)
        order = np.lexsort((days, codes))
        codes, days = codes[order], days[order]
        n = len(symbols)
        from_end = rows_from_end(codes, n)
        is_last = from_end == 0
        on_session = np.zeros(n, dtype=bool)
        on_session[codes[is_last & (days == day)]] = True
        keep_cols = np.flatnonzero(on_session)
        remap = np.full(n, -1, dtype=np.int64)
        remap[keep_cols] = np.arange(len(keep_cols))
        rows = on_session[codes]
        self._codes, self._from_end = remap[codes[rows]], from_end[rows]
        self._values = {f: bars[f].to_numpy(dtype=float, na_value=np.nan)[order][rows] for f in _FIELDS}
        self.symbols = pd.Index(np.asarray(symbols, dtype=object)[keep_cols], name="symbol", dtype=object)
        self._cache: dict[tuple[str, int], np.ndarray] = {}
        self._last: pd.DataFrame | None = None

    def history(self, field: str, sessions: int) -> np.ndarray:
        """See :meth:`ScanContext.history`. Raises KeyError for a field not in open/high/low/close/volume.

        The array is shared by every scanner of the night, so it is read-only (a scanner that wants
        to change it takes a copy)."""
        key = (field, sessions)
        if key not in self._cache:
            keep = self._from_end < sessions
            panel = right_aligned(self._codes[keep], self._values[field][keep], len(self.symbols),
                                  sessions, self._from_end[keep])
            panel.setflags(write=False)
            self._cache[key] = panel
        return self._cache[key]

    def last(self) -> pd.DataFrame:
        """See :meth:`ScanContext.last`. A copy each call (built once): a scanner may add columns to it."""
        if self._last is None:
            two = {f: self.history(f, 2) for f in _FIELDS}
            frame = pd.DataFrame({f: two[f][-1] for f in _FIELDS}, index=self.symbols)
            frame["prev_close"] = two["close"][0]
            self._last = frame
        return self._last.copy()


class Scanner:
    """Base of every scanner.  Subclasses implement :meth:`scan`; the others are optional.

    Class attributes: ``Params`` (a pydantic model of the criteria, or None to take the entry's
    ``params`` as a dict), ``defaults`` (the scanner's own ``min_price`` / ``max_price`` /
    ``min_volume`` when the entry leaves them out); :meth:`window` declares how many sessions of
    bars it reads, as zipline's factors declare theirs.
    """

    Params: ClassVar[type[BaseModel] | None] = None
    defaults: ClassVar[dict[str, float | None]] = {}

    def __init__(self, params: Any = None):
        raw = dict(params or {})
        self.params = self.Params.model_validate(raw) if self.Params is not None else raw

    def window(self) -> int:
        """Sessions of bars the rule reads (the session and the ones before it); 2 by default."""
        return 2

    def setup(self, ctx: ScanContext) -> bool:
        """Prepare for one night; False skips it (recorded as ``skipped``, not as a failure)."""
        return True

    def scan(self, ctx: ScanContext) -> ScanResult:
        """Find the night's symbols; see :class:`ScanResult`."""
        raise NotImplementedError(f"{type(self).__name__} does not implement scan(ctx)")

    def teardown(self, ctx: ScanContext) -> None:
        """Release what ``setup`` took; called even when ``scan`` raised."""


def ranked(values: pd.Series, keep: pd.Series, metadata: Mapping[str, pd.Series],
           ascending: bool = False) -> ScanResult:
    """A ``ScanResult`` of the symbols where ``keep`` holds, ranked by ``values`` (largest first
    unless ``ascending``), ties by symbol; ``metadata`` columns (aligned with ``values``) rounded
    to 6 decimals per find.  A helper for scanners whose rule is a mask and whose rank is a figure."""
    hits = values[keep.fillna(False).astype(bool)]
    order = pd.DataFrame({"symbol": hits.index.astype(str), "value": hits.to_numpy(dtype=float)})
    order = order.sort_values(["value", "symbol"], ascending=[ascending, True], kind="stable")
    symbols = order["symbol"].tolist()
    if not symbols:
        return ScanResult(symbols=[], metadata={})
    table = pd.DataFrame({k: pd.Series(col).reindex(symbols) for k, col in metadata.items()}, index=symbols)
    meta = {s: {k: _plain(v) for k, v in row.items()} for s, row in zip(symbols, table.to_dict("records"))}
    return ScanResult(symbols=symbols, metadata=meta)


def _plain(value: Any) -> Any:
    """A JSON-ready number: numpy scalars to float rounded to 6 decimals, NaN to None."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        f = float(value)
        return None if f != f else round(f, 6)
    return value
