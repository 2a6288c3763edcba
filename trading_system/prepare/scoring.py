"""Indicators and the composite score (DESIGN §4): pure, vectorised functions on bars.

Every symbol is scored on ITS OWN bar sequence (a symbol with gaps simply has fewer
bars; nothing is aligned on a calendar).  The work is done on *right-aligned panels*:
a float matrix of shape ``(depth, n_symbols)`` whose last row holds each symbol's last
close, the row above its previous close, and so on, NaN-padded on top when a symbol has
fewer than ``depth`` bars.  Every indicator is then a numpy reduction along axis 0, and
the one recursion (Wilder's RSI) is a loop over rows with the state of all symbols held
in vectors.  No Python loop runs per symbol.

Units: prices and dollar volumes in dollars; returns, volatility, drawdown,
``gradual_loss`` and ``trend`` are fractions (0.23, not 23 %); RSI is 0-100 and the score
is 0-100 points.  Every window and weight comes from :mod:`trading_system.config`.

Public functions
----------------
``score_universe``  the evening scan: metrics, score, eligibility, bucket, pick.
``rescore``         the morning re-score with one provisional bar (DESIGN §6).
``closes_panel``    long bars -> right-aligned close panel (the shape the helpers take).
``wilder_rsi``, ``sharpe_volatility``, ``max_drawdown``, ``gradual_loss``, ``trend``,
``rsi_fit``, ``composite_score``: the single indicators (``indicators.py``), re-exported here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd

from trading_system.config import BucketsConfig, EligibilityConfig, ScoringConfig
from trading_system.prepare.indicators import (
    _tail,
    composite_score,
    gradual_loss,
    max_drawdown,
    rsi_fit,
    sharpe_volatility,
    trend,
    wilder_rsi,
    wilder_rsi_last,
)
from trading_system.prepare.panels import (
    EPOCH,
    days_to_dates,
    last_per_symbol,
    long_arrays,
    right_aligned,
    rows_from_end,
    to_date,
)

__all__ = [
    "METRIC_COLUMNS",
    "SCAN_COLUMNS",
    "RESCORE_COLUMNS",
    "score_universe",
    "scan_frame",
    "panel_metrics",
    "panel_median",
    "scan_depth",
    "rescore",
    "closes_panel",
    "wilder_rsi",
    "sharpe_volatility",
    "max_drawdown",
    "gradual_loss",
    "trend",
    "rsi_fit",
    "composite_score",
]

METRIC_COLUMNS = ("sharpe", "volatility", "rsi", "max_drawdown", "gradual_loss", "trend")
SCAN_COLUMNS = (
    "bars", "last_date", "close", "dollar_volume", *METRIC_COLUMNS,
    "score", "eligible", "reason", "bucket", "pick",
)
RESCORE_COLUMNS = ("bars", "last_date", "close", *METRIC_COLUMNS, "score")



# --------------------------------------------------------------------------- indicators


def closes_panel(bars: pd.DataFrame, depth: int) -> tuple[pd.Index, np.ndarray]:
    """Long bars -> (symbols, right-aligned close panel of shape ``(depth, n_symbols)``).

    Requires: ``bars`` with columns symbol, date, close (any row order).
    Sets: column j of the panel holds the last ``depth`` closes (dollars) of ``symbols[j]``
    (symbols sorted), oldest first, NaN-padded on top for shorter histories.
    """
    symbols, codes, _days, close, _volume = long_arrays(bars)
    return symbols, right_aligned(codes, close, len(symbols), depth)


# --------------------------------------------------------------------------- the pipeline


def scan_depth(scoring: ScoringConfig, extra: int = 0) -> int:
    """Rows of history (bars) every indicator of the scan needs: the depth of its panels."""
    L = scoring.lookback
    return max(scoring.rsi_window, L + 1, L + scoring.sma_window - 1, scoring.sma_window, extra)


def _metrics(codes: np.ndarray, close: np.ndarray, n_symbols: int, scoring: ScoringConfig,
             depth: int, from_end: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every metric + the score of DESIGN §4, one value per symbol code (the shared code path)."""
    return panel_metrics(right_aligned(codes, close, n_symbols, depth, from_end), scoring)


def panel_metrics(closes: np.ndarray, scoring: ScoringConfig) -> dict[str, np.ndarray]:
    """Every metric (``METRIC_COLUMNS``) and ``score`` of DESIGN §4 of a right-aligned close panel.

    Requires: ``closes`` of shape ``(depth, n_columns)``, dollars, depth at least ``scan_depth(scoring)``
    (rows above a column's first close NaN).  Sets: one float array of ``n_columns`` per key.
    Each column is computed on its own (every reduction runs along axis 0), so a column's
    figures do not depend on the other columns: the nightly scan and the backtest's batch of
    nights (``prepare.scan_batch``) share this code and agree to the bit.
    """
    # Row-major and at least two columns, always: numpy sums a reduction along a contiguous axis pairwise
    # and along rows one by one, so the same column laid out differently (column-major, or alone: a
    # one-column panel is contiguous down its rows) would differ in its last bit.  A lone column gets
    # a NaN neighbour, so a column's figures never depend on the panel it sits in.
    closes = np.ascontiguousarray(closes, dtype=float)
    if closes.shape[1] == 1:
        padded = panel_metrics(np.hstack([closes, np.full_like(closes, np.nan)]), scoring)
        return {k: v[:1] for k, v in padded.items()}
    L = scoring.lookback
    sharpe, volatility = sharpe_volatility(closes, L, scoring.risk_free_rate, scoring.periods_per_year)
    rsi = wilder_rsi_last(_tail(closes, scoring.rsi_window), scoring.rsi_period)
    mdd = max_drawdown(closes, L + 1)
    gl = gradual_loss(closes, L, scoring.sma_window)
    tr = trend(closes, scoring.sma_window, scoring.trend_band)
    score = composite_score(sharpe, rsi, tr, gl, mdd, scoring)
    return {"sharpe": sharpe, "volatility": volatility, "rsi": rsi, "max_drawdown": mdd,
            "gradual_loss": gl, "trend": tr, "score": np.asarray(score, dtype=float)}


def score_universe(bars: pd.DataFrame, session: dt.date, scoring: ScoringConfig,
                   eligibility: EligibilityConfig, buckets: BucketsConfig) -> pd.DataFrame:
    """Score every symbol of ``bars`` as of ``session``: metrics, score, eligibility, bucket, pick.

    Source: DESIGN §4.  Requires: ``bars`` as a long frame with columns symbol, date
    (``datetime.date``, datetime64 or arrow date32), close (dollars, split-adjusted) and
    volume (shares), one bar per (symbol, date), holding only bars dated <= ``session``
    (the caller clamps); rows in any order (sorted by (symbol, date) here when they are not).
    Sets: a frame indexed by ``symbol`` (sorted), one row per symbol of ``bars``:

    - ``bars`` (int) how many bars the symbol has; ``last_date`` (date) its last bar;
      ``close`` its last close (dollars);
    - ``dollar_volume``: median of close * volume over its last
      ``eligibility.dollar_volume_window`` bars (all of them if fewer), dollars;
    - ``sharpe``, ``volatility`` (annualised fraction), ``rsi`` (0-100),
      ``max_drawdown``, ``gradual_loss``, ``trend`` (fractions): see the helpers; each is
      computed for every symbol with enough bars for it (even an ineligible one) and NaN
      otherwise (RSI needs ``rsi_period + 1`` closes, trend ``sma_window``, the others
      ``lookback + 1``);
    - ``score`` 0-100 points (NaN when a metric is NaN);
    - ``eligible`` (bool) and ``reason``: "" when eligible, else the first failing rule, in
      this order: "fewer than {L+1} bars", "close under $5.00", "median dollar volume
      under $5,000,000", "no bar for session YYYY-MM-DD" (figures from the configs);
    - ``bucket``: for eligible rows, "CORE" when volatility <= core_max_volatility,
      "SPEC" when <= spec_max_volatility, else "ASYM"; "" for ineligible rows;
    - ``pick`` (bool): eligible and score >= ``buckets.min_score``.
    """
    session = to_date(session)
    symbols, codes, days, close, volume = long_arrays(bars)
    n = len(symbols)
    dv_window = eligibility.dollar_volume_window
    from_end = rows_from_end(codes, n)
    m = _metrics(codes, close, n, scoring, scan_depth(scoring, dv_window), from_end)

    counts = np.bincount(codes, minlength=n).astype(np.int64)
    last_close = last_per_symbol(codes, close, n, np.nan)
    last_day = last_per_symbol(codes, days, n, np.iinfo(np.int64).min)
    dollar_volume = _median_dollar_volume(codes, close, volume, n, dv_window, from_end)
    return scan_frame(symbols, counts, last_close, last_day, dollar_volume, m, session, scoring, eligibility,
                      buckets)


def scan_frame(symbols: pd.Index, counts: np.ndarray, last_close: np.ndarray, last_day: np.ndarray,
               dollar_volume: np.ndarray, m: Mapping[str, np.ndarray], session: dt.date, scoring: ScoringConfig,
               eligibility: EligibilityConfig, buckets: BucketsConfig) -> pd.DataFrame:
    """The scan's frame (see :func:`score_universe` for its columns) from one value per symbol:
    bar ``counts``, ``last_close`` (dollars), ``last_day`` (days since 1970-01-01, int64 min for
    none), the median ``dollar_volume`` and the ``panel_metrics`` ``m``; eligibility, bucket and
    pick are decided here.  Shared by the nightly scan and the backtest's batch of nights."""
    reason = _ineligibility(counts, last_close, dollar_volume, last_day, session,
                            scoring.lookback, eligibility)
    eligible = reason == ""
    bucket = _buckets(m["volatility"], eligible, buckets)
    pick = eligible & (m["score"] >= buckets.min_score)
    return pd.DataFrame(
        {
            "bars": counts,
            "last_date": days_to_dates(last_day),
            "close": last_close,
            "dollar_volume": dollar_volume,
            **{k: m[k] for k in (*METRIC_COLUMNS, "score")},
            "eligible": eligible.astype(bool),
            "reason": pd.array(reason, dtype="str"),
            "bucket": pd.array(bucket, dtype="str"),
            "pick": pick.astype(bool),
        },
        index=symbols,
    )


def _median_dollar_volume(codes: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int,
                          window: int, from_end: np.ndarray) -> np.ndarray:
    """Each symbol's median close * volume over its last ``window`` bars (dollars; NaN if none)."""
    recent = from_end < window
    return panel_median(right_aligned(codes[recent], close[recent] * volume[recent], n, window, from_end[recent]))


def panel_median(panel: np.ndarray) -> np.ndarray:
    """Each column's median of a right-aligned panel, NaN padding ignored (NaN for an empty column).

    The middle value of the column's sorted values, or the mean of the two middle ones, ``(low + high)
    / 2``: ``np.nanmedian`` to the bit (it takes the same two values and halves their sum), without
    the masked array it builds for a short axis, which costs ten times as much.
    """
    n = panel.shape[1]
    if not n or not panel.shape[0]:
        return np.full(n, np.nan)
    ordered = np.sort(panel, axis=0)              # NaN sorts last
    count = np.count_nonzero(~np.isnan(panel), axis=0)
    columns = np.arange(n)
    low = ordered[np.maximum(count - 1, 0) // 2, columns]
    high = ordered[count // 2 - (count == 0), columns]
    return np.where(count > 0, (low + high) / 2.0, np.nan)


def _ineligibility(counts: np.ndarray, last_close: np.ndarray, dollar_volume: np.ndarray,
                   last_day: np.ndarray, session: dt.date, lookback: int,
                   eligibility: EligibilityConfig) -> np.ndarray:
    """Per symbol the first failing eligibility rule's text (object array), "" when eligible."""
    session_day = (session - EPOCH).days
    rules = [
        (counts < lookback + 1, f"fewer than {lookback + 1} bars"),
        (~(last_close >= eligibility.min_price), f"close under ${eligibility.min_price:,.2f}"),
        (~(dollar_volume >= eligibility.min_dollar_volume),
         f"median dollar volume under ${eligibility.min_dollar_volume:,.0f}"),
        (last_day != session_day, f"no bar for session {session.isoformat()}"),
    ]
    reason = np.full(len(counts), "", dtype=object)
    for failed, text in reversed(rules):          # the first failing rule wins
        reason[failed] = text
    return reason


def _buckets(vol: np.ndarray, eligible: np.ndarray, buckets: BucketsConfig) -> np.ndarray:
    """CORE / SPEC / ASYM by annualised volatility for eligible rows, "" for the others."""
    bucket = np.where(vol <= buckets.core_max_volatility, "CORE",
                      np.where(vol <= buckets.spec_max_volatility, "SPEC", "ASYM")).astype(object)
    bucket[~eligible] = ""
    return bucket


def rescore(history: pd.DataFrame, provisional: Mapping[str, float], session: dt.date,
            scoring: ScoringConfig) -> pd.DataFrame:
    """The morning re-score (DESIGN §6): history plus one provisional bar at the pre-market price.

    Requires: ``history`` long bars (symbol, date, close, volume; split-adjusted as of
    ``session``); ``provisional`` maps symbol -> pre-market price in dollars.  Bars of
    ``history`` dated on or after ``session`` are ignored (the provisional bar takes the
    session's place), as are symbols not in ``provisional``.
    Sets: a frame indexed by ``symbol`` (sorted), one row per symbol of ``provisional``,
    with ``bars`` (history bars + 1), ``last_date`` (= session), ``close`` (= the price),
    the metric columns and ``score``, computed by the same code as :func:`score_universe`
    on the symbol's history with one bar dated ``session`` appended (open = high = low =
    close = price, volume 0), so the last ``lookback`` returns include the overnight gap.
    A symbol without history, or whose price is missing, not finite or not positive, gets
    ``bars`` 0 and NaN everywhere else (no eligibility is judged here).
    """
    session = to_date(session)
    names = sorted(provisional)
    index = pd.Index(names, name="symbol", dtype=object)
    prices = np.array([as_price(provisional[s]) for s in names], dtype=float)
    usable = np.isfinite(prices) & (prices > 0)

    # The history's rows in (symbol, date) order as arrays, then only the usable symbols'
    # bars dated before the session (filtering arrays, not the frame).
    h_pos = np.empty(0, dtype=np.int64)
    h_close = np.empty(0)
    if len(history):
        h_symbols, h_codes, h_days, h_close, _h_volume = long_arrays(history)
        ok = {s for s, good in zip(names, usable) if good}
        wanted = np.array([s in ok for s in h_symbols], dtype=bool)
        mask = (h_days < (session - EPOCH).days) & wanted[h_codes]
        # Map history codes onto positions in `names`, then append one provisional row each.
        h_pos = pd.Index(names).get_indexer(h_symbols)[h_codes[mask]].astype(np.int64)
        h_close = h_close[mask]
    has_history = np.bincount(h_pos, minlength=len(names)) > 0
    scored = usable & has_history
    add = np.flatnonzero(scored)
    codes = np.concatenate([h_pos, add])
    close = np.concatenate([h_close, prices[add]])
    order = np.argsort(codes, kind="stable")      # history is in date order; the new bar is last
    codes, close = codes[order], close[order]

    n = len(names)
    m = _metrics(codes, close, n, scoring, scan_depth(scoring))
    counts = np.where(scored, np.bincount(codes, minlength=n), 0).astype(np.int64)
    last_date = np.array([session if ok else None for ok in scored], dtype=object)
    frame = pd.DataFrame(
        {"bars": counts, "last_date": last_date, "close": np.where(scored, prices, np.nan),
         **{k: np.where(scored, m[k], np.nan) for k in (*METRIC_COLUMNS, "score")}},
        index=index,
    )
    return frame


def as_price(value) -> float:
    """A provisional price as float (dollars); NaN when missing or not a number."""
    try:
        return float(value) if value is not None else np.nan
    except (TypeError, ValueError):
        return np.nan
