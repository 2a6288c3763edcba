"""Parquet bar store: raw daily bars and splits on disk, split-adjusted on read.

Layout of a store folder::

    bars.parquet   symbol (str), date (date32), open, high, low, close (float64, dollars), volume (int64, shares)
    splits.csv     symbol, date (ex-date), ratio (new shares per old share: 4.0 for a 4-for-1)

Bars are stored *as traded* so a split learnt after the bars were cached never shows
as a -75 % day: it is applied on read.  Every read is clamped to an as-of session;
nothing dated after it, bar or split, is ever visible.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Generic, TypeVar

import numpy as np
import pandas as pd

from trading_system.errors import BadInputError, DataError
from trading_system.state.atomic import atomic_write

BAR_COLUMNS = ["symbol", "date", "open", "high", "low", "close", "volume"]


def split_adjust(bars: pd.DataFrame, splits: pd.DataFrame, through: dt.date,
                 days: np.ndarray | None = None) -> pd.DataFrame:
    """Split-adjust raw bars the way Polygon's ``adjusted=true`` does, knowing splits up to ``through``.

    Requires: ``bars`` with BAR_COLUMNS (raw), ``splits`` with symbol, date, ratio; ``days``, if
    given, is ``bars["date"]`` as ``datetime64[D]`` (a store keeps it, so it is not converted again).
    Sets: open/high/low/close of each bar dated before an ex-date (<= ``through``) divided
    by that split's ratio and volume multiplied by it, compounding over several splits.
    Splits after ``through`` are ignored (no peeking).  Returns a new frame; volume becomes float.
    Source: shared/data/PROVENANCE.md (splits.csv).

    Raises:
        ValueError: ``days`` is not as long as ``bars``.
    """
    if days is not None and len(days) != len(bars):
        raise ValueError(f"split_adjust: {len(days)} days for {len(bars)} bars")
    out = bars.copy()
    out["volume"] = out["volume"].astype("float64")
    known = splits[splits["date"] <= through]
    if known.empty or out.empty:
        return out
    known = known[known["symbol"].isin(out["symbol"].unique())]
    if known.empty:
        return out
    days = day_array(out["date"]) if days is None else days
    known = known[pd.to_datetime(known["date"]).to_numpy(dtype="datetime64[D]") > days.min()]
    factor = np.ones(len(out))
    codes, symbols = pd.factorize(out["symbol"])
    ex_dates = pd.to_datetime(known["date"]).to_numpy(dtype="datetime64[D]")
    # In the file's order, so a symbol's several ratios compound in the same order every time.
    for code, ex_date, ratio in zip(pd.Index(symbols).get_indexer(known["symbol"]), ex_dates, known["ratio"]):
        factor[(codes == code) & (days < ex_date)] *= ratio
    for col in ("open", "high", "low", "close"):
        out[col] = out[col].to_numpy() / factor
    out["volume"] = out["volume"].to_numpy() * factor
    return out


def read_splits(path: Path) -> pd.DataFrame:
    """``splits.csv`` as symbol (str), date (date), ratio (float), every row checked.

    Raises:
        BadInputError: the file cannot be read, is not a CSV with those columns, or a row has an
            empty symbol, a date that is not YYYY-MM-DD, or a ratio that is not a finite number > 0
            (a ratio of 0 would divide every price by zero).
    """
    fix = "fix or remove that row."
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BadInputError(f"splits file {path} cannot be read as CSV ({exc.__class__.__name__}); "
                            "restore it or pass another.") from exc
    missing = [c for c in ("symbol", "date", "ratio") if c not in raw.columns]
    if missing:
        raise BadInputError(f"splits file {path} has no column {', '.join(missing)}; "
                            "it needs symbol, date, ratio.")
    raw = raw[["symbol", "date", "ratio"]].fillna("")
    symbol = raw["symbol"].str.strip()
    date = pd.to_datetime(raw["date"].str.strip(), format="%Y-%m-%d", errors="coerce")
    ratio = pd.to_numeric(raw["ratio"].str.strip(), errors="coerce")
    bad = (symbol == "") | date.isna() | ~np.isfinite(ratio) | ~(ratio > 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        line = ",".join(raw.iloc[row])
        raise BadInputError(f"splits file {path} line {row + 2} ({line!r}) is not symbol, date (YYYY-MM-DD), "
                            f"ratio > 0; {fix}")
    return pd.DataFrame({"symbol": symbol, "date": date.dt.date, "ratio": ratio.astype(float)})


class BarStore:
    """Raw bars and splits in one folder; split-adjusted, as-of-clamped reads.

    The files are read once per process and kept in memory (the sample is ~300k rows): a second
    store on the same unchanged file (the simulated broker beside the sample source, or the next
    command run in the same process) shares the parsed frame (see ``_ParsedFiles``).  What
    ``raw_bars`` and ``splits`` return are shallow copies: pandas' copy-on-write keeps a caller's
    change to one out of every other store's frame.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self._table: _Table | None = None
        self._splits: pd.DataFrame | None = None

    @property
    def bars_path(self) -> Path:
        return self.root / "bars.parquet"

    @property
    def splits_path(self) -> Path:
        return self.root / "splits.csv"

    def raw_bars(self) -> pd.DataFrame:
        """Every stored bar, raw, sorted by (symbol, date); an empty frame for a new store.

        Raises:
            DataError: the Parquet file exists but cannot be read.
        """
        return self._loaded().bars.copy(deep=False)

    def _loaded(self) -> "_Table":
        if self._table is None:
            table = _BARS.get(self.bars_path, _parse_bars)
            self._table = table if table is not None else _Table(
                pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DTYPES.items()}))
        return self._table

    def splits(self) -> pd.DataFrame:
        """Every known split: symbol (str), date (date), ratio (float > 0); empty when none.

        Raises:
            BadInputError: ``splits.csv`` is not a CSV of symbol, date (YYYY-MM-DD), ratio (a finite
                number > 0) on every row; the message names the file and the first bad line.  Exit 2
                even for a Polygon store, which writes this file itself: a CSV is what people edit
                by hand (the sample's, a copy for ``--bars``), a junk row is fixed by hand either way
                (the store merges new splits into the rows it keeps), and a rerun would fail the same.
        """
        if self._splits is None:
            self._splits = _SPLITS.get(self.splits_path, read_splits)
            if self._splits is None:
                self._splits = pd.DataFrame({"symbol": pd.Series(dtype=str), "date": pd.Series(dtype=object),
                                             "ratio": pd.Series(dtype=float)})
        return self._splits.copy(deep=False)

    def dates(self) -> list[dt.date]:
        """Every date that has at least one bar, oldest first."""
        return np.unique(self._loaded().day).astype(object).tolist()

    def date_range(self) -> tuple[dt.date, dt.date] | None:
        """(first, last) date with a bar; None for an empty store."""
        day = self._loaded().day
        return (day.min().astype(object), day.max().astype(object)) if len(day) else None

    def read(
        self,
        end: dt.date,
        start: dt.date | None = None,
        symbols: list[str] | None = None,
        adjust_through: dt.date | None = None,
    ) -> pd.DataFrame:
        """Split-adjusted bars dated in [start, end], as known on ``adjust_through`` (default ``end``).

        Returns BAR_COLUMNS sorted by (symbol, date); volume is float (adjusted shares).
        ``adjust_through`` may be later than ``end`` only to adjust history for a split
        whose ex-date is the session being traded (announced in advance).
        """
        table = self._loaded()
        mask = table.day <= np.datetime64(end, "D")
        if start is not None:
            mask &= table.day >= np.datetime64(start, "D")
        if symbols is not None:
            mask &= table.bars["symbol"].isin(symbols).to_numpy()
        return split_adjust(table.bars[mask], self.splits(), adjust_through or end,
                            days=table.day[mask]).reset_index(drop=True)

    def session_bars(self, session: dt.date, symbols: list[str] | None = None) -> pd.DataFrame:
        """Raw bars of one session (as traded that day, so already on that day's share basis)."""
        table = self._loaded()
        mask = table.day == np.datetime64(session, "D")
        if symbols is not None:
            mask &= table.bars["symbol"].isin(symbols).to_numpy()
        return table.bars[mask].set_index("symbol")

    def session_opens(self, session: dt.date) -> dict[str, float]:
        """symbol -> the raw opening price of ``session`` (dollars); what the simulated broker fills at."""
        today = self.session_bars(session)
        return dict(zip(map(str, today.index.tolist()), today["open"].astype(float).tolist()))

    def write_bars(self, new: pd.DataFrame) -> None:
        """Merge raw bars into the store (a later copy of a (symbol, date) wins), atomically."""
        merged = pd.concat([self.raw_bars(), new[BAR_COLUMNS]], ignore_index=True)
        merged = merged.drop_duplicates(["symbol", "date"], keep="last")
        merged = merged.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
        atomic_write(self.bars_path, lambda tmp: merged.to_parquet(tmp, index=False, compression="zstd"))
        _BARS.forget(self.bars_path)   # the next store reads the new file from disk
        self._table = _Table(merged)

    def write_splits(self, splits: pd.DataFrame) -> None:
        """Replace the stored splits (symbol, date, ratio), atomically."""
        sp = splits[["symbol", "date", "ratio"]].drop_duplicates(["symbol", "date"], keep="last")
        sp = sp.sort_values(["symbol", "date"]).reset_index(drop=True)
        atomic_write(self.splits_path, lambda tmp: sp.to_csv(tmp, index=False))
        _SPLITS.forget(self.splits_path)
        self._splits = None


_DTYPES = {"symbol": str, "date": object, "open": float, "high": float, "low": float,
           "close": float, "volume": "int64"}


class _Table:
    """Raw bars sorted by (symbol, date) and, worked out at first use, each row's date as
    ``datetime64[D]`` (what the reads mask on; a fill's interim writes never need it)."""

    def __init__(self, bars: pd.DataFrame):
        self.bars = bars

    @functools.cached_property
    def day(self) -> np.ndarray:
        return day_array(self.bars["date"])


def day_array(dates: pd.Series) -> np.ndarray:
    """``dates`` (``datetime.date``, Timestamps or ISO text) as a ``datetime64[D]`` array, one per row."""
    return pd.to_datetime(dates).to_numpy(dtype="datetime64[D]") if len(dates) else np.empty(0, "datetime64[D]")


T = TypeVar("T")
#: (device, inode, size, mtime in ns, ctime in ns): what ties a parsed file to the bytes it came from.
#: The inode alone does not (ext4 hands a freed inode to the next atomic write), nor the mtime alone
#: (``cp -p`` and ``touch -d`` set it back); the ctime no tool can set back.
Stamp = tuple[int, int, int, int, int]


def _stamp(path: Path) -> Stamp | None:
    """``path``'s stamp; None when there is no such file (its folder missing or not a folder included).

    Raises:
        DataError: the file exists but cannot be looked at (permissions, a symlink loop).
    """
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror or exc.__class__.__name__}); "
                        "check the path and its permissions.") from exc
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class _ParsedFiles(Generic[T]):
    """What this process parsed of a kind of file, by path: one (stamp, value) a path, for the two
    paths used last (a backtest's store and the sample, say).  A file whose stamp has changed is read
    again; a store forgets its path when it writes there, so its own writes never rest on a stamp.
    A parse that raises keeps nothing.  Thread-safe; a parse runs outside the lock."""

    def __init__(self, paths: int = 2):
        self._paths = paths
        self._entries: OrderedDict[str, tuple[Stamp, T]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, parse: Callable[[Path], T]) -> T | None:
        """``parse(path)``, or what it gave for the same stamp before; None when the file does not exist."""
        stamp = _stamp(path)
        if stamp is None:
            return None
        key = str(path)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] == stamp:
                self._entries.move_to_end(key)
                return hit[1]
        value = parse(path)
        with self._lock:
            self._entries[key] = (stamp, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._paths:
                self._entries.popitem(last=False)
        return value

    def forget(self, path: Path) -> None:
        with self._lock:
            self._entries.pop(str(path), None)


def _parse_bars(path: Path) -> _Table:
    """``bars.parquet`` at ``path`` read and sorted by (symbol, date).

    Raises:
        DataError: the file cannot be read as Parquet with BAR_COLUMNS.
    """
    try:
        df = pd.read_parquet(path, columns=BAR_COLUMNS)
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise DataError(
            f"bar store {path} cannot be read ({exc.__class__.__name__}); "
            "delete it to refetch, or restore it from data/sample/."
        ) from exc
    df["symbol"] = df["symbol"].astype(str)
    return _Table(df.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True))


_BARS: _ParsedFiles[_Table] = _ParsedFiles()
_SPLITS: _ParsedFiles[pd.DataFrame] = _ParsedFiles()
