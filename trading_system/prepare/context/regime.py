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

import numpy as np
import pandas as pd

from trading_system.config_context import RegimeConfig, RegimeState
from trading_system.state.plan import RegimeRecord
from trading_system.vocabulary import StrategyName

#: The equity indices and the ETF that stands in for each without an indices entitlement.
INDEX_PROXIES: dict[str, str] = {"I:SPX": "SPY", "I:NDX": "QQQ", "I:RUT": "IWM"}
VIX = "I:VIX"


def _index_inputs(closes: pd.Series, cfg: RegimeConfig) -> dict[str, float | bool | None]:
    """close, sma, above_sma, ema stack, drawdown of one index's closes (oldest first)."""
    a, b, c = cfg.ema_windows
    last = float(closes.iloc[-1])
    sma = float(closes.iloc[-cfg.sma_window:].mean()) if len(closes) >= cfg.sma_window else None
    emas = [float(closes.ewm(span=n, adjust=False).mean().iloc[-1]) if len(closes) >= n else None for n in (a, b, c)]
    high = float(closes.iloc[-cfg.high_window:].max())
    return {"close": last, "sma": sma, "above_sma": None if sma is None else last > sma,
            f"ema{a}": emas[0], f"ema{b}": emas[1], f"ema{c}": emas[2],
            "ema_stack": None if None in emas else emas[0] > emas[1] > emas[2],  # type: ignore[operator]
            "drawdown": 1.0 - last / high}


def realised_volatility(closes: pd.Series, window: int) -> pd.Series:
    """Annualised realised volatility in VIX points: std of the last ``window`` daily log returns
    x sqrt(252) x 100, one value per session (NaN for the first ``window`` sessions)."""
    returns = np.log(closes / closes.shift(1))
    return returns.rolling(window).std(ddof=1) * math.sqrt(252) * 100.0


def _vix_inputs(vix: pd.Series, cfg: RegimeConfig) -> dict[str, float | bool | None]:
    """The VIX (or its proxy) close and its percentile among the last ``vix_percentile_window`` closes."""
    vix = vix.dropna()
    if vix.empty:
        return {"vix": None, "vix_percentile": None}
    window = vix.iloc[-cfg.vix_percentile_window:]
    last = float(vix.iloc[-1])
    return {"vix": last, "vix_percentile": float((window <= last).mean())}


def regime_inputs(closes: dict[str, pd.Series], cfg: RegimeConfig, proxies: bool) -> dict[str, float | bool | None]:
    """Every input, flat: ``"I:SPX.close"``, ``"I:SPX.drawdown"`` ..., ``"vix"``, ``"vix_percentile"``.

    ``closes``: ticker -> closes dated <= the session, oldest first (index tickers, or with
    ``proxies`` the ETFs; the VIX then comes from SPY's realised volatility).
    """
    out: dict[str, float | bool | None] = {}
    for index, proxy in INDEX_PROXIES.items():
        ticker = proxy if proxies else index
        if ticker in closes and len(closes[ticker]):
            out.update({f"{ticker}.{k}": v for k, v in _index_inputs(closes[ticker], cfg).items()})
    if proxies:
        spy = closes.get("SPY")
        vix = realised_volatility(spy, cfg.proxy_volatility_window) if spy is not None else pd.Series(dtype=float)
    else:
        vix = closes.get(VIX, pd.Series(dtype=float))
    out.update(_vix_inputs(vix, cfg))
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


def assess(closes: dict[str, pd.Series], session: dt.date, cfg: RegimeConfig, proxies: bool, source: str
           ) -> RegimeRecord:
    """The regime record of ``session``: state, inputs, reasons, exposure and the imposed strategy.

    Requires: ``closes`` dated <= ``session`` (the caller clamps). The trend index (or its proxy)
    or the VIX without a close on ``session`` makes the regime ``unavailable`` (a stale input is not
    a verdict).
    """
    trend = INDEX_PROXIES[cfg.trend_index] if proxies else cfg.trend_index
    series = closes.get(trend)
    if series is None or series.empty or series.index[-1] != session:
        last = None if series is None or series.empty else series.index[-1]
        return RegimeRecord(status="unavailable", source=source,
                            note=f"no {trend} close for session {session} (last: {last or 'none'})")
    vix = closes.get(VIX)
    if not proxies and (vix is None or vix.dropna().empty or vix.dropna().index[-1] != session):
        last = None if vix is None or vix.dropna().empty else vix.dropna().index[-1]
        return RegimeRecord(status="unavailable", source=source,
                            note=f"no {VIX} close for session {session} (last: {last or 'none'})")
    inputs = regime_inputs(closes, cfg, proxies)
    state, reasons = classify(inputs, trend, cfg)
    if state is None:
        return RegimeRecord(status="unavailable", source=source, inputs=inputs, note="; ".join(reasons))
    imposed = StrategyName.BUY_HOLD if state == "RISK_OFF" and cfg.risk_off_strategy == "BUY_HOLD" else None
    return RegimeRecord(status="ok", state=state, source=source, inputs=inputs, reasons=reasons,
                        exposure=cfg.exposure(state), strategy=imposed)
