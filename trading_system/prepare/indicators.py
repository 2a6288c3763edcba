"""The single indicators of DESIGN §4 on right-aligned close panels (pure numpy).

A *panel* is a float matrix of shape ``(depth, n_symbols)`` whose last row holds each
symbol's last close, NaN-padded on top for shorter histories (see ``scoring.py``, which
builds them).  Each function reduces along axis 0 and returns one value per column.
Units: fractions (0.23, not 23 %) except RSI (0-100) and the score (0-100 points).
"""

from __future__ import annotations

import numpy as np

from trading_system.config import RsiFitConfig, ScoringConfig


def _tail(panel: np.ndarray, rows: int) -> np.ndarray:
    """The last ``rows`` rows of a panel, NaN-padded on top when the panel is shorter."""
    if panel.shape[0] >= rows:
        return panel[panel.shape[0] - rows:]
    pad = np.full((rows - panel.shape[0], panel.shape[1]), np.nan)
    return np.vstack([pad, panel])


def _first_valid_row(panel: np.ndarray) -> np.ndarray:
    """Index of each column's first non-NaN row; ``panel.shape[0]`` for an all-NaN column."""
    valid = ~np.isnan(panel)
    first = np.argmax(valid, axis=0)
    first[~valid.any(axis=0)] = panel.shape[0]
    return first


def _wilder_averages(arr: np.ndarray, period: int, record: np.ndarray | None = None) -> np.ndarray | None:
    """Wilder's (avg_gain, avg_loss) of a ``(T, S)`` close panel after its last close: ``(2, S)``.

    The recursion of :func:`wilder_rsi`, run on one ``(2, S)`` state (gains and losses side
    by side, so one in-place step per row moves both).  ``record`` (``(T, 2, S)``, NaN-filled)
    receives the state after every close when given.  None when no column gets a seed.
    """
    T, S = arr.shape
    moves = np.empty((T - 1, 2, S))               # moves[i] = (gain, loss) of d[i] = close[i+1] - close[i]
    np.subtract(arr[1:], arr[:-1], out=moves[:, 0])
    np.negative(moves[:, 0], out=moves[:, 1])
    np.maximum(moves, 0.0, out=moves)             # NaN stays NaN (padding)
    first = _first_valid_row(arr)                 # first close row; its first change is d[first]
    seed_row = first + period - 1                 # the change row that completes the seed
    has_seed = seed_row <= T - 2
    if not has_seed.any():
        return None
    # Seed: the sum of the first `period` gains (losses), accumulated in order as TA-Lib does,
    # for each group of columns whose first close is on the same row.  The padding above
    # it adds exact zeros: one zero row in front of the sum stands for all of them.
    seeded_at: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for row in np.unique(seed_row[has_seed]):
        row = int(row)
        cols = np.flatnonzero(has_seed & (seed_row == row))
        lo = row - period + 1                     # the group's first change row
        terms = np.nan_to_num(moves[max(lo - 1, 0): row + 1, :, cols])
        if lo > 0:
            terms[0] = 0.0
        seeded_at[row] = (cols, np.cumsum(terms, axis=0)[-1] / period)
    state = np.full((2, S), np.nan)
    keep = period - 1
    for i in range(min(seeded_at), T - 1):
        # Wilder's step for every column, in place: avg = (avg * (period - 1) + current) / period.
        # A column not yet seeded stays NaN; at its own seed row its average is set to the seed.
        state *= keep
        state += moves[i]
        state /= period
        seeded = seeded_at.get(i)
        if seeded is not None:
            state[:, seeded[0]] = seeded[1]
        if record is not None:
            record[i + 1] = state
    return state


def _rsi(avg_gain: np.ndarray, avg_loss: np.ndarray) -> np.ndarray:
    total = avg_gain + avg_loss
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total == 0.0, 0.0, 100.0 * (avg_gain / total))


def wilder_rsi(closes: np.ndarray, period: int) -> np.ndarray:
    """RSI(period) with Wilder's smoothing, as TA-Lib's ``TA_RSI`` computes it, per column.

    Source: J. Welles Wilder, *New Concepts in Technical Trading Systems* (1978); TA-Lib
    ``ta_RSI.c`` (default, non-Metastock compatibility).  DESIGN §4.

    Requires: ``closes`` of shape ``(T, S)`` (or ``(T,)``), prices in dollars, each column
    NaN only on top (padding before the symbol's first close), no NaN inside.
    Sets: an array of the same shape, RSI in 0-100 at row ``i`` (the RSI after close ``i``),
    NaN until a column has ``period`` changes.  With the changes d of a column starting at
    its first close: seed avg_gain = sum(max(d, 0)) / period and avg_loss =
    sum(max(-d, 0)) / period over the first ``period`` changes, then
    ``avg = (avg_prev * (period - 1) + current) / period``; RSI = 100 * avg_gain /
    (avg_gain + avg_loss), and 0 when both averages are 0 (TA-Lib tests ``|sum| < 1e-8``;
    here exactly 0, which only differs on a series that is flat to the cent's millionth).
    The result depends on where the series starts (Wilder's smoothing has a long memory):
    callers pass the last ``rsi_window`` closes, as DESIGN §4 asks.
    """
    arr = np.asarray(closes, dtype=float)
    one_d = arr.ndim == 1
    if one_d:
        arr = arr[:, None]
    T, S = arr.shape
    out = np.full((T, S), np.nan)
    if T >= period + 1 and S:
        record = np.full((T, 2, S), np.nan)
        if _wilder_averages(arr, period, record) is not None:
            out = _rsi(record[:, 0], record[:, 1])
    return out[:, 0] if one_d else out


def wilder_rsi_last(closes: np.ndarray, period: int) -> np.ndarray:
    """``wilder_rsi(closes, period)[-1]``, to the bit, without keeping every row: ``(S,)``.

    The scan needs only each symbol's RSI after its last close; holding one ``(2, S)``
    state instead of ``(T, 2, S)`` averages keeps the work in cache.
    """
    arr = np.asarray(closes, dtype=float)
    T, S = arr.shape
    state = _wilder_averages(arr, period) if T >= period + 1 and S else None
    return np.full(S, np.nan) if state is None else _rsi(state[0], state[1])


def sharpe_volatility(
    closes: np.ndarray, lookback: int, risk_free_rate: float = 0.0, periods_per_year: int = 252
) -> tuple[np.ndarray, np.ndarray]:
    """Annualised Sharpe ratio and volatility of the last ``lookback`` simple returns, per column.

    Source: DESIGN §4.  Requires: right-aligned closes ``(T, S)`` in dollars.
    Sets: r = close_t / close_{t-1} - 1 over the last ``lookback + 1`` closes;
    ``sharpe = mean(r - rf / periods_per_year) / std(r, ddof=1) * sqrt(periods_per_year)``,
    0 when std is 0; ``volatility = std(r, ddof=1) * sqrt(periods_per_year)`` (a fraction).
    Both NaN for a column with fewer than ``lookback + 1`` closes.
    """
    window = _tail(np.asarray(closes, dtype=float), lookback + 1)
    r = window[1:] / window[:-1] - 1.0
    excess = r - risk_free_rate / periods_per_year
    mean = excess.mean(axis=0)
    std = r.std(axis=0, ddof=1)
    annual = np.sqrt(periods_per_year)
    with np.errstate(invalid="ignore", divide="ignore"):
        sharpe = np.where(std == 0.0, 0.0, mean / std * annual)
    return sharpe, std * annual


def max_drawdown(closes: np.ndarray, window: int) -> np.ndarray:
    """Largest peak-to-trough fall over the last ``window`` closes, per column (a positive fraction).

    Source: DESIGN §4 (window = lookback + 1).  Requires: right-aligned closes ``(T, S)``.
    Sets: ``max over t of 1 - close_t / max(close_0..close_t)`` on the window; 0 for a
    window that never falls; NaN for a column with fewer than ``window`` closes.
    """
    x = _tail(np.asarray(closes, dtype=float), window)
    running_peak = np.maximum.accumulate(x, axis=0)   # NaN padding propagates -> NaN result
    return np.max(1.0 - x / running_peak, axis=0)


def _sma_windows(closes: np.ndarray, sessions: int, sma_window: int) -> np.ndarray:
    """SMA(sma_window) at each of the last ``sessions`` rows: ``(sessions, S)``, NaN where short."""
    x = _tail(np.asarray(closes, dtype=float), sessions + sma_window - 1)
    windows = np.lib.stride_tricks.sliding_window_view(x, sma_window, axis=0)  # (sessions, S, w)
    return windows.mean(axis=-1)


def gradual_loss(closes: np.ndarray, lookback: int, sma_window: int) -> np.ndarray:
    """Share of the last ``lookback`` sessions that closed under their own SMA, per column.

    Source: DESIGN §4 ("a slow bleed that neither Sharpe nor RSI flags").
    Requires: right-aligned closes ``(T, S)``.
    Sets: a fraction in [0, 1].  The SMA of session t is the mean of the ``sma_window``
    closes ending at t (t included).  Sessions of the window whose SMA lacks
    ``sma_window`` bars (a symbol with fewer than ``lookback + sma_window - 1`` bars) are
    left out of both the count and the denominator: the share is over the sessions that
    have a full SMA.  The share counts only when the ``lookback``-session return
    ``close_last / close_{last - lookback} - 1`` is negative; otherwise 0.  NaN for a
    column with fewer than ``lookback + 1`` closes (no such return).
    """
    x = np.asarray(closes, dtype=float)
    sma = _sma_windows(x, lookback, sma_window)
    last = _tail(x, lookback)
    has_sma = ~np.isnan(sma)
    below = (last < sma) & has_sma
    counted = has_sma.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(counted > 0, below.sum(axis=0) / np.maximum(counted, 1), 0.0)
        ends = _tail(x, lookback + 1)
        period_return = ends[-1] / ends[0] - 1.0
    return np.where(np.isnan(period_return), np.nan, np.where(period_return < 0.0, share, 0.0))


def trend(closes: np.ndarray, sma_window: int, band: float) -> np.ndarray:
    """Position of the last close against its SMA, mapped to [0, 1], per column.

    Source: DESIGN §4: ``clip((close / SMA - 1) / band + 0.5, 0, 1)``; with band 0.10 it
    is 0 at 5 % under the SMA, 0.5 on it, 1 at 5 % over it.
    Requires: right-aligned closes ``(T, S)``; the SMA is the mean of the last
    ``sma_window`` closes (the last one included).  NaN with fewer than ``sma_window`` closes.
    """
    x = _tail(np.asarray(closes, dtype=float), sma_window)
    sma = x.mean(axis=0)
    return np.clip((x[-1] / sma - 1.0) / band + 0.5, 0.0, 1.0)


def rsi_fit(rsi, fit: RsiFitConfig):
    """How well an RSI sits in the favoured band: 0..1 (DESIGN §4, ``RsiFitConfig``).

    0 at or under ``zero_below``, linear up to 1 at ``full_from``, 1 on
    [``full_from``, ``full_to``], linear down to 0 at ``zero_above``, 0 above it.
    Accepts a scalar or an array of RSI values (0-100); NaN stays NaN.
    """
    x = np.asarray(rsi, dtype=float)
    y = np.interp(x, [fit.zero_below, fit.full_from, fit.full_to, fit.zero_above],
                  [0.0, 1.0, 1.0, 0.0], left=0.0, right=0.0)
    y = np.where(np.isnan(x), np.nan, y)
    return float(y) if np.ndim(y) == 0 else y


def composite_score(sharpe, rsi, trend_value, gradual_loss_value, max_drawdown_value,
                    scoring: ScoringConfig):
    """The composite score, 0-100 points (DESIGN §4), elementwise on scalars or arrays.

    ``score = clip( w.sharpe * (1 - exp(-max(sharpe + 1, 0) / sharpe_scale))
                  + w.rsi * rsi_fit(rsi) + w.trend * trend
                  - w.gradual_loss * gradual_loss
                  - w.drawdown * max(0, max_drawdown - drawdown_threshold), 0, 100 )``
    with the weights ``w`` and the other figures from ``scoring``.  Inputs: sharpe
    (annualised ratio), rsi (0-100), trend / gradual_loss / max_drawdown (fractions).
    Any NaN input gives NaN.  The Sharpe term saturates smoothly, so high scorers keep
    their order.
    """
    w = scoring.weights
    sharpe = np.asarray(sharpe, dtype=float)
    # np.maximum propagates NaN, so a NaN input of any term gives a NaN score.
    sharpe_term = w.sharpe * (1.0 - np.exp(-np.maximum(sharpe + 1.0, 0.0) / scoring.sharpe_scale))
    raw = (sharpe_term
           + w.rsi * np.asarray(rsi_fit(rsi, scoring.rsi_fit), dtype=float)
           + w.trend * np.asarray(trend_value, dtype=float)
           - w.gradual_loss * np.asarray(gradual_loss_value, dtype=float)
           - w.drawdown * np.maximum(np.asarray(max_drawdown_value, dtype=float)
                                     - scoring.drawdown_threshold, 0.0))
    out = np.clip(raw, 0.0, 100.0)
    return float(out) if np.ndim(out) == 0 else out
