"""The market-context settings of config.yaml (DESIGN §11): ``regime:``, ``events:``, ``levels:``.

Beside ``config`` (not in ``prepare/context``) so that loading the configuration imports no stage.

Regime defaults, and why:

- the trend index is the S&P 500 (``I:SPX``; SPY when the key has no indices);
- RISK_OFF when the index is under its 200-session SMA *and* either the VIX is at or over 30 or
  the index is 10 % or more under its 52-week high, or whenever it is 20 % or more under that
  high.  The 200-session SMA is the classic trend filter (Faber, "A Quantitative Approach to
  Tactical Asset Allocation", 2007); a VIX of 30 is the usual "high fear" line (CBOE's VIX
  white paper puts its long-run mean near 19-20); 20 % off the high is the common definition of a
  bear market.  Requiring the trend to break as well keeps a one-day VIX spike in an uptrend
  (2021-01-27: VIX 37, index 3 % off its high) from pulling the account out;
- RISK_ON when the index is over its SMA, its EMAs stack 8 > 21 > 50 (the short trend agrees with
  the long one) and the VIX is under 25 (under its 1990-2020 mean plus ~half a standard deviation);
- NEUTRAL otherwise.
- Effect: RISK_ON trades as before; NEUTRAL scales the exposure to 0.75 of the investable
  equity; RISK_OFF trades BUY_HOLD (the benchmarks) at 0.5 exposure, the rest in cash.  These are
  starting points to measure with ``prep backtest --no-regime``, not tuned values.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from trading_system.settings_types import Fraction, Fraction0, Strict

RegimeState = Literal["RISK_ON", "NEUTRAL", "RISK_OFF"]


class RegimeConfig(Strict):
    """How the evening names the market's regime, and what each regime does to the morning's trade."""

    enabled: bool = True
    required: bool = False                 # true: no context data -> exit 1 and no plan
    trend_index: Literal["I:SPX", "I:NDX", "I:RUT"] = "I:SPX"
    sma_window: int = Field(200, ge=2, le=400)
    ema_windows: tuple[int, int, int] = (8, 21, 50)
    high_window: int = Field(252, ge=2, le=600)                 # sessions of the "52-week" high
    vix_percentile_window: int = Field(252, ge=20, le=600)
    proxy_volatility_window: int = Field(20, ge=2, le=250)      # SPY's realised volatility stands in for VIX
    risk_off_vix: float = Field(30.0, gt=0, le=200)
    risk_off_drawdown: Fraction = 0.10     # with the trend broken
    bear_drawdown: Fraction = 0.20         # RISK_OFF whatever the trend
    risk_on_vix: float = Field(25.0, gt=0, le=200)
    risk_off_strategy: Literal["BUY_HOLD", "keep"] = "BUY_HOLD"  # keep: the validated choice, at the exposure
    exposure_neutral: Fraction = 0.75
    exposure_risk_off: Fraction0 = 0.5

    @model_validator(mode="after")
    def _ordered(self) -> "RegimeConfig":
        a, b, c = self.ema_windows
        if not 2 <= a < b < c <= 400:
            raise ValueError(f"regime.ema_windows must be three increasing windows in [2, 400] ({a}, {b}, {c} given)")
        if self.risk_on_vix > self.risk_off_vix:
            raise ValueError(f"regime.risk_on_vix {self.risk_on_vix:g} is above risk_off_vix {self.risk_off_vix:g}")
        if self.risk_off_drawdown > self.bear_drawdown:
            raise ValueError(f"regime.risk_off_drawdown {self.risk_off_drawdown:g} is above bear_drawdown "
                             f"{self.bear_drawdown:g}")
        return self

    def exposure(self, state: RegimeState | None) -> float:
        """The fraction of the investable equity traded in ``state`` (1.0 when the regime is unknown)."""
        return {"NEUTRAL": self.exposure_neutral, "RISK_OFF": self.exposure_risk_off}.get(state or "", 1.0)


class EventsConfig(Strict):
    """The earnings gate: which provider, and how far past the target session a report still counts."""

    enabled: bool = True
    required: bool = False                 # true: provider down or out of date -> exit 1 and no plan
    provider: Literal["csv", "polygon", "none"] = "csv"
    file: str | None = Field(None, min_length=1)   # csv: symbol,date[,time]; None: earnings.csv in data.sample_dir
    within_sessions: int = Field(0, ge=0, le=20)                  # also sessions after the target


class LevelsConfig(Strict):
    """Per pick: Wilder ATR, the invalidation k x ATR under the entry, and the R-multiple targets."""

    atr_period: int = Field(14, ge=2, le=100)
    stop_atr: float = Field(1.5, gt=0, le=20)
    targets_r: tuple[float, float] = (1.0, 2.0)

    @model_validator(mode="after")
    def _targets(self) -> "LevelsConfig":
        a, b = self.targets_r
        if not 0 < a < b <= 20:
            raise ValueError(f"levels.targets_r must be two increasing multiples in (0, 20] ({a:g}, {b:g} given)")
        return self
