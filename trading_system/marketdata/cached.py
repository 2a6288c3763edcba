"""An in-memory source for backtests: the bar store read once, split-adjusted per known split.

``CachedSource`` answers the ``MarketData`` protocol (``bars``, ``premarket_prices``,
``premarket_source_problem``, ``ensure_session``) and the three reads the simulated broker makes of a store
(``splits``, ``session_opens``, ``read``) from numpy arrays held in memory, so a backtest
of hundreds of sessions reads the Parquet file once instead of once a night.

The answers are the ones ``BarStore.read`` gives, to the bit: the split factors are
rebuilt only when a newly known split appears, i.e. when the count of splits whose
ex-date is on or before ``adjust_through`` changes, and a split dated after it is never
applied (adjusting by a future split changes price levels, and with them the $5
eligibility filter: that would be a peek).  No bar dated after ``end`` is ever returned.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from trading_system.errors import AsOfError, BadInputError, DataError
from trading_system.marketdata.base import Quote
from trading_system.marketdata.sample import PREMARKET_SOURCE
from trading_system.marketdata.store import BAR_COLUMNS, BarStore, day_array

_EPOCH = dt.date(1970, 1, 1)


def _day(d: dt.date) -> int:
    return (d - _EPOCH).days


def _days(dates: pd.Series) -> np.ndarray:
    return day_array(pd.Series(dates)).astype(np.int64)   # days since 1970-01-01


class CachedSource:
    """Raw bars and splits held in memory; split-adjusted, as-of-clamped reads.

    Requires: ``bars`` raw (as traded) with BAR_COLUMNS, ``splits`` with symbol, date, ratio
    (new shares per old share), as ``BarStore`` stores them.  ``name`` is recorded in the
    plans as their data source.
    """

    def __init__(self, bars: pd.DataFrame, splits: pd.DataFrame, name: str = "sample",
                 context_file: Path | None = None):
        self.name = name
        self.context_file = context_file   # index bars for the regime (market_context.parquet), if any
        self._index: dict[str, pd.Series] | None = None
        raw = bars[BAR_COLUMNS].sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
        codes, symbols = pd.factorize(raw["symbol"].astype(str), sort=True)
        self._codes = np.asarray(codes, dtype=np.int64)
        self._symbols = np.asarray(symbols, dtype=object)
        self._code_of = {s: i for i, s in enumerate(self._symbols)}
        self._day = _days(raw["date"]) if len(raw) else np.empty(0, dtype=np.int64)
        self._date = self._day.astype("datetime64[D]").astype(object)   # datetime.date objects
        self._sym = self._symbols[self._codes] if len(raw) else np.empty(0, dtype=object)
        self._sym_str = pd.array(self._sym, dtype="str")   # built once; a night takes its rows
        self._date_arrow = pd.array(pa.array(self._day.astype("int32"), type=pa.int32()).cast(pa.date32()),
                                    dtype=pd.ArrowDtype(pa.date32()))
        self._ohlc = {c: raw[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close")}
        self._volume = raw["volume"].to_numpy(dtype="float64")
        bounds = np.searchsorted(self._codes, np.arange(len(self._symbols) + 1))
        self._first, self._end = bounds[:-1], bounds[1:]
        sp = splits[["symbol", "date", "ratio"]].copy()
        sp["date"] = pd.to_datetime(sp["date"]).dt.date
        self._splits = sp.reset_index(drop=True)
        order = np.argsort(_days(sp["date"]), kind="stable") if len(sp) else np.empty(0, dtype=np.int64)
        self._s_day = _days(sp["date"])[order] if len(sp) else np.empty(0, dtype=np.int64)
        self._s_code = np.array([self._code_of.get(s, -1) for s in sp["symbol"].to_numpy()[order]], dtype=np.int64)
        self._s_ratio = sp["ratio"].to_numpy(dtype=float)[order]
        self._factor_key: int | None = None
        self._factor = np.ones(len(self._day))
        self._by_day: tuple[np.ndarray, np.ndarray] | None = None   # (rows sorted by day, their days)
        self._last_session: tuple[dt.date, pd.DataFrame] | None = None
        self._last_read: tuple[tuple, pd.DataFrame] | None = None
        self.factor_rebuilds = 0
        self._adjusted: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._opens: tuple[dt.date, dict[str, float]] | None = None

    @classmethod
    def from_store(cls, store: BarStore, name: str = "sample") -> "CachedSource":
        """Everything a ``BarStore`` holds (raw bars, splits), read once."""
        from trading_system.marketdata.index_bars import CONTEXT_FILE

        return cls(store.raw_bars(), store.splits(), name, context_file=store.root / CONTEXT_FILE)

    @classmethod
    def from_files(cls, bars_file: Path, splits_file: Path, since: dt.date | None = None) -> "CachedSource":
        """Raw bars from a Parquet file (BAR_COLUMNS) and splits from a CSV (symbol, date, ratio).

        ``since`` drops bars dated before it (a backtest never reads them), to keep memory small.

        Raises:
            BadInputError: a file is missing, unreadable or lacks a column.
        """
        bars_file, splits_file = Path(bars_file), Path(splits_file)
        for path in (bars_file, splits_file):
            if not path.is_file():
                raise BadInputError(f"{path} not found; pass an existing file.")
        try:
            filters = [("date", ">=", since)] if since else None
            bars = pd.read_parquet(bars_file, columns=BAR_COLUMNS, filters=filters)
        except Exception as exc:  # pyarrow raises several types for a broken or foreign file
            raise BadInputError(f"{bars_file} is not a Parquet file of daily bars with columns "
                                f"{', '.join(BAR_COLUMNS)} ({exc.__class__.__name__}).") from exc
        try:
            splits = pd.read_csv(splits_file, dtype={"symbol": str, "ratio": float})
            splits = splits[["symbol", "date", "ratio"]]
        except (ValueError, KeyError) as exc:
            raise BadInputError(f"{splits_file} is not a splits CSV with columns symbol, date, ratio.") from exc
        from trading_system.marketdata.index_bars import CONTEXT_FILE

        return cls(bars, splits, name=f"file:{bars_file.name}", context_file=bars_file.parent / CONTEXT_FILE)

    # --- what the data covers ------------------------------------------------------------------
    def first_date(self) -> dt.date:
        """The oldest bar's date."""
        if not len(self._day):
            raise DataError("the bar data holds no bars.")
        return _EPOCH + dt.timedelta(days=int(self._day.min()))

    def last_date(self) -> dt.date:
        """The newest bar's date."""
        if not len(self._day):
            raise DataError("the bar data holds no bars.")
        return _EPOCH + dt.timedelta(days=int(self._day.max()))

    def symbol_dates(self, symbol: str) -> tuple[dt.date, dt.date] | None:
        """(first, last) bar date of ``symbol``, or None when it has no bar."""
        code = self._code_of.get(symbol)
        if code is None or self._first[code] == self._end[code]:
            return None
        return self._date[self._first[code]], self._date[self._end[code] - 1]

    # --- the whole panel, for the backtest's batch of evening scans -----------------------------
    def layout(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(symbols, first, end, day): the symbols held (sorted, object array); for symbol code i its
        rows ``first[i]:end[i]``; ``day`` each row's date as days since 1970-01-01.  Rows are
        grouped by symbol and dated in order within a group.  Read-only views: never edit them."""
        return self._symbols, self._first, self._end, self._day

    def adjusted(self, through: dt.date) -> tuple[np.ndarray, np.ndarray]:
        """(close, volume) of every row (dollars, shares) split-adjusted as known on ``through``:
        the values ``bars(..., adjust_through=through)`` returns for each row, to the bit (the same
        division by the same factor).  Built once per set of known splits; read-only."""
        factor = self._factors(through)
        if self._adjusted is None or self._adjusted[0] is not factor:
            self._adjusted = (factor, self._ohlc["close"] / factor, self._volume * factor)
        return self._adjusted[1], self._adjusted[2]

    # --- split factors -------------------------------------------------------------------------
    def _factors(self, through: dt.date) -> np.ndarray:
        """Per-row divisor for prices (multiplier for volume) knowing the splits dated <= ``through``."""
        known = int(np.searchsorted(self._s_day, _day(through), side="right"))
        if known != self._factor_key:
            factor = np.ones(len(self._day))
            for code, day, ratio in zip(self._s_code[:known], self._s_day[:known], self._s_ratio[:known]):
                if code < 0:
                    continue
                lo, hi = self._first[code], self._end[code]
                before = lo + int(np.searchsorted(self._day[lo:hi], day, side="left"))
                factor[lo:before] *= ratio
            self._factor, self._factor_key = factor, known
            self.factor_rebuilds += 1
        return self._factor

    def _frame(self, rows: np.ndarray, factor: np.ndarray | None, arrow_dates: bool = True) -> pd.DataFrame:
        f = factor[rows] if factor is not None else 1.0
        out = {"symbol": self._sym_str.take(rows),
               "date": self._date_arrow.take(rows) if arrow_dates else self._date[rows]}
        for col, values in self._ohlc.items():
            out[col] = values[rows] / f
        out["volume"] = self._volume[rows] * f
        return pd.DataFrame(out)

    # --- MarketData protocol -------------------------------------------------------------------
    def ensure_session(self, session: dt.date) -> None:
        """Raise ``AsOfError`` when ``session`` is outside the bars held."""
        first, last = self.first_date(), self.last_date()
        if not first <= session <= last:
            raise AsOfError(f"session {session} is outside the bar data ({first} to {last}); "
                            "pick dates inside it.")

    def bars(self, end: dt.date, start: dt.date | None = None, symbols: list[str] | None = None,
             adjust_through: dt.date | None = None) -> pd.DataFrame:
        """Split-adjusted bars dated in [start, end] as known on ``adjust_through`` (default ``end``).

        The same bars as ``BarStore.read`` (BAR_COLUMNS, sorted by (symbol, date), volume
        float), to the bit; ``date`` is an Arrow date32 column (``datetime.date`` values),
        which the scoring reads without a per-row conversion.  The same read twice in a row
        (a backtest's twin accounts validate the same plan) is answered from the last one.
        """
        key = (end, start, None if symbols is None else tuple(symbols), adjust_through or end)
        if self._last_read is None or self._last_read[0] != key:
            self._last_read = (key, self._frame(self._rows(end, start, symbols), self._factors(key[3])))
        return self._last_read[1].copy(deep=False)  # copy-on-write: a caller's edit never reaches the cache

    def _rows(self, end: dt.date, start: dt.date | None, symbols: list[str] | None) -> np.ndarray:
        """Row numbers of the bars dated in [start, end] of ``symbols``, in (symbol, date) order.

        Rows are grouped by symbol and dated in order within a group, so for a few symbols
        each window is one slice found by two binary searches.
        """
        codes = (range(len(self._symbols)) if symbols is None
                 else sorted({self._code_of[s] for s in symbols if s in self._code_of}))
        lo_day = _day(start) if start is not None else None
        hi_day = _day(end)
        if len(codes) > 64:  # a wide read: one vectorised mask beats hundreds of searches
            wanted = np.zeros(len(self._symbols), dtype=bool)
            wanted[list(codes)] = True
            mask = wanted[self._codes] & (self._day <= hi_day)
            if lo_day is not None:
                mask &= self._day >= lo_day
            return np.flatnonzero(mask)
        pieces = []
        for code in codes:
            lo, hi = self._first[code], self._end[code]
            days = self._day[lo:hi]
            a = lo + (int(np.searchsorted(days, lo_day, side="left")) if lo_day is not None else 0)
            b = lo + int(np.searchsorted(days, hi_day, side="right"))
            if b > a:
                pieces.append(np.arange(a, b))
        return np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int64)

    def premarket_prices(self, symbols: list[str], session: dt.date) -> dict[str, Quote]:
        """The session's raw opening print stands in for the pre-market price (as ``SampleSource``)."""
        rows = self._session_rows(session)
        opens = dict(zip(self._sym[rows], self._ohlc["open"][rows]))
        return {s: Quote(float(opens[s]), PREMARKET_SOURCE) for s in symbols if s in opens}

    def ticker_types(self) -> pd.Series | None:
        """None: a backtest's bars carry no ticker reference data."""
        return None

    def premarket_source_problem(self) -> str | None:
        """Always None: backtests price the morning at the session's open, held in memory."""
        return None

    def index_closes(self, tickers: list[str], start: dt.date, end: dt.date) -> dict[str, pd.Series]:
        """The indices of ``context_file`` (read once, held in memory), clamped to [start, end]; ``{}``
        without a file (the regime then uses the ETF proxies). See ``MarketData``.

        Raises:
            DataError: the file exists but cannot be read.
        """
        from trading_system.marketdata.index_bars import closes_from_file

        if self.context_file is None or not Path(self.context_file).exists():
            return {}
        if self._index is None:
            self._index = closes_from_file(Path(self.context_file), ["I:SPX", "I:NDX", "I:RUT", "I:VIX"],
                                           dt.date(1900, 1, 1), dt.date(2999, 12, 31))
        # each index is sorted by date: two binary searches, the same rows as a mask on the dates
        return {t: s.iloc[s.index.searchsorted(start, "left"):s.index.searchsorted(end, "right")]
                for t, s in self._index.items() if t in tickers}

    # --- the reads the simulated broker makes of a store ---------------------------------------
    def splits(self) -> pd.DataFrame:
        """Every split held: symbol, date (date), ratio."""
        return self._splits

    def read(self, end: dt.date, start: dt.date | None = None, symbols: list[str] | None = None,
             adjust_through: dt.date | None = None) -> pd.DataFrame:
        """``BarStore.read``'s answer (the same as ``bars``): the simulated broker prices a held
        symbol that has no bar on the session at its last close through it."""
        return self.bars(end, start, symbols, adjust_through)

    def session_bars(self, session: dt.date, symbols: list[str] | None = None) -> pd.DataFrame:
        """Raw bars of one session, indexed by symbol (as traded that day; volume float).

        The whole session's frame is shared between callers: treat it as read-only.
        """
        rows = self._session_rows(session)
        if symbols is None:  # the brokers of one backtest session all ask for the same frame
            if self._last_session is None or self._last_session[0] != session:
                self._last_session = (session, self._frame(rows, None, arrow_dates=False).set_index("symbol"))
            return self._last_session[1]
        keep = set(symbols)
        rows = rows[[s in keep for s in self._sym[rows]]] if len(rows) else rows
        return self._frame(rows, None, arrow_dates=False).set_index("symbol")

    def session_opens(self, session: dt.date) -> dict[str, float]:
        """symbol -> the raw opening price of ``session`` (dollars), as ``BarStore.session_opens``; a copy."""
        if self._opens is None or self._opens[0] != session:
            rows = self._session_rows(session)
            self._opens = (session, dict(zip(self._sym[rows].tolist(), self._ohlc["open"][rows].tolist())))
        return dict(self._opens[1])

    def _session_rows(self, session: dt.date) -> np.ndarray:
        """The rows dated ``session``, ascending: a slice of the rows sorted by day (sorted once)."""
        if self._by_day is None:
            order = np.argsort(self._day, kind="stable")      # stable: each day's rows stay ascending
            self._by_day = (order, self._day[order])
        order, days = self._by_day
        day = _day(session)
        return order[np.searchsorted(days, day, side="left"):np.searchsorted(days, day, side="right")]

    def closes(self, session: dt.date, symbols: list[str]) -> dict[str, float]:
        """Each symbol's last close on or before ``session``, on that session's share basis (dollars).

        Symbols with no bar by then are left out.  Used to mark an account to market.
        """
        factor = self._factors(session)
        out = {}
        for s in symbols:
            code = self._code_of.get(s)
            if code is None:
                continue
            lo, hi = self._first[code], self._end[code]
            last = lo + int(np.searchsorted(self._day[lo:hi], _day(session), side="right")) - 1
            if last >= lo:
                out[s] = float(self._ohlc["close"][last] / factor[last])
        return out
