"""The market's regime as of the evening (DESIGN §11): RISK_ON, NEUTRAL or RISK_OFF.

Inputs, from daily closes dated <= the scan session: for each index (``I:SPX``, ``I:NDX``,
``I:RUT``, or their ETF proxies SPY, QQQ, IWM), the close, its ``sma_window`` SMA, the EMA
stack (8 > 21 > 50 by default) and the drawdown from the highest close of the last
``high_window`` sessions; and the VIX close with its percentile among the last
``vix_percentile_window`` closes.  Without the VIX (a key without indices), SPY's realised
volatility over ``proxy_volatility_window`` sessions stands in: the standard deviation of daily
log returns x sqrt(252) x 100, in VIX points (Hull, "Options, Futures and Other Derivatives",
ch. 15: annualised historical volatility).

Formulas: SMA = the mean of the last n closes; EMA with alpha = 2 / (n + 1), seeded with the
first close (pandas ``ewm(span=n, adjust=False)``); drawdown = 1 - close / max(last n closes),
a fraction; percentile = the share of the last n VIX closes at or under today's, a fraction.
The rules read the trend index's figures and the VIX (see ``config_context``).
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from trading_system.config_context import RegimeConfig, RegimeState
from trading_system.state.plan import RegimeRecord
from trading_system.vocabulary import StrategyName

#: The equity indices and the ETF that stands in for each without an indices entitlement.
INDEX_PROXIES: dict[str, str] = {"I:SPX": "SPY", "I:NDX": "QQQ", "I:RUT": "IWM"}
VIX = "I:VIX"


def regime_windows(dates: pd.Index, sessions: Sequence[dt.date], days: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) rows of each session's window of a series dated ``dates`` (ascending): the closes
    dated in [session - ``days``, session], or every close dated <= session when ``days`` is None."""
    end = dates.searchsorted(list(sessions), side="right")
    if days is None:
        return np.zeros(len(end), dtype=np.int64), np.asarray(end, dtype=np.int64)
    start = dates.searchsorted([s - dt.timedelta(days=days) for s in sessions], side="left")
    return np.asarray(start, dtype=np.int64), np.asarray(end, dtype=np.int64)


def _tails(values: np.ndarray, start: np.ndarray, end: np.ndarray, depth: int) -> np.ndarray:
    """``(windows, depth)``: row j holds the last ``depth`` values of window j, right-aligned, NaN
    before its start.  Each row is contiguous, so a row's sum is the one numpy (and pandas) gives
    the same values alone (pairwise)."""
    idx = end[:, None] - depth + np.arange(depth)[None, :]
    return np.where(idx >= start[:, None], values[np.maximum(idx, 0)], np.nan)


def _index_figures(values: np.ndarray, start: np.ndarray, end: np.ndarray,
                   cfg: RegimeConfig) -> list[dict[str, float | bool | None]]:
    """close, sma, above_sma, the EMAs and their stack, drawdown, of each window (rows [start, end) of
    one index's closes, oldest first, at least one close each).

    pandas to the bit, as one window alone gives them: the SMA is ``Series.mean`` of the last
    ``sma_window`` closes (NaN skipped; their sum pairwise, by rows), the EMAs ``ewm(span=n,
    adjust=False)`` on the whole window (every window a column of one frame, NaN above its first
    close, which the recursion skips), the high ``Series.max`` of the last ``high_window``.
    """
    a, b, c = cfg.ema_windows
    length, last = end - start, values[end - 1]
    tail = _tails(values, start, end, cfg.sma_window)
    with np.errstate(invalid="ignore", divide="ignore"):
        sma = np.where(np.isnan(tail), 0.0, tail).sum(axis=1) / np.count_nonzero(~np.isnan(tail), axis=1)
    frame = pd.DataFrame(_tails(values, start, end, int(length.max())).T)
    emas = [frame.ewm(span=n, adjust=False).mean().to_numpy()[-1] for n in (a, b, c)]
    with warnings.catch_warnings():  # an all-NaN tail's high is NaN, as pandas gives it: no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        high = np.nanmax(_tails(values, start, end, cfg.high_window), axis=1)
    out: list[dict[str, float | bool | None]] = []
    for j in range(len(start)):
        avg = float(sma[j]) if length[j] >= cfg.sma_window else None
        e = [float(ema[j]) if length[j] >= n else None for ema, n in zip(emas, (a, b, c))]
        close = float(last[j])
        out.append({"close": close, "sma": avg, "above_sma": None if avg is None else close > avg,
                    f"ema{a}": e[0], f"ema{b}": e[1], f"ema{c}": e[2],
                    "ema_stack": None if None in e else e[0] > e[1] > e[2],  # type: ignore[operator]
                    "drawdown": 1.0 - close / float(high[j])})
    return out


def realised_volatility(closes: pd.Series, window: int) -> pd.Series:
    """Annualised realised volatility in VIX points: std of the last ``window`` daily log returns
    x sqrt(252) x 100, one value per session (NaN for the first ``window`` sessions)."""
    returns = np.log(closes / closes.shift(1))
    return returns.rolling(window).std(ddof=1) * math.sqrt(252) * 100.0


def _vix_figures(values: np.ndarray, start: np.ndarray, end: np.ndarray,
                 cfg: RegimeConfig) -> list[dict[str, float | bool | None]]:
    """The VIX (or its proxy) close and its percentile among the last ``vix_percentile_window``
    closes, of each window of a NaN-free series (None, None for an empty window)."""
    out: list[dict[str, float | bool | None]] = []
    for first, stop in zip(start.tolist(), end.tolist()):
        if stop <= first:
            out.append({"vix": None, "vix_percentile": None})
            continue
        window = values[max(first, stop - cfg.vix_percentile_window):stop]
        last = float(values[stop - 1])
        out.append({"vix": last, "vix_percentile": np.count_nonzero(window <= last) / len(window)})
    return out


def regime_inputs(closes: Mapping[str, pd.Series], sessions: Sequence[dt.date], cfg: RegimeConfig, proxies: bool,
                  days: int | None = None) -> list[dict[str, float | bool | None]]:
    """Every input of each session, flat: ``"I:SPX.close"``, ``"I:SPX.drawdown"`` ..., ``"vix"``,
    ``"vix_percentile"``.

    ``closes``: ticker -> closes indexed by date, oldest first (index tickers, or with ``proxies``
    the ETFs; the VIX then comes from SPY's realised volatility); each session reads those dated in
    [session - ``days``, session] (``days`` None: all those dated <= session).  Every session's
    figures are those of its own window, computed together: the same as one session at a time.
    """
    out: list[dict[str, float | bool | None]] = [{} for _ in sessions]
    for index, proxy in INDEX_PROXIES.items():
        ticker = proxy if proxies else index
        series = closes.get(ticker)
        if series is None:
            continue
        start, end = regime_windows(series.index, sessions, days)
        some = np.flatnonzero(end > start)
        if len(some):
            figures = _index_figures(series.to_numpy(dtype=float), start[some], end[some], cfg)
            for j, f in zip(some.tolist(), figures):
                out[j].update({f"{ticker}.{k}": v for k, v in f.items()})
    for j, vix in enumerate(_vix_windows(closes, sessions, cfg, proxies, days)):
        out[j].update(vix)
    return out


def _vix_windows(closes: Mapping[str, pd.Series], sessions: Sequence[dt.date], cfg: RegimeConfig, proxies: bool,
                 days: int | None) -> list[dict[str, float | bool | None]]:
    """``_vix_figures`` of each session: the VIX's closes, or SPY's realised volatility over each
    session's own window of SPY closes (the rolling deviation depends on where its series starts)."""
    if not proxies:
        vix = closes.get(VIX, pd.Series(dtype=float)).dropna()
        start, end = regime_windows(vix.index, sessions, days)
        return _vix_figures(vix.to_numpy(dtype=float), start, end, cfg)
    spy = closes.get("SPY")
    if spy is None:
        return [{"vix": None, "vix_percentile": None} for _ in sessions]
    start, end = regime_windows(spy.index, sessions, days)
    out = []
    for first, stop in zip(start.tolist(), end.tolist()):
        proxy = realised_volatility(spy.iloc[first:stop], cfg.proxy_volatility_window).dropna().to_numpy(dtype=float)
        out += _vix_figures(proxy, np.array([0]), np.array([len(proxy)]), cfg)
    return out


def classify(inputs: dict[str, float | bool | None], trend: str, cfg: RegimeConfig
             ) -> tuple[RegimeState | None, list[str]]:
    """(state, the rules that decided it, in words); (None, [why]) when an input the rules need is missing.

    RISK_OFF: drawdown >= bear_drawdown, or under the SMA with VIX >= risk_off_vix or drawdown >=
    risk_off_drawdown.  RISK_ON: over the SMA, EMAs stacked, VIX < risk_on_vix.  NEUTRAL otherwise.
    """
    above, stack = inputs.get(f"{trend}.above_sma"), inputs.get(f"{trend}.ema_stack")
    drawdown, vix = inputs.get(f"{trend}.drawdown"), inputs.get("vix")
    missing = [name for name, v in (("SMA", above), ("EMA stack", stack), ("drawdown", drawdown), ("VIX", vix))
               if v is None]
    if missing:
        return None, [f"{trend} lacks the history for {', '.join(missing)}"]
    assert isinstance(drawdown, float) and isinstance(vix, float)
    if drawdown >= cfg.bear_drawdown:
        return "RISK_OFF", [f"{trend} {drawdown:.1%} under its {cfg.high_window}-session high "
                            f"(bear line {cfg.bear_drawdown:.0%})"]
    if not above and (vix >= cfg.risk_off_vix or drawdown >= cfg.risk_off_drawdown):
        why = [f"{trend} under its {cfg.sma_window}-session SMA"]
        why += [f"VIX {vix:.1f} >= {cfg.risk_off_vix:g}"] if vix >= cfg.risk_off_vix else []
        why += [f"{drawdown:.1%} off its high"] if drawdown >= cfg.risk_off_drawdown else []
        return "RISK_OFF", why
    if above and stack and vix < cfg.risk_on_vix:
        return "RISK_ON", [f"{trend} over its SMA, EMAs stacked {'>'.join(map(str, cfg.ema_windows))}, "
                           f"VIX {vix:.1f} < {cfg.risk_on_vix:g}"]
    why = [f"{trend} {'over' if above else 'under'} its SMA", f"EMAs {'stacked' if stack else 'not stacked'}",
           f"VIX {vix:.1f}"]
    return "NEUTRAL", why


def assess(closes: Mapping[str, pd.Series], sessions: Sequence[dt.date], cfg: RegimeConfig, proxies: bool,
           source: str, days: int | None = None) -> list[RegimeRecord]:
    """The regime record of each session: state, inputs, reasons, exposure and the imposed strategy.

    Requires: ``closes`` by ticker, indexed by date, oldest first; each session reads those dated in
    [session - ``days``, session] (``days`` None: all those dated <= session), as
    :func:`regime_inputs`.  The trend index (or its proxy) or the VIX without a close on the session
    makes its regime ``unavailable`` (a stale input is not a verdict).
    """
    trend = INDEX_PROXIES[cfg.trend_index] if proxies else cfg.trend_index
    stale = [_stale(closes.get(trend), sessions, trend, days)]
    if not proxies:
        vix = closes.get(VIX)
        stale.append(_stale(None if vix is None else vix.dropna(), sessions, VIX, days))
    ready = [j for j in range(len(sessions)) if not any(s[j] for s in stale)]
    inputs = dict(zip(ready, regime_inputs(closes, [sessions[j] for j in ready], cfg, proxies, days)))
    out = []
    for j in range(len(sessions)):
        note = next((s[j] for s in stale if s[j]), None)
        if note is not None:
            out.append(RegimeRecord(status="unavailable", source=source, note=note))
            continue
        state, reasons = classify(inputs[j], trend, cfg)
        if state is None:
            out.append(RegimeRecord(status="unavailable", source=source, inputs=inputs[j], note="; ".join(reasons)))
            continue
        imposed = StrategyName.BUY_HOLD if state == "RISK_OFF" and cfg.risk_off_strategy == "BUY_HOLD" else None
        out.append(RegimeRecord(status="ok", state=state, source=source, inputs=inputs[j], reasons=reasons,
                                exposure=cfg.exposure(state), strategy=imposed))
    return out


def _stale(series: pd.Series | None, sessions: Sequence[dt.date], ticker: str, days: int | None) -> list[str | None]:
    """Per session: why ``ticker`` has no close on it (its window's last close is another day, or
    there is none), or None."""
    if series is None or series.empty:
        return [f"no {ticker} close for session {s} (last: none)" for s in sessions]
    start, end = regime_windows(series.index, sessions, days)
    dates = series.index
    return [None if stop > first and dates[stop - 1] == s else
            f"no {ticker} close for session {s} (last: {dates[stop - 1] if stop > first else 'none'})"
            for s, first, stop in zip(sessions, start.tolist(), end.tolist())]
