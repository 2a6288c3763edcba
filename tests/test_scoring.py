"""Tests of trading_system.prepare.scoring (DESIGN §4, §6) on frames cut from the real sample bars.

Every frame below is cut from ``data/sample/bars.parquet`` (real daily bars, raw).  A window
that crosses a split is split-adjusted with ``data/sample/splits.csv`` by ``split_adjust``
below; the windows of the single-symbol tests were chosen not to cross one.  Inputs that
real data cannot give (a flat price) are marked SYNTHETIC with the reason.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trading_system.config import (
    BucketsConfig,
    EligibilityConfig,
    RsiFitConfig,
    ScoreWeightsConfig,
    ScoringConfig,
)
from trading_system.prepare.scoring import (
    METRIC_COLUMNS,
    SCAN_COLUMNS,
    closes_panel,
    composite_score,
    gradual_loss,
    max_drawdown,
    rescore,
    rsi_fit,
    score_universe,
    sharpe_volatility,
    trend,
    wilder_rsi,
)

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
SESSION = dt.date(2021, 4, 19)
SCORING = ScoringConfig()
ELIGIBILITY = EligibilityConfig()
BUCKETS = BucketsConfig()


# --------------------------------------------------------------------------- data helpers


@pytest.fixture(scope="module")
def raw_bars() -> pd.DataFrame:
    return pd.read_parquet(SAMPLE / "bars.parquet")


@pytest.fixture(scope="module")
def splits() -> pd.DataFrame:
    sp = pd.read_csv(SAMPLE / "splits.csv")
    sp["date"] = pd.to_datetime(sp["date"]).dt.date
    return sp


def split_adjust(bars: pd.DataFrame, splits: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Plain pandas split adjustment: bars before each ex-date (<= as_of) / ratio, volume * ratio."""
    out = bars.copy()
    out["volume"] = out["volume"].astype(float)
    days = pd.to_datetime(out["date"])  # one conversion: comparing Python dates row by row is slow
    for sp in splits[splits["date"] <= as_of].itertuples():
        before = (out["symbol"] == sp.symbol) & (days < pd.Timestamp(sp.date))
        out.loc[before, ["open", "high", "low", "close"]] /= sp.ratio
        out.loc[before, "volume"] *= sp.ratio
    return out


def cut(bars: pd.DataFrame, symbol: str, start: dt.date | None = None, end: dt.date | None = None,
        last: int | None = None) -> pd.DataFrame:
    """One symbol's real bars in [start, end] (or its last ``last`` bars up to ``end``)."""
    f = bars[bars["symbol"] == symbol]
    if start is not None:
        f = f[f["date"] >= start]
    if end is not None:
        f = f[f["date"] <= end]
    if last is not None:
        f = f.tail(last)
    return f.reset_index(drop=True)


def col(closes) -> np.ndarray:
    """A (T, 1) close panel from a sequence of closes."""
    return np.asarray(closes, dtype=float)[:, None]


@pytest.fixture
def universe(whole_sample_scan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole sample, split-adjusted as of SESSION and clamped to it, and its scan (built once
    per session in conftest.py; ``split_adjust`` above is the same adjustment)."""
    return whole_sample_scan


# --------------------------------------------------------------------------- RSI


MSFT_20 = [217.69, 217.90, 212.25, 218.29, 219.62, 217.49, 214.93, 216.34, 213.02, 212.65,
           216.44, 224.34, 224.97, 225.95, 229.53, 232.33, 232.90, 238.93, 231.96, 239.65]


def test_msft_closes_are_the_real_ones(raw_bars):
    f = cut(raw_bars, "MSFT", dt.date(2021, 1, 4), dt.date(2021, 2, 1))
    assert f["close"].tolist() == pytest.approx(MSFT_20, abs=1e-9)
    assert len(f) == 20


def test_wilder_rsi_by_hand_on_real_closes():
    # Changes of the 20 MSFT closes (2021-01-04 .. 2021-02-01), written out:
    #  +0.21 -5.65 +6.04 +1.33 -2.13 -2.56 +1.41 -3.32 -0.37 +3.79 +7.90 +0.63 +0.98 +3.58 | +2.80 +0.57 +6.03 -6.97 +7.69
    # Seed over the first 14 changes (simple means):
    gain0 = (0.21 + 6.04 + 1.33 + 1.41 + 3.79 + 7.90 + 0.63 + 0.98 + 3.58) / 14   # 25.87 / 14
    loss0 = (5.65 + 2.13 + 2.56 + 3.32 + 0.37) / 14                               # 14.03 / 14
    rsi14 = 100 * gain0 / (gain0 + loss0)
    assert rsi14 == pytest.approx(100 * 25.87 / 39.90)                            # 64.837...
    # Wilder steps: avg = (prev * 13 + current) / 14
    gain1, loss1 = (gain0 * 13 + 2.80) / 14, (loss0 * 13 + 0.0) / 14
    gain2, loss2 = (gain1 * 13 + 0.57) / 14, (loss1 * 13 + 0.0) / 14
    gain3, loss3 = (gain2 * 13 + 6.03) / 14, (loss2 * 13 + 0.0) / 14
    gain4, loss4 = (gain3 * 13 + 0.00) / 14, (loss3 * 13 + 6.97) / 14
    gain5, loss5 = (gain4 * 13 + 7.69) / 14, (loss4 * 13 + 0.0) / 14
    expected = [100 * g / (g + lo) for g, lo in
                [(gain0, loss0), (gain1, loss1), (gain2, loss2), (gain3, loss3), (gain4, loss4), (gain5, loss5)]]
    # The same figures, rounded, so a reader can check them on paper.
    assert expected == pytest.approx([64.8371, 67.3078, 67.8037, 72.5482, 61.3030, 67.3214], abs=5e-5)

    got = wilder_rsi(np.array(MSFT_20), 14)
    assert np.isnan(got[:14]).all()                 # fewer than 14 changes: no RSI yet
    assert got[14:] == pytest.approx(expected, abs=1e-9)


def test_wilder_rsi_padding_and_columns_are_independent():
    # Two real series side by side, the shorter NaN-padded on top: each column must give
    # exactly what it gives alone (the recursion's state is per column).
    short = np.array(MSFT_20[3:])
    panel = np.column_stack([np.array(MSFT_20), np.concatenate([[np.nan] * 3, short])])
    got = wilder_rsi(panel, 14)
    assert got[:, 0] == pytest.approx(wilder_rsi(np.array(MSFT_20), 14), nan_ok=True)
    alone = wilder_rsi(short, 14)
    assert got[3:, 1] == pytest.approx(alone, nan_ok=True)
    assert np.isnan(got[:17, 1]).all() and not np.isnan(got[17, 1])


def test_wilder_rsi_too_short_and_flat():
    assert np.isnan(wilder_rsi(np.array(MSFT_20[:14]), 14)).all()      # 13 changes: no seed
    assert not np.isnan(wilder_rsi(np.array(MSFT_20[:15]), 14)[-1])    # 14 changes: the seed
    # SYNTHETIC: a flat price (no real close stays flat for 15 sessions) -> both averages 0 -> RSI 0.
    assert wilder_rsi(np.full(16, 50.0), 14)[-1] == 0.0
    # SYNTHETIC: a price that only rises -> avg loss 0 -> RSI 100.
    assert wilder_rsi(np.arange(1.0, 17.0), 14)[-1] == 100.0


# --------------------------------------------------------------------------- Sharpe / volatility


def test_sharpe_and_volatility_against_numpy(raw_bars):
    closes = cut(raw_bars, "JNJ", end=SESSION, last=61)["close"].to_numpy()
    r = closes[1:] / closes[:-1] - 1
    sharpe, vol = sharpe_volatility(col(closes), 60, 0.0, 252)
    assert vol[0] == pytest.approx(np.std(r, ddof=1) * np.sqrt(252), rel=1e-12)
    assert sharpe[0] == pytest.approx(np.mean(r) / np.std(r, ddof=1) * np.sqrt(252), rel=1e-12)
    # A risk-free rate is taken off each daily return; volatility is unchanged.
    sharpe_rf, vol_rf = sharpe_volatility(col(closes), 60, 0.05, 252)
    assert vol_rf[0] == vol[0]
    assert sharpe_rf[0] == pytest.approx((np.mean(r) - 0.05 / 252) / np.std(r, ddof=1) * np.sqrt(252))
    # Only the last 60 returns count: a longer history gives the same figure.
    longer = cut(raw_bars, "JNJ", end=SESSION, last=200)["close"].to_numpy()
    assert sharpe_volatility(col(longer), 60)[0][0] == pytest.approx(sharpe[0], rel=1e-12)


def test_sharpe_needs_lookback_plus_one_closes_and_flat_is_zero(raw_bars):
    closes = cut(raw_bars, "JNJ", end=SESSION, last=60)["close"].to_numpy()
    sharpe, vol = sharpe_volatility(col(closes), 60)
    assert np.isnan(sharpe[0]) and np.isnan(vol[0])
    # SYNTHETIC: a flat price (std = 0 cannot come from real bars) -> Sharpe 0, volatility 0.
    sharpe, vol = sharpe_volatility(col(np.full(61, 20.0)), 60)
    assert sharpe[0] == 0.0 and vol[0] == 0.0


# --------------------------------------------------------------------------- max drawdown


def test_max_drawdown_covid_crash(raw_bars):
    f = cut(raw_bars, "SPY", end=dt.date(2020, 3, 23), last=61)
    peak = f.loc[f["close"].idxmax()]
    trough = f.iloc[-1]
    assert peak["date"] == dt.date(2020, 2, 19) and peak["close"] == pytest.approx(338.339996)
    assert trough["date"] == dt.date(2020, 3, 23) and trough["close"] == pytest.approx(222.949997)
    got = max_drawdown(col(f["close"]), 61)[0]
    assert got == pytest.approx(1 - 222.949997 / 338.339996, rel=1e-7)    # 0.34105
    assert 0.34 < got < 0.342


def test_max_drawdown_window_and_short_history(raw_bars):
    f = cut(raw_bars, "SPY", end=dt.date(2020, 3, 23), last=61)
    # Only the last `window` closes count: the last 2 closes fall 228.80 -> 222.95.
    assert max_drawdown(col(f["close"]), 2)[0] == pytest.approx(1 - 222.949997 / 228.800003, rel=1e-7)
    # SPY 2020-03-23 -> 2020-03-25 only rose: no drawdown.
    up = cut(raw_bars, "SPY", dt.date(2020, 3, 23), dt.date(2020, 3, 25))
    assert max_drawdown(col(up["close"]), 3)[0] == 0.0
    assert np.isnan(max_drawdown(col(up["close"]), 4)[0])   # fewer closes than the window


# --------------------------------------------------------------------------- trend and gradual loss


@pytest.mark.parametrize(
    "end, expected",
    [
        (dt.date(2020, 3, 23), 0.0),    # far under its SMA20 (the crash low): clipped at 0
        (dt.date(2020, 4, 9), 1.0),     # 10 % over its SMA20: clipped at 1
    ],
)
def test_trend_clip_edges(raw_bars, end, expected):
    f = cut(raw_bars, "SPY", end=end, last=20)
    ratio = f["close"].iloc[-1] / f["close"].mean() - 1
    assert abs(ratio) > 0.05                                 # really beyond the band
    assert trend(col(f["close"]), 20, 0.10)[0] == expected
    # A band wide enough brings it back inside (0, 1): the clip did the work above.
    assert 0.0 < trend(col(f["close"]), 20, 10.0)[0] < 1.0


def test_trend_inside_the_band(raw_bars):
    f = cut(raw_bars, "SPY", end=dt.date(2020, 5, 12), last=20)
    c = f["close"].to_numpy()
    expected = (c[-1] / c.mean() - 1) / 0.10 + 0.5
    assert 0.5 < expected < 0.65
    assert trend(col(c), 20, 0.10)[0] == pytest.approx(expected, rel=1e-12)
    assert np.isnan(trend(col(c[1:]), 20, 0.10)[0])          # 19 closes: no SMA20


def test_gradual_loss_on_a_slow_bleed(raw_bars):
    f = cut(raw_bars, "WMT", end=SESSION, last=79)           # 60 sessions + 19 for their SMA20
    c = f["close"]
    assert c.iloc[-1] / c.iloc[-61] - 1 < 0                  # the 60-session return is negative
    sma = c.rolling(20).mean()
    expected = float((c.iloc[-60:] < sma.iloc[-60:]).mean())
    assert expected == pytest.approx(29 / 60)
    assert gradual_loss(col(c), 60, 20)[0] == pytest.approx(expected)


def test_gradual_loss_is_zero_when_the_period_gained(raw_bars):
    f = cut(raw_bars, "SPY", end=SESSION, last=79)
    c = f["close"]
    assert c.iloc[-1] / c.iloc[-61] - 1 > 0
    assert ((c.iloc[-60:] < c.rolling(20).mean().iloc[-60:]).sum()) > 0   # some sessions were under
    assert gradual_loss(col(c), 60, 20)[0] == 0.0


def test_gradual_loss_short_history_counts_only_sessions_with_a_full_sma(raw_bars):
    # 61 closes: of the last 60 sessions only the last 42 have 20 bars for their SMA.
    f = cut(raw_bars, "WMT", end=SESSION, last=61)
    c = f["close"]
    sma = c.rolling(20).mean()
    last = slice(len(c) - 60, None)
    valid = sma.iloc[last].notna()
    assert valid.sum() == 42
    expected = (c.iloc[last][valid] < sma.iloc[last][valid]).sum() / 42
    assert gradual_loss(col(c), 60, 20)[0] == pytest.approx(expected)
    assert np.isnan(gradual_loss(col(c.iloc[1:]), 60, 20)[0])   # 60 closes: no 60-session return


# --------------------------------------------------------------------------- rsi_fit and score


@pytest.mark.parametrize(
    "rsi, fit",
    [(0.0, 0.0), (29.0, 0.0), (30.0, 0.0), (47.5, 0.5), (65.0, 1.0), (70.0, 1.0), (75.0, 1.0),
     (85.0, 0.5), (95.0, 0.0), (100.0, 0.0)],
)
def test_rsi_fit_corners(rsi, fit):
    assert rsi_fit(rsi, RsiFitConfig()) == pytest.approx(fit)


def test_rsi_fit_follows_its_config_and_arrays():
    cfg = RsiFitConfig(zero_below=40, full_from=50, full_to=50, zero_above=60)
    got = rsi_fit(np.array([40.0, 45.0, 50.0, 55.0, 60.0, np.nan]), cfg)
    assert got[:5] == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0])
    assert np.isnan(got[5])


def test_composite_score_on_hand_inputs():
    # sharpe 1.5 -> 50 * (1 - e^-1); rsi 70 -> fit 1 -> 30; trend 0.5 -> 10;
    # gradual_loss 0.25 -> -5; drawdown 0.20 -> -50 * 0.10 = -5.
    expected = 50 * (1 - math.exp(-1.0)) + 30 + 10 - 5 - 5
    assert composite_score(1.5, 70.0, 0.5, 0.25, 0.20, SCORING) == pytest.approx(expected)
    assert expected == pytest.approx(61.6060279)
    # sharpe <= -1 gives no Sharpe points at all; a deep drawdown clips the score at 0.
    assert composite_score(-3.0, 70.0, 1.0, 0.0, 0.0, SCORING) == pytest.approx(50.0)
    assert composite_score(-3.0, 20.0, 0.0, 1.0, 0.60, SCORING) == 0.0
    # Weights come from the config; doubled weights push past 100 -> clipped at 100.
    heavy = ScoringConfig(weights=ScoreWeightsConfig(sharpe=100, rsi=60, trend=40))
    assert composite_score(3.0, 70.0, 1.0, 0.0, 0.0, heavy) == 100.0
    assert np.isnan(composite_score(np.nan, 70.0, 1.0, 0.0, 0.0, SCORING))


# --------------------------------------------------------------------------- eligibility, buckets


def _scan_of(raw_bars, symbols, session, **kw):
    bars = raw_bars[raw_bars["symbol"].isin(symbols) & (raw_bars["date"] <= session)]
    return score_universe(bars, session, kw.get("scoring", SCORING), kw.get("eligibility", ELIGIBILITY),
                          kw.get("buckets", BUCKETS))


def test_short_history_late_starter(raw_bars):
    # VTRS starts 2020-11-16: 59 bars by 2021-02-10, 60 by 02-11, 61 by 02-12.
    scan = _scan_of(raw_bars, ["VTRS", "MSFT"], dt.date(2021, 2, 10))
    v = scan.loc["VTRS"]
    assert v["bars"] == 59 and not v["eligible"] and v["reason"] == "fewer than 61 bars"
    assert v["bucket"] == "" and not v["pick"]
    assert np.isnan(v["sharpe"]) and np.isnan(v["max_drawdown"]) and np.isnan(v["score"])
    assert 0 <= v["rsi"] <= 100 and 0 <= v["trend"] <= 1     # enough bars for these two
    assert scan.loc["MSFT", "eligible"]
    assert not _scan_of(raw_bars, ["VTRS"], dt.date(2021, 2, 11)).loc["VTRS", "eligible"]
    on = _scan_of(raw_bars, ["VTRS"], dt.date(2021, 2, 12)).loc["VTRS"]
    assert on["bars"] == 61 and on["eligible"] and on["reason"] == ""
    assert np.isfinite(on[list(METRIC_COLUMNS)].astype(float)).all()


def test_no_bar_for_the_session(raw_bars):
    scan = _scan_of(raw_bars, ["VAR", "MSFT"], SESSION)       # VAR's last bar is 2021-04-16
    v = scan.loc["VAR"]
    assert v["last_date"] == dt.date(2021, 4, 16)
    assert v["reason"] == "no bar for session 2021-04-19" and not v["eligible"]
    assert np.isfinite(v["score"])                             # metrics are still computed
    assert scan.loc["MSFT", "last_date"] == SESSION and scan.loc["MSFT", "eligible"]


def test_close_under_the_price_floor(raw_bars):
    session = dt.date(2020, 10, 30)                            # MRO closed at $3.96
    v = _scan_of(raw_bars, ["MRO"], session).loc["MRO"]
    assert v["close"] == pytest.approx(3.96)
    assert v["reason"] == "close under $5.00" and not v["eligible"]
    lower = EligibilityConfig(min_price=3.5)                  # the floor comes from the config
    assert _scan_of(raw_bars, ["MRO"], session, eligibility=lower).loc["MRO", "eligible"]


def test_median_dollar_volume_under_the_floor(raw_bars):
    session = dt.date(2020, 11, 11)
    f = cut(raw_bars, "NWS", end=session, last=20)
    expected = float((f["close"] * f["volume"]).median())
    assert expected == pytest.approx(4_801_102.14)
    v = _scan_of(raw_bars, ["NWS"], session).loc["NWS"]
    assert v["dollar_volume"] == pytest.approx(expected)
    assert v["reason"] == "median dollar volume under $5,000,000" and not v["eligible"]
    nxt = _scan_of(raw_bars, ["NWS"], dt.date(2020, 11, 13)).loc["NWS"]   # back over $5M
    assert nxt["eligible"]


def test_the_first_failing_rule_is_the_reason(raw_bars):
    # Bars up to one session, scored for the next one: two rules fail; the reason is the first,
    # in the order history, price, liquidity, session.
    short = raw_bars[(raw_bars["symbol"] == "VTRS") & (raw_bars["date"] <= dt.date(2021, 2, 10))]
    v = score_universe(short, dt.date(2021, 2, 11), SCORING, ELIGIBILITY, BUCKETS).loc["VTRS"]
    assert v["reason"] == "fewer than 61 bars"
    cheap = raw_bars[(raw_bars["symbol"] == "MRO") & (raw_bars["date"] <= dt.date(2020, 10, 30))]
    v = score_universe(cheap, dt.date(2020, 11, 2), SCORING, ELIGIBILITY, BUCKETS).loc["MRO"]
    assert v["reason"] == "close under $5.00"
    thin = raw_bars[(raw_bars["symbol"] == "NWS") & (raw_bars["date"] <= dt.date(2020, 11, 11))]
    v = score_universe(thin, dt.date(2020, 11, 12), SCORING, ELIGIBILITY, BUCKETS).loc["NWS"]
    assert v["reason"] == "median dollar volume under $5,000,000"


def test_buckets_by_volatility(raw_bars):
    scan = _scan_of(raw_bars, ["WMT", "AMD", "FCX"], SESSION)   # no split in these windows
    assert scan["eligible"].all()
    assert scan.loc["WMT", "volatility"] <= 0.35 and scan.loc["WMT", "bucket"] == "CORE"
    assert 0.35 < scan.loc["AMD", "volatility"] <= 0.60 and scan.loc["AMD", "bucket"] == "SPEC"
    assert scan.loc["FCX", "volatility"] > 0.60 and scan.loc["FCX", "bucket"] == "ASYM"
    # The bounds are inclusive and come from the config.
    edge = BucketsConfig(core_max_volatility=float(scan.loc["AMD", "volatility"]),
                         spec_max_volatility=float(scan.loc["FCX", "volatility"]))
    scan2 = _scan_of(raw_bars, ["WMT", "AMD", "FCX"], SESSION, buckets=edge)
    assert scan2["bucket"].tolist() == ["CORE", "SPEC", "CORE"]      # AMD, FCX, WMT
    # A pick needs score >= min_score.
    assert (scan["pick"] == (scan["score"] >= 50)).all()
    top = float(scan["score"].max())
    assert top < 99.99
    strict = _scan_of(raw_bars, ["WMT", "AMD", "FCX"], SESSION, buckets=BucketsConfig(min_score=top + 0.01))
    assert not strict["pick"].any()


def test_unsorted_input_gives_the_same_scan(raw_bars):
    bars = raw_bars[raw_bars["symbol"].isin(["WMT", "AMD", "FCX"]) & (raw_bars["date"] <= SESSION)]
    shuffled = bars.sample(frac=1.0, random_state=7)
    pd.testing.assert_frame_equal(score_universe(shuffled, SESSION, SCORING, ELIGIBILITY, BUCKETS),
                                  score_universe(bars, SESSION, SCORING, ELIGIBILITY, BUCKETS))


def test_closes_panel_is_right_aligned(raw_bars):
    bars = pd.concat([cut(raw_bars, "VTRS", end=dt.date(2020, 11, 18)),    # 3 bars
                      cut(raw_bars, "MSFT", end=dt.date(2020, 11, 18), last=5)])
    symbols, panel = closes_panel(bars, 4)
    assert list(symbols) == ["MSFT", "VTRS"]
    assert panel[:, 0] == pytest.approx(cut(raw_bars, "MSFT", end=dt.date(2020, 11, 18), last=4)["close"])
    assert np.isnan(panel[0, 1])
    assert panel[1:, 1] == pytest.approx(cut(raw_bars, "VTRS", end=dt.date(2020, 11, 18))["close"])


# --------------------------------------------------------------------------- rescore


def test_rescore_gap_down_lowers_trend_and_score(raw_bars):
    # MO closed at $49.08 on 2021-04-19 and opened at $45.94 on 2021-04-20 (a real -6.4 % gap).
    history = cut(raw_bars, "MO", end=SESSION)
    opening = cut(raw_bars, "MO", dt.date(2021, 4, 20), dt.date(2021, 4, 20)).iloc[0]
    assert history["close"].iloc[-1] == pytest.approx(49.08) and opening["open"] == pytest.approx(45.94)
    session = dt.date(2021, 4, 20)
    flat = rescore(history, {"MO": 49.08}, session, SCORING).loc["MO"]
    gap = rescore(history, {"MO": float(opening["open"])}, session, SCORING).loc["MO"]
    assert gap["trend"] < flat["trend"]
    assert gap["score"] < flat["score"]
    assert gap["bars"] == len(history) + 1 and gap["last_date"] == session and gap["close"] == 45.94


def test_rescore_is_score_universe_on_history_plus_the_provisional_bar(raw_bars):
    session = dt.date(2021, 4, 20)
    symbols = ["MO", "WMT", "AMD"]
    history = raw_bars[raw_bars["symbol"].isin(symbols) & (raw_bars["date"] <= session)]  # holds 04-20 too
    prices = {"MO": 45.94, "WMT": 140.0, "AMD": 80.5, "NOPE": 10.0}
    got = rescore(history, prices, session, SCORING)
    before = history[history["date"] < session]
    extra = pd.DataFrame({"symbol": symbols, "date": [session] * 3,
                          "open": [prices[s] for s in symbols], "high": [prices[s] for s in symbols],
                          "low": [prices[s] for s in symbols], "close": [prices[s] for s in symbols],
                          "volume": [0] * 3})
    want = score_universe(pd.concat([before, extra]), session, SCORING, ELIGIBILITY, BUCKETS)
    assert list(got.index) == ["AMD", "MO", "NOPE", "WMT"]
    cols = [*METRIC_COLUMNS, "score"]
    pd.testing.assert_frame_equal(got.loc[symbols, cols], want.loc[symbols, cols], rtol=0, atol=1e-12)
    assert got.loc["NOPE", "bars"] == 0 and got.loc[["NOPE"], cols].isna().all(axis=None)


def test_rescore_missing_price_gives_nan(raw_bars):
    history = cut(raw_bars, "MO", end=SESSION)
    got = rescore(history, {"MO": float("nan")}, dt.date(2021, 4, 20), SCORING)
    assert np.isnan(got.loc["MO", "score"]) and got.loc["MO", "bars"] == 0


# --------------------------------------------------------------------------- the whole sample


def test_whole_sample_columns_and_ranges(universe):
    bars, scan = universe
    assert list(scan.columns) == list(SCAN_COLUMNS)
    assert scan.index.name == "symbol" and scan.index.is_monotonic_increasing
    assert len(scan) == bars["symbol"].nunique() == 506
    assert scan["bars"].dtype == np.int64 and scan["eligible"].dtype == bool and scan["pick"].dtype == bool
    assert (scan["bars"] == bars.groupby("symbol").size().sort_index()).all()
    assert scan["last_date"].map(type).eq(dt.date).all()
    for name, lo, hi in [("rsi", 0, 100), ("score", 0, 100), ("trend", 0, 1), ("gradual_loss", 0, 1),
                         ("max_drawdown", 0, 1)]:
        assert scan[name].between(lo, hi).all(), name
    assert (scan["volatility"] > 0).all() and (scan["volatility"] < 1.25).all()  # VIAC (Archegos) ~1.02
    # SHW (3:1 on 2021-04-01) and APH (2:1 on 2021-03-05) split inside the window: adjusted, no -67 % "fall".
    assert scan.loc["SHW", "max_drawdown"] < 0.3 and scan.loc["APH", "max_drawdown"] < 0.3
    assert scan["dollar_volume"].gt(0).all()
    assert set(scan["bucket"]) <= {"CORE", "SPEC", "ASYM", ""}
    assert (scan["eligible"] == (scan["reason"] == "")).all()
    assert (scan.loc[~scan["eligible"], "bucket"] == "").all()
    assert (scan["pick"] == (scan["eligible"] & (scan["score"] >= 50))).all()
    assert scan.loc["VAR", "reason"] == "no bar for session 2021-04-19"
    assert 100 < scan["pick"].sum() < 506
    assert {"CORE", "SPEC", "ASYM"} <= set(scan.loc[scan["pick"], "bucket"])


def reference_row(closes: np.ndarray, cfg: ScoringConfig) -> dict[str, float]:
    """A slow, straightforward computation of one symbol's metrics and score (DESIGN §4)."""
    L, p, n = cfg.lookback, cfg.rsi_period, cfg.sma_window
    s = pd.Series(closes)
    r = s.iloc[-(L + 1):].pct_change().dropna()
    sd = r.std(ddof=1)
    sharpe = 0.0 if sd == 0 else (r - cfg.risk_free_rate / 252).mean() / sd * math.sqrt(252)
    vol = sd * math.sqrt(252)
    window = list(closes[-cfg.rsi_window:])
    changes = [b - a for a, b in zip(window[:-1], window[1:])]
    avg_gain = sum(max(c, 0.0) for c in changes[:p]) / p
    avg_loss = sum(max(-c, 0.0) for c in changes[:p]) / p
    for c in changes[p:]:
        avg_gain = (avg_gain * (p - 1) + max(c, 0.0)) / p
        avg_loss = (avg_loss * (p - 1) + max(-c, 0.0)) / p
    rsi = 0.0 if avg_gain + avg_loss == 0 else 100 * avg_gain / (avg_gain + avg_loss)
    last = s.iloc[-(L + 1):]
    mdd = float((1 - last / last.cummax()).max())
    sma = s.rolling(n).mean()
    recent, recent_sma = s.iloc[-L:], sma.iloc[-L:]
    has = recent_sma.notna()
    share = float((recent[has] < recent_sma[has]).mean())
    gl = share if s.iloc[-1] / s.iloc[-(L + 1)] - 1 < 0 else 0.0
    tr = min(max((s.iloc[-1] / s.iloc[-n:].mean() - 1) / cfg.trend_band + 0.5, 0.0), 1.0)
    if rsi <= 30:
        fit = 0.0
    elif rsi < 65:
        fit = (rsi - 30) / 35
    elif rsi <= 75:
        fit = 1.0
    elif rsi < 95:
        fit = (95 - rsi) / 20
    else:
        fit = 0.0
    score = (50 * (1 - math.exp(-max(sharpe + 1, 0) / 2.5)) + 30 * fit + 20 * tr - 20 * gl
             - 50 * max(0.0, mdd - 0.10))
    return {"sharpe": sharpe, "volatility": vol, "rsi": rsi, "max_drawdown": mdd,
            "gradual_loss": gl, "trend": tr, "score": min(max(score, 0.0), 100.0)}


@pytest.mark.parametrize("symbol", ["AAPL", "TSLA", "VTRS", "VAR", "WMT", "NWS"])
def test_vectorised_equals_a_per_symbol_reference(universe, symbol):
    # AAPL and TSLA cross their 2020-08-31 splits (adjusted); VTRS has only 105 bars
    # (RSI over all of them, gradual_loss on sessions with a full SMA); VAR ends 04-16.
    bars, scan = universe
    f = bars[bars["symbol"] == symbol]
    want = reference_row(f["close"].to_numpy(), SCORING)
    got = scan.loc[symbol]
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-9, rel=0), name
    dv = (f["close"] * f["volume"]).tail(20).median()
    assert got["dollar_volume"] == pytest.approx(dv, rel=1e-12)
    assert got["bars"] == len(f) and got["close"] == f["close"].iloc[-1]


@pytest.mark.parametrize("representation", ["arrow", "datetime64", "timestamp-session"])
def test_date_representations_give_the_same_scan(raw_bars, representation):
    symbols = ["WMT", "VAR", "VTRS"]
    base = raw_bars[raw_bars["symbol"].isin(symbols) & (raw_bars["date"] <= SESSION)].reset_index(drop=True)
    want = score_universe(base, SESSION, SCORING, ELIGIBILITY, BUCKETS)
    session = SESSION
    if representation == "arrow":        # the parquet file read with arrow dtypes (date32)
        bars = pd.read_parquet(SAMPLE / "bars.parquet", dtype_backend="pyarrow")
        bars = bars[bars["symbol"].isin(symbols)]
        bars = bars[bars["date"] <= SESSION].reset_index(drop=True)
        assert str(bars["date"].dtype).startswith("date32")
    elif representation == "datetime64":
        bars = base.assign(date=pd.to_datetime(base["date"]))
    else:
        bars, session = base, pd.Timestamp(SESSION)
    got = score_universe(bars, session, SCORING, ELIGIBILITY, BUCKETS)
    pd.testing.assert_frame_equal(got, want, check_index_type=False)


# --------------------------------------------------------------------------- fast paths, same bits


def test_last_row_rsi_is_the_full_rsi_to_the_bit(raw_bars):
    """The scan's last-row RSI (one (2, S) state) gives exactly the bits of ``wilder_rsi(...)[-1]``,
    on real closes with late listings (seeds on many rows) and every padding depth."""
    from trading_system.prepare.indicators import wilder_rsi_last

    recent = raw_bars[pd.to_datetime(raw_bars["date"]) >= pd.Timestamp(2020, 6, 1)]
    for depth in (250, 120, 15, 14):
        _symbols, panel = closes_panel(recent, depth)
        want = wilder_rsi(panel, 14)[-1]
        got = wilder_rsi_last(panel, 14)
        assert np.array_equal(got.view(np.uint64), want.view(np.uint64))
        assert np.isnan(got).all() == (depth < 15)


def test_grouped_symbols_factorize_like_pandas(raw_bars):
    """Rows grouped by symbol in order are factorized from their runs; anything else falls back."""
    from trading_system.prepare.panels import factorize_grouped as _factorize_grouped

    column = raw_bars.sort_values(["symbol", "date"])["symbol"].astype("str")
    codes, symbols = _factorize_grouped(column)
    want_codes, want_symbols = pd.factorize(column, sort=True)
    assert np.array_equal(codes, want_codes) and list(symbols) == list(want_symbols)
    assert _factorize_grouped(column.iloc[::-1]) is None           # runs not increasing
    assert _factorize_grouped(column.astype(object)) is None       # not Arrow-backed
