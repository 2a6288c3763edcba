"""Each pick's price levels (DESIGN §11): Wilder ATR, entry, invalidation, 1R / 2R targets, and
which of them the bars after the scan touched first.

Prices are dollars per share on the split basis of the scan session (the bars ``prepare`` reads
are adjusted through it, so the entry is the scan session's close as traded that day).

Public functions
----------------
``true_range``    Wilder's true range of each bar after the first, on right-aligned panels.
``wilder_atr``    ATR after each column's last bar, on right-aligned high / low / close panels.
``window_length`` the bars ``pick_levels`` reads per pick (a declared window, as for the scan).
``pick_levels``   long bars + picks + strategy weights -> ``PickLevels`` per pick.
``first_touch``   long bars after the scan -> per pick and horizon, the level touched first.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from trading_system.config_context import LevelsConfig
from trading_system.prepare.panels import EPOCH, day_numbers, factorize_grouped, rows_from_end
from trading_system.state.plan import PickLevels

#: Bars per ATR period that ``pick_levels`` reads: the seed's weight in the last ATR is then
#: ((period - 1) / period) ** (19 x period), under 1e-8 for every period >= 2 (3e-9 at 14), so
#: the levels do not depend on how much more history the caller happened to read.
SEED_MEMORY = 20

TOUCHES = ("target_2r", "target_1r", "invalidation", "neither")


def window_length(cfg: LevelsConfig) -> int:
    """Bars per pick ``pick_levels`` reads (the last ones): ``SEED_MEMORY x atr_period + 1``."""
    return SEED_MEMORY * cfg.atr_period + 1


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Wilder's true range of rows 1.. of ``(T, S)`` panels: ``(T - 1, S)``, NaN where the previous close is.

    TR_t = max(high_t - low_t, |high_t - close_{t-1}|, |low_t - close_{t-1}|).
    """
    prev = close[:-1]
    h, lo = high[1:], low[1:]
    return np.maximum(np.maximum(h - lo, np.abs(h - prev)), np.abs(lo - prev))


def wilder_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Average true range with Wilder's smoothing, after each column's last bar: ``(S,)`` dollars.

    Source: J. Welles Wilder, *New Concepts in Technical Trading Systems* (1978), "Volatility"
    (the same recursion as TA-Lib's ``TA_ATR``).  DESIGN §11.

    Requires: right-aligned ``(T, S)`` panels of one split basis (``prepare.panels.right_aligned``),
    each column NaN only on top (the padding above the symbol's first bar).
    Sets: with TR as :func:`true_range` (so a column's first TR is on its second bar), the first ATR
    is the mean of the first ``period`` TRs (summed in order), then
    ``ATR_t = (ATR_{t-1} x (period - 1) + TR_t) / period`` up to the last bar.  NaN for a column
    with fewer than ``period + 1`` bars.  One loop over rows, every symbol at once.
    """
    high, low, close = (np.asarray(a, dtype=float) for a in (high, low, close))
    T, S = close.shape
    atr = np.full(S, np.nan)
    if T < period + 1 or S == 0:
        return atr
    tr = true_range(high, low, close)                          # (T - 1, S); tr[i] is the TR of bar i + 1
    has_bar = ~np.isnan(close)
    first = np.where(has_bar.any(axis=0), np.argmax(has_bar, axis=0), T)   # each column's first bar row
    seed_row = first + period - 1                              # the TR row that completes the seed
    seeded = seed_row <= T - 2
    if not seeded.any():
        return atr
    # The padding's TRs are NaN: as zeros in front, a running sum is the in-order sum of the first TRs.
    sums = np.cumsum(np.nan_to_num(tr), axis=0)
    cols = np.flatnonzero(seeded)
    seeds = sums[seed_row[cols], cols] / period
    starts = {int(r): cols[seed_row[cols] == r] for r in np.unique(seed_row[cols])}
    keep = period - 1
    for i in range(min(starts), T - 1):
        atr *= keep                                            # NaN until the column's seed row
        atr += tr[i]
        atr /= period
        at = starts.get(i)
        if at is not None:
            atr[at] = seeds[np.searchsorted(cols, at)]
    return atr


def _in_order(codes: np.ndarray, dates: np.ndarray) -> bool:
    """Whether rows are in (code, date) order.  Dates compared as they are (date objects compare in
    half the time ``day_numbers`` takes to convert them); converted only when they do not compare."""
    try:
        later = dates[1:] > dates[:-1]
    except TypeError:                                          # mixed types: compare day numbers
        later = np.diff(day_numbers(pd.Series(dates))) > 0
    step = np.diff(codes)
    return bool(((step > 0) | ((step == 0) & later)).all())


def _pick_panels(bars: pd.DataFrame, picks: list[str], depth: int) -> tuple:
    """(symbols, high, low, close): right-aligned ``(depth, n)`` panels of the picks present in ``bars``.

    The rows are put in (symbol, date) order when they are not (the sources return them so).
    """
    column = bars["symbol"]
    codes, uniques = factorize_grouped(column) or pd.factorize(column, sort=True)
    codes = np.asarray(codes, dtype=np.int64)
    where = pd.Index(uniques).get_indexer(list(dict.fromkeys(picks)))
    wanted = np.zeros(len(uniques), dtype=bool)
    wanted[where[where >= 0]] = True
    rows = np.flatnonzero(wanted[codes])
    codes = (np.cumsum(wanted) - 1)[codes[rows]]               # 0..n-1 over the picks present
    symbols = [str(s) for s in np.asarray(uniques)[wanted]]
    values = [bars[c].to_numpy(dtype=float, na_value=np.nan)[rows] for c in ("high", "low", "close")]
    if len(rows) > 1:
        picked = bars["date"].iloc[rows]   # the picks' rows only: never the whole column
        # An Arrow date column converts to day numbers in C; object dates compare as they are.
        dates = day_numbers(picked) if isinstance(picked.dtype, pd.ArrowDtype) else picked.to_numpy()
        if not _in_order(codes, dates):
            order = np.lexsort((day_numbers(pd.Series(dates)) if dates.dtype == object else dates, codes))
            codes, values = codes[order], [v[order] for v in values]
    # right_aligned's scatter, its flat index found once for the three panels
    n = len(symbols)
    from_end = rows_from_end(codes, n)
    keep = np.flatnonzero(from_end < depth)
    flat = (depth - 1 - from_end[keep]) * n + codes[keep]
    panels = []
    for v in values:
        panel = np.full((depth, n), np.nan)
        panel.ravel()[flat] = v[keep]
        panels.append(panel)
    return symbols, *panels


def pick_levels(bars: pd.DataFrame, picks: list[str], allocations: dict[str, dict[str, float]],
                cfg: LevelsConfig) -> dict[str, PickLevels]:
    """Each pick's levels from its last ``window_length(cfg)`` bars (DESIGN §11).

    Requires: ``bars`` long (symbol, date, open, high, low, close, volume), split-adjusted through
    the scan session and dated on or before it; ``allocations``: strategy -> symbol -> weight
    (fraction of the account).
    Sets, per pick: ``atr`` = :func:`wilder_atr` (``cfg.atr_period``); ``entry`` = its last close;
    ``risk_per_share`` = ``cfg.stop_atr`` x ATR; ``invalidation`` = entry - risk;
    ``target_1r`` / ``target_2r`` = entry + ``cfg.targets_r[0]`` / ``[1]`` x risk;
    ``account_risk`` = {strategy: weight x risk / entry} for each strategy holding it (weight > 0).
    A pick without bars, with fewer than ``atr_period + 1`` bars, or whose ATR is not > 0 (a flat
    series) is left out: the result has no entry for it.
    """
    symbols, high, low, close = _pick_panels(bars, picks, window_length(cfg))
    if not symbols:
        return {}
    atr = wilder_atr(high, low, close, cfg.atr_period)
    entry = close[-1]
    risk = cfg.stop_atr * atr
    first_r, second_r = cfg.targets_r
    invalidation, target_1r, target_2r = entry - risk, entry + first_r * risk, entry + second_r * risk
    out: dict[str, PickLevels] = {}
    for j in np.flatnonzero((atr > 0) & (entry > 0)):       # NaN compares False: short histories drop out
        s, r, e = symbols[j], float(risk[j]), float(entry[j])
        out[s] = PickLevels(atr=float(atr[j]), entry=e, invalidation=float(invalidation[j]),
                            target_1r=float(target_1r[j]), target_2r=float(target_2r[j]), risk_per_share=r,
                            account_risk={name: w * r / e for name, weights in allocations.items()
                                          if (w := weights.get(s, 0.0)) > 0})
    return out


def _forward_panels(bars: pd.DataFrame, symbols: list[str], rows: int):
    """(high, low, days) left-aligned ``(rows, n)`` panels of each symbol's first ``rows`` bars in
    ``bars`` (NaN / -1 below a symbol's last bar), the columns in the order of ``symbols``."""
    n = len(symbols)
    high, low = np.full((rows, n), np.nan), np.full((rows, n), np.nan)
    days = np.full((rows, n), -1, dtype=np.int64)
    part = bars[bars["symbol"].isin(symbols)]
    if part.empty or n == 0:
        return high, low, days
    col = pd.Index(symbols).get_indexer(part["symbol"])
    day = day_numbers(part["date"])
    order = np.lexsort((day, col))
    col, day = col[order], day[order]
    starts = np.searchsorted(col, col, side="left")
    pos = np.arange(len(col)) - starts                        # 0 for a symbol's first bar after the scan
    keep = pos < rows
    for panel, name in ((high, "high"), (low, "low")):
        panel[pos[keep], col[keep]] = part[name].to_numpy(dtype=float, na_value=np.nan)[order][keep]
    days[pos[keep], col[keep]] = day[keep]
    return high, low, days


def first_touch(bars: pd.DataFrame, levels: dict[str, PickLevels], horizons: tuple[int, ...] = (1, 5, 20),
                ) -> dict[str, dict[int, tuple[str, dt.date | None]]]:
    """Per pick and horizon h: which level its first h bars after the scan touched first, and when.

    Requires: ``bars`` long (symbol, date, high, low, ...) of the sessions AFTER the plan's scan
    session, on the split basis of ``levels`` (the scan session's).  A source adjusts history for the
    splits known on its ``adjust_through``, which leaves bars after the scan session as traded: across
    a split in the horizon they are not on the levels' basis, so the caller reads them adjusted
    through the last session and brings them back (``review.touches.scan_basis_bars`` does).
    ``horizons``: one or more counts of sessions (>= 1).
    Sets: ``(what, session)``; what is ``target_2r``, ``target_1r`` or ``invalidation`` for the first
    bar whose low <= invalidation or whose high >= target_1r, if it is among the symbol's first h
    bars (its own bars: a halted session is not counted).  On that bar the invalidation counts first
    when it is touched too (a daily bar does not say which came first: DESIGN §11), else the furthest
    target reached (target_2r when its high also passed 2R).  Otherwise ``("neither", the last
    session looked at)``, or ``("neither", None)`` when the symbol has no bar after the scan.
    """
    symbols = list(levels)
    high, low, days = _forward_panels(bars, symbols, max(horizons))
    inv = np.array([levels[s].invalidation for s in symbols])
    t1 = np.array([levels[s].target_1r for s in symbols])
    t2 = np.array([levels[s].target_2r for s in symbols])
    stop, hit_1r = low <= inv, high >= t1                     # NaN padding compares False
    touched = stop | hit_1r
    first = np.argmax(touched, axis=0)
    cols = np.arange(len(symbols))
    what = np.where(~touched.any(axis=0), 3, np.where(stop[first, cols], 2, np.where(high[first, cols] >= t2, 0, 1)))
    bars_seen = (days >= 0).sum(axis=0)
    out: dict[str, dict[int, tuple[str, dt.date | None]]] = {}
    for j, s in enumerate(symbols):
        per: dict[int, tuple[str, dt.date | None]] = {}
        for h in horizons:
            if what[j] != 3 and first[j] < h:
                per[h] = (TOUCHES[what[j]], _date(days[first[j], j]))
            else:
                seen = min(h, int(bars_seen[j]))
                per[h] = ("neither", _date(days[seen - 1, j]) if seen else None)
        out[s] = per
    return out


def _date(day: np.int64) -> dt.date:
    return EPOCH + dt.timedelta(days=int(day))
