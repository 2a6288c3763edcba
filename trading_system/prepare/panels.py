"""Long bars -> right-aligned numpy panels: the shape every vectorised indicator and scanner reads.

A *right-aligned panel* is a float matrix of shape ``(depth, n_symbols)`` whose last row holds
each symbol's last bar, the row above its previous bar, and so on, NaN-padded on top when a
symbol has fewer than ``depth`` bars.  Nothing is aligned on a calendar: each column is the
symbol's own bar sequence.  Used by ``scoring`` (DESIGN §4) and ``scanners`` (DESIGN §10).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

EPOCH = dt.date(1970, 1, 1)


def to_date(value) -> dt.date:
    """A ``datetime.date`` from a date, datetime, Timestamp or ISO string."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()


def day_numbers(dates: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 (int64) of a date column: date objects, datetime64 or arrow date32."""
    dtype = dates.dtype
    if isinstance(dtype, pd.ArrowDtype):
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = pa.array(dates.array)
        if pa.types.is_date(arr.type):
            return np.asarray(pc.cast(pc.cast(arr, pa.date32()), pa.int32()), dtype=np.int64)
        return pd.to_datetime(dates).to_numpy(dtype="datetime64[D]").astype(np.int64)
    if dtype.kind == "M":
        return dates.to_numpy(dtype="datetime64[D]").astype(np.int64)
    values = dates.to_numpy()
    try:  # datetime.date objects: arrow converts them in C, much faster than numpy
        import pyarrow as pa

        return np.asarray(pa.array(values, type=pa.date32()).cast(pa.int32()), dtype=np.int64)
    except Exception:  # strings or mixed objects: slow but general
        return pd.to_datetime(pd.Series(values)).to_numpy(dtype="datetime64[D]").astype(np.int64)


def days_to_dates(days: np.ndarray) -> np.ndarray:
    """int day numbers -> object array of ``datetime.date``; None for the "no bar" sentinel (int64 min)."""
    out = np.empty(len(days), dtype=object)
    ok = days >= np.iinfo(np.int32).min
    out[ok] = days[ok].astype("datetime64[D]").astype(object)
    out[~ok] = None
    return out


def rows_from_end(codes: np.ndarray, n_symbols: int) -> np.ndarray:
    """For rows sorted by (code, date): how many bars of the same symbol follow each row."""
    if len(codes) == 0:
        return np.empty(0, dtype=np.int64)
    ends = np.cumsum(np.bincount(codes, minlength=n_symbols))
    return ends[codes] - np.arange(len(codes)) - 1


def right_aligned(codes: np.ndarray, values: np.ndarray, n_symbols: int, depth: int,
           from_end: np.ndarray | None = None) -> np.ndarray:
    """Right-aligned ``(depth, n_symbols)`` panel of ``values`` from rows sorted by (code, date).

    Requires: ``codes`` non-decreasing (rows grouped by symbol, each group in date order);
    ``from_end`` (optional) as :func:`rows_from_end` gives it, to save recomputing it.
    Sets: ``panel[depth - 1 - k, j]`` = the value of symbol j's k-th bar from its end;
    NaN above a symbol's first bar.
    """
    panel = np.full((depth, n_symbols), np.nan)
    if len(codes) == 0 or depth == 0:
        return panel
    if from_end is None:
        from_end = rows_from_end(codes, n_symbols)
    keep = np.flatnonzero(from_end < depth)
    # One scatter through the flat (row-major) index: twice as fast as a 2-D fancy assignment.
    panel.ravel()[(depth - 1 - from_end[keep]) * n_symbols + codes[keep]] = values[keep]
    return panel


def factorize_grouped(column: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """``pd.factorize(column, sort=True)`` for an Arrow string column already grouped in order.

    The bar sources return rows sorted by symbol, so the codes are the run numbers and the
    uniques the runs' first values: found by one C comparison of neighbours instead of a
    hash table.  None (use ``pd.factorize``) unless the column is Arrow-backed, has no
    null and its runs are strictly increasing (which proves it grouped and sorted).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(column.dtype, (pd.StringDtype, pd.ArrowDtype)) or len(column) < 2:
        return None
    try:
        arr = pa.array(column.array)
    except (TypeError, pa.ArrowInvalid):
        return None
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    n = len(arr)
    starts = np.flatnonzero(np.append(True, np.asarray(pc.not_equal(arr.slice(1), arr.slice(0, n - 1)))))
    runs = arr.take(pa.array(starts))
    if len(runs) > 1 and not pc.all(pc.greater(runs.slice(1), runs.slice(0, len(runs) - 1))).as_py():
        return None
    codes = np.repeat(np.arange(len(starts), dtype=np.int64), np.diff(np.append(starts, n)))
    return codes, np.asarray(runs.to_pylist(), dtype=object)


def long_arrays(bars: pd.DataFrame):
    """(symbols, codes, days, close, volume) of long bars, rows sorted by (symbol, date)."""
    symbols_col = bars["symbol"]
    codes, symbols = factorize_grouped(symbols_col) or pd.factorize(symbols_col, sort=True)
    codes = np.asarray(codes, dtype=np.int64)
    days = day_numbers(bars["date"])
    close = bars["close"].to_numpy(dtype=float, na_value=np.nan)
    volume = bars["volume"].to_numpy(dtype=float, na_value=np.nan)
    if len(codes) > 1:
        step_code = np.diff(codes)
        in_order = (step_code > 0) | ((step_code == 0) & (np.diff(days) > 0))
        if not in_order.all():
            order = np.lexsort((days, codes))
            codes, days, close, volume = codes[order], days[order], close[order], volume[order]
    return pd.Index(symbols, name="symbol", dtype=object), codes, days, close, volume


def last_per_symbol(codes: np.ndarray, values: np.ndarray, n_symbols: int, fill):
    """The value of each symbol's last row (rows sorted by (code, date))."""
    out = np.full(n_symbols, fill, dtype=values.dtype)
    if len(codes):
        is_last = np.append(codes[1:] != codes[:-1], True)
        out[codes[is_last]] = values[is_last]
    return out
