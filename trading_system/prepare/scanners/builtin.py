"""The built-in scanners (DESIGN §10), each a vectorised rule over the night's bar panel.

Defaults are the scanner-framework seed's criteria; each figure is a ``params`` key (see
``settings``).  Choices the design leaves open, made here:

- a volume *mean* is over the ``volume_window`` sessions **before** the session (the
  session's own volume is what is compared with it, so it is not in the mean);
- the previous ``window``-session high of ``breakout`` likewise excludes the session;
- ``momentum``'s RSI is the scan's: Wilder's over the last (up to) 250 closes, so a symbol with
  fewer closes has the RSI of those it has (``rsi_period + 1`` at least), exactly as it is scored;
- a symbol with fewer bars than a rule's volume, SMA or high window is never a find (its figures are NaN);
- ``gap`` in the morning compares the pre-market price with the session's close (the context's
  session is the last closed one); in the evening and in a backtest, the session's open with
  the previous close.

Every ``scan`` returns finds ranked best first; the runner applies the price and volume floors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trading_system.prepare.indicators import wilder_rsi_last
from trading_system.prepare.scanners.base import ScanContext, Scanner, ScanResult, ranked
from trading_system.prepare.scanners.settings import (
    BreakoutParams,
    GapParams,
    MomentumParams,
    TopDollarVolumeParams,
    VolumeParams,
)

#: Closes read for Wilder's RSI (as ``scoring.rsi_window``): enough for its smoothing to settle.
RSI_CLOSES = 250


def _prior_mean(panel: np.ndarray) -> np.ndarray:
    """Mean of each column over every row but the last (NaN when any of those rows is NaN)."""
    return panel[:-1].mean(axis=0) if panel.shape[0] > 1 else np.full(panel.shape[1], np.nan)


class Gap(Scanner):
    """|open / previous close - 1| >= ``min_gap`` (morning: pre-market price / last close - 1).

    Ranked by the size of the gap. Metadata: ``gap`` (fraction), ``price`` (the open or the
    pre-market price, dollars), ``prev_close`` (dollars), ``volume`` (shares of the session)."""

    Params = GapParams
    params: GapParams   # what Scanner.__init__ makes of the entry's params
    defaults = {"min_volume": 1_000_000.0, "max_price": 500.0}

    def scan(self, ctx: ScanContext) -> ScanResult:
        last = ctx.last()
        if ctx.phase == "morning":
            price = pd.Series({s: p for s, p in ctx.premarket.items()}, dtype=float).reindex(last.index)
            base = last["close"]
        else:
            price, base = last["open"], last["prev_close"]
        gap = (price / base - 1.0).rename("gap")
        size = gap if self.params.direction == "up" else -gap if self.params.direction == "down" else gap.abs()
        return ranked(size, size >= self.params.min_gap,
                      {"gap": gap, "price": price, "prev_close": base, "volume": last["volume"]})


class Momentum(Scanner):
    """Wilder RSI >= ``min_rsi``, volume >= ``min_volume_ratio`` x its prior mean, close > SMA.

    Ranked by RSI. Metadata: ``rsi`` (0-100), ``volume_ratio``, ``sma`` (dollars), ``close``."""

    Params = MomentumParams
    params: MomentumParams   # what Scanner.__init__ makes of the entry's params

    def window(self) -> int:
        return RSI_CLOSES

    def scan(self, ctx: ScanContext) -> ScanResult:
        p = self.params
        closes = ctx.history("close", RSI_CLOSES)
        rsi = wilder_rsi_last(closes, p.rsi_period)
        volume = ctx.history("volume", p.volume_window + 1)
        ratio = volume[-1] / _prior_mean(volume)
        sma = closes[-p.sma_window:].mean(axis=0)
        close = closes[-1]
        idx = ctx.symbols
        keep = (rsi >= p.min_rsi) & (ratio >= p.min_volume_ratio) & (close > sma)
        return ranked(pd.Series(rsi, idx, name="rsi"), pd.Series(keep, idx),
                      {"rsi": pd.Series(rsi, idx), "volume_ratio": pd.Series(ratio, idx),
                       "sma": pd.Series(sma, idx), "close": pd.Series(close, idx)})


class Volume(Scanner):
    """Volume >= ``min_volume_ratio`` x its prior mean and |close / previous close - 1| >= ``min_change``,
    not on the watchlist (unless ``exclude_watchlist: false``).

    Ranked by the volume ratio. Metadata: ``volume_ratio``, ``change`` (fraction), ``volume``."""

    Params = VolumeParams
    params: VolumeParams   # what Scanner.__init__ makes of the entry's params

    def window(self) -> int:
        return self.params.volume_window + 1

    def scan(self, ctx: ScanContext) -> ScanResult:
        p = self.params
        volume = ctx.history("volume", p.volume_window + 1)
        closes = ctx.history("close", 2)
        ratio = volume[-1] / _prior_mean(volume)
        change = closes[-1] / closes[0] - 1.0
        idx = ctx.symbols
        keep = (ratio >= p.min_volume_ratio) & (np.abs(change) >= p.min_change)
        if p.exclude_watchlist:
            keep &= ~idx.isin(list(ctx.watchlist))
        return ranked(pd.Series(ratio, idx, name="volume_ratio"), pd.Series(keep, idx),
                      {"volume_ratio": pd.Series(ratio, idx), "change": pd.Series(change, idx),
                       "volume": pd.Series(volume[-1], idx)})


class Breakout(Scanner):
    """Close > the high of the previous ``window`` sessions, volume > its prior mean, close > open.

    Ranked by how far the close is over that high. Metadata: ``breakout`` (close / prior high - 1),
    ``prior_high`` (dollars), ``volume_ratio``, ``close``."""

    Params = BreakoutParams
    params: BreakoutParams   # what Scanner.__init__ makes of the entry's params

    def window(self) -> int:
        return max(self.params.window, self.params.volume_window) + 1

    def scan(self, ctx: ScanContext) -> ScanResult:
        p = self.params
        highs = ctx.history("high", p.window + 1)
        volume = ctx.history("volume", p.volume_window + 1)
        last = ctx.last()
        prior_high = highs[:-1].max(axis=0)   # NaN when any of those sessions is missing
        close = last["close"].to_numpy()
        ratio = volume[-1] / _prior_mean(volume)
        over = close / prior_high - 1.0
        idx = ctx.symbols
        keep = (close > prior_high) & (ratio > 1.0) & (close > last["open"].to_numpy())
        return ranked(pd.Series(over, idx, name="breakout"), pd.Series(keep, idx),
                      {"breakout": pd.Series(over, idx), "prior_high": pd.Series(prior_high, idx),
                       "volume_ratio": pd.Series(ratio, idx), "close": pd.Series(close, idx)})


def top_by_dollar_volume(day: pd.DataFrame, n: int) -> list[str]:
    """The ``n`` symbols of ``day`` (index symbol; close in dollars, volume in shares) with the largest
    close x volume, largest first; ties keep ``day``'s row order.  The universe's top-N generator."""
    dollar_volume = (day["close"] * day["volume"]).sort_values(ascending=False, kind="stable")
    return [str(s) for s in dollar_volume.index[:n]]


class TopDollarVolume(Scanner):
    """The ``top_n`` names of the session by close x volume (discovery of the most traded names).

    Ranked by dollar volume. Metadata: ``dollar_volume`` (dollars)."""

    Params = TopDollarVolumeParams
    params: TopDollarVolumeParams   # what Scanner.__init__ makes of the entry's params

    def scan(self, ctx: ScanContext) -> ScanResult:
        last = ctx.last()
        symbols = top_by_dollar_volume(last, self.params.top_n)
        dollars = last["close"] * last["volume"]
        return ScanResult(symbols=symbols, metadata={s: {"dollar_volume": round(float(dollars[s]), 2)}
                                                     for s in symbols})


#: ``builtin:NAME`` -> class.
BUILTINS: dict[str, type[Scanner]] = {
    "gap": Gap, "momentum": Momentum, "volume": Volume, "breakout": Breakout, "top_dollar_volume": TopDollarVolume,
}
