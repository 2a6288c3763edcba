"""Scanners (DESIGN §10): the built-in rules, the floors, composition, the bar panel, the
``scanners:`` config and the loader, on real nights of data/sample.

Every night below was found by searching the sample (split-adjusted) for sessions where a rule
fires for a few well-known names and does not for others; the expected symbols are written out,
and the figures in the metadata are recomputed here with plain pandas, not by the scanner's code.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from conftest import SAMPLE
from trading_system.config import load_config
from trading_system.errors import ConfigError
from trading_system.prepare.scanners import ScanContext, Scanner
from trading_system.prepare.scanners.base import BarPanel
from trading_system.prepare.scanners.builtin import Breakout, Gap, Momentum, TopDollarVolume, Volume
from trading_system.prepare.scanners.loader import ScannerLoadError, bind, builtin_entry, find_entry
from trading_system.prepare.scanners.settings import GapParams, ScannerEntry, VolumeParams

ET = ZoneInfo("America/New_York")
FAKES = Path(__file__).resolve().parent / "fakes"
SPLITS = pd.read_csv(SAMPLE / "splits.csv").assign(date=lambda f: pd.to_datetime(f["date"]).dt.date)

# The sets of names and their nights (found by searching the sample).
GAP_SET = ["AAPL", "ANSS", "BKNG", "CERN", "CNP", "KO", "MNST", "NRG"]          # 2019-02-27 / 28
VOLUME_SET = ["AMGN", "GPC", "HON", "ISRG", "KO", "MRK", "SNA", "URI"]         # 2019-04-16 .. 18
BREAKOUT_SET = ["AAPL", "AMD", "AMZN", "C", "KO", "TSLA"]                      # 2019-12-24 / 26
MOMENTUM_SET = ["A", "AAPL", "BK", "CFG", "KSU", "QCOM"]                        # 2020-01-16 / 17


# --- helpers -------------------------------------------------------------------------------


def cut(sample_bars: pd.DataFrame, symbols: list[str], last: dt.date, sessions: int) -> pd.DataFrame:
    """The raw bars of ``symbols`` over the ``sessions`` sessions ending ``last`` (as traded)."""
    rows = sample_bars[sample_bars["symbol"].isin(symbols) & (sample_bars["date"] <= last)]
    first = sorted(rows["date"].unique())[-sessions]
    return rows[rows["date"] >= first].reset_index(drop=True)


def as_of(raw: pd.DataFrame, session: dt.date) -> pd.DataFrame:
    """``raw`` clamped to ``session`` and split-adjusted with the splits known that night (prices
    before an ex-date divided by its ratio, volumes multiplied), sorted by symbol and date."""
    out = raw[raw["date"] <= session].copy()
    out["volume"] = out["volume"].astype(float)
    known = SPLITS[(SPLITS["date"] <= session) & SPLITS["symbol"].isin(out["symbol"].unique())]
    for sp in known.itertuples():
        before = (out["symbol"] == sp.symbol) & (out["date"] < sp.date)
        out.loc[before, ["open", "high", "low", "close"]] /= sp.ratio
        out.loc[before, "volume"] *= sp.ratio
    return out.sort_values(["symbol", "date"]).reset_index(drop=True)


def context(raw: pd.DataFrame, session: dt.date, phase: str = "evening", **kw) -> ScanContext:
    hour = dt.time(9) if phase == "morning" else dt.time(20)
    now = dt.datetime.combine(session + dt.timedelta(days=1 if phase == "morning" else 0), hour, ET)
    return ScanContext(session=session, phase=phase, now=now, bars=as_of(raw, session), **kw)


def by_hand(raw: pd.DataFrame, session: dt.date, window: int = 20) -> pd.DataFrame:
    """Per symbol on ``session``, with pandas: the bar, prev_close, gap, change, the mean volume of the
    ``window`` sessions before it, the highest high of those sessions, the close's SMA over ``window``."""
    bars = as_of(raw, session)
    g = bars.groupby("symbol")
    bars["prev_close"] = g["close"].shift(1)
    bars["mean_volume"] = g["volume"].transform(lambda v: v.shift(1).rolling(window).mean())
    bars["prior_high"] = g["high"].transform(lambda v: v.shift(1).rolling(window).max())
    bars["sma"] = g["close"].transform(lambda v: v.rolling(window).mean())
    day = bars[bars["date"] == session].set_index("symbol")
    day["gap"] = day["open"] / day["prev_close"] - 1
    day["change"] = day["close"] / day["prev_close"] - 1
    day["volume_ratio"] = day["volume"] / day["mean_volume"]
    return day


def wilder_rsi(closes: list[float], period: int = 14) -> float:
    """Wilder's RSI after the last close, by the book: seed with the simple means of the first
    ``period`` gains and losses, then avg = (avg * (period - 1) + current) / period."""
    moves = [b - a for a, b in zip(closes, closes[1:])]
    gain = sum(max(m, 0.0) for m in moves[:period]) / period
    loss = sum(max(-m, 0.0) for m in moves[:period]) / period
    for m in moves[period:]:
        gain = (gain * (period - 1) + max(m, 0.0)) / period
        loss = (loss * (period - 1) + max(-m, 0.0)) / period
    return 100.0 * gain / (gain + loss)


def run(entry: ScannerEntry, ctx: ScanContext, entries: list[ScannerEntry] | None = None):
    """The entry bound (with its floors) and run in-process on ``ctx``: (result, notes)."""
    return bind(entry, entries or [entry]).run(ctx)


@pytest.fixture(scope="module")
def gap_bars(sample_bars) -> pd.DataFrame:
    return cut(sample_bars, GAP_SET, dt.date(2019, 2, 28), 30)


@pytest.fixture(scope="module")
def volume_bars(sample_bars) -> pd.DataFrame:
    return cut(sample_bars, VOLUME_SET, dt.date(2019, 4, 18), 40)


@pytest.fixture(scope="module")
def breakout_bars(sample_bars) -> pd.DataFrame:
    return cut(sample_bars, BREAKOUT_SET, dt.date(2019, 12, 26), 30)


@pytest.fixture(scope="module")
def momentum_bars(sample_bars) -> pd.DataFrame:
    return cut(sample_bars, MOMENTUM_SET, dt.date(2020, 1, 17), 260)


# --- gap -----------------------------------------------------------------------------------


def test_gap_finds_the_nights_gappers_largest_first_with_their_figures(gap_bars):
    session = dt.date(2019, 2, 28)
    result = Gap().scan(context(gap_bars, session))
    # the rule alone (no floors yet): |open / previous close - 1| >= 2 %, by size
    assert result.symbols == ["BKNG", "MNST", "ANSS", "CERN", "NRG", "CNP"]
    day = by_hand(gap_bars, session)
    for s in result.symbols:
        meta = result.metadata[s]
        assert meta["gap"] == pytest.approx(day.loc[s, "gap"], abs=1e-6)
        assert meta["price"] == pytest.approx(day.loc[s, "open"])
        assert meta["prev_close"] == pytest.approx(day.loc[s, "prev_close"])
        assert meta["volume"] == day.loc[s, "volume"]
    assert result.metadata["MNST"]["gap"] == pytest.approx(63.22 / 58.74 - 1, abs=1e-6)
    assert result.metadata["BKNG"]["gap"] == pytest.approx(1754.00 / 1906.00 - 1, abs=1e-6)
    # AAPL (-0.3 %) and KO (+0.4 %) opened near their close
    assert abs(day.loc["AAPL", "gap"]) < 0.02 and abs(day.loc["KO", "gap"]) < 0.02


def test_gap_finds_nothing_on_a_quiet_night(gap_bars):
    assert Gap().scan(context(gap_bars, dt.date(2019, 2, 27))).symbols == []


def test_gap_direction_up_or_down(gap_bars):
    ctx = context(gap_bars, dt.date(2019, 2, 28))
    assert Gap({"direction": "up"}).scan(ctx).symbols == ["MNST", "ANSS", "NRG"]
    assert Gap({"direction": "down"}).scan(ctx).symbols == ["BKNG", "CERN", "CNP"]
    assert Gap({"min_gap": 0.05}).scan(ctx).symbols == ["BKNG", "MNST", "ANSS"]


def test_gap_defaults_floor_volume_at_1m_and_price_at_500(gap_bars):
    ctx = context(gap_bars, dt.date(2019, 2, 28))
    # ANSS traded 976,809 shares (< 1M) and BKNG closed at $1,697.04 (> $500): both gapped, both dropped
    assert run(ScannerEntry(name="gappers", module="builtin:gap"), ctx)[0].symbols == ["MNST", "CERN", "NRG", "CNP"]
    assert run(ScannerEntry(name="gappers", module="builtin:gap", min_volume=900_000), ctx)[0].symbols == [
        "MNST", "ANSS", "CERN", "NRG", "CNP"]
    assert run(ScannerEntry(name="gappers", module="builtin:gap", max_price=2000), ctx)[0].symbols == [
        "BKNG", "MNST", "CERN", "NRG", "CNP"]
    # min_price: CNP closed at $30.14, NRG at $41.68, CERN at $55.95, MNST at $63.83
    floored = run(ScannerEntry(name="gappers", module="builtin:gap", min_price=50), ctx)[0]
    assert floored.symbols == ["MNST", "CERN"]
    day = by_hand(gap_bars, ctx.session)
    assert day.loc["CNP", "close"] < 50 < day.loc["CERN", "close"]


def test_entry_floors_price_band_and_volume_on_the_session_bar(breakout_bars):
    ctx = context(breakout_bars, dt.date(2019, 12, 26))
    every = run(ScannerEntry(name="top", module="builtin:top_dollar_volume", params={"top_n": 6}), ctx)[0]
    assert every.symbols == ["AMZN", "AAPL", "TSLA", "AMD", "C", "KO"]
    # $100 <= close <= $1,000 drops AMZN ($1,868.77), C, AMD and KO; 10M shares keeps AAPL and TSLA
    floored = run(ScannerEntry(name="top", module="builtin:top_dollar_volume", params={"top_n": 6},
                               min_price=100, max_price=1000, min_volume=10_000_000), ctx)[0]
    assert floored.symbols == ["AAPL", "TSLA"]
    assert set(floored.metadata) == {"AAPL", "TSLA"}
    # 23.3M AAPL shares traded, 10.6M TSLA: 11M shares drops TSLA
    assert run(ScannerEntry(name="top", module="builtin:top_dollar_volume", params={"top_n": 6},
                            min_price=100, max_price=1000, min_volume=11_000_000), ctx)[0].symbols == ["AAPL"]


def test_gap_in_the_morning_compares_premarket_with_the_last_close(gap_bars, sample_bars):
    session = dt.date(2019, 2, 27)                  # the last closed session at 09:00 on 02-28
    opens = sample_bars[(sample_bars["date"] == dt.date(2019, 2, 28))].set_index("symbol")["open"]
    premarket = {s: float(opens[s]) for s in ["AAPL", "ANSS", "BKNG", "CERN", "KO", "MNST", "NRG"]}
    premarket["ZZZZ"] = 10.0                        # no bar: ignored; CNP has no pre-market price: not a find
    ctx = context(gap_bars, session, phase="morning", premarket=premarket)
    result = Gap().scan(ctx)
    assert result.symbols == ["BKNG", "MNST", "ANSS", "CERN", "NRG"]
    closes = as_of(gap_bars, session).query("date == @session").set_index("symbol")["close"]
    for s in result.symbols:
        assert result.metadata[s]["price"] == premarket[s]
        assert result.metadata[s]["prev_close"] == closes[s]
        assert result.metadata[s]["gap"] == pytest.approx(premarket[s] / closes[s] - 1, abs=1e-6)
    # the floors read the last closed session's bar: ANSS traded 553,414 shares on 02-27
    assert run(ScannerEntry(name="pm", module="builtin:gap", phase="morning"), ctx)[0].symbols == [
        "MNST", "CERN", "NRG"]
    # the same night in the evening reads the session's own open: nothing gapped on 02-27
    assert Gap().scan(context(gap_bars, session)).symbols == []


def test_gap_reads_split_adjusted_bars_on_a_split_night(sample_bars):
    session = dt.date(2020, 8, 31)                  # AAPL 4:1 and TSLA 5:1 ex-date
    raw = cut(sample_bars, ["AAPL", "TSLA", "KO"], session, 30)
    result = Gap().scan(context(raw, session))
    assert result.symbols == ["AAPL"]
    raw_prev = raw[raw["date"] == dt.date(2020, 8, 28)].set_index("symbol")["close"]
    raw_open = raw[raw["date"] == session].set_index("symbol")["open"]
    assert result.metadata["AAPL"]["gap"] == pytest.approx(raw_open["AAPL"] / (raw_prev["AAPL"] / 4) - 1, abs=1e-6)
    assert abs(raw_open["TSLA"] / (raw_prev["TSLA"] / 5) - 1) < 0.02
    # unadjusted, both would read as a -74 % / -80 % gap
    assert raw_open["AAPL"] / raw_prev["AAPL"] - 1 < -0.7


# --- momentum ------------------------------------------------------------------------------


def test_momentum_finds_rsi_over_70_on_doubled_volume_above_sma(momentum_bars):
    session = dt.date(2020, 1, 17)
    result = Momentum().scan(context(momentum_bars, session))
    assert result.symbols == ["A", "KSU", "QCOM"]
    day = by_hand(momentum_bars, session)
    bars = as_of(momentum_bars, session)
    for s in result.symbols:
        closes = bars.loc[bars["symbol"] == s, "close"].tolist()[-250:]
        meta = result.metadata[s]
        assert meta["rsi"] == pytest.approx(wilder_rsi(closes), abs=1e-5)
        assert meta["volume_ratio"] == pytest.approx(day.loc[s, "volume_ratio"], abs=1e-6)
        assert meta["sma"] == pytest.approx(day.loc[s, "sma"], abs=1e-6)
        assert meta["close"] == day.loc[s, "close"]
    assert [round(result.metadata[s]["rsi"], 2) for s in result.symbols] == [79.06, 76.16, 73.33]
    # AAPL: RSI 78.8 on ordinary volume; CFG and BK: volume over 2x with RSI 60 and 27
    aapl = bars.loc[bars["symbol"] == "AAPL", "close"].tolist()[-250:]
    assert wilder_rsi(aapl) >= 70 and day.loc["AAPL", "volume_ratio"] < 2
    assert day.loc["BK", "volume_ratio"] >= 2 and day.loc["CFG", "volume_ratio"] >= 2
    # min_rsi raised past QCOM's 73.3
    assert Momentum({"min_rsi": 75}).scan(context(momentum_bars, session)).symbols == ["A", "KSU"]


def test_momentum_finds_nothing_the_night_before(momentum_bars):
    assert Momentum().scan(context(momentum_bars, dt.date(2020, 1, 16))).symbols == []


# --- volume --------------------------------------------------------------------------------


def test_volume_finds_3x_volume_with_a_1pct_move_by_ratio(volume_bars):
    session = dt.date(2019, 4, 18)
    result = Volume().scan(context(volume_bars, session))
    assert result.symbols == ["SNA", "AMGN", "GPC", "URI"]
    day = by_hand(volume_bars, session)
    for s in result.symbols:
        assert result.metadata[s]["volume_ratio"] == pytest.approx(day.loc[s, "volume_ratio"], abs=1e-6)
        assert result.metadata[s]["change"] == pytest.approx(day.loc[s, "change"], abs=1e-6)
        assert result.metadata[s]["volume"] == day.loc[s, "volume"]
    assert result.metadata["URI"]["change"] == pytest.approx(136.00 / 125.76 - 1, abs=1e-6)
    # ISRG (4.3x) and MRK (3.0x) traded heavily but moved 0.6 % and -0.99 %
    assert day.loc["ISRG", "volume_ratio"] >= 3 and abs(day.loc["ISRG", "change"]) < 0.01
    assert day.loc["MRK", "volume_ratio"] >= 3 and abs(day.loc["MRK", "change"]) < 0.01


def test_volume_on_other_nights(volume_bars):
    assert Volume().scan(context(volume_bars, dt.date(2019, 4, 17))).symbols == ["MRK", "ISRG"]
    assert Volume().scan(context(volume_bars, dt.date(2019, 4, 16))).symbols == []


def test_volume_leaves_out_the_watchlist_unless_told(volume_bars):
    session = dt.date(2019, 4, 18)
    ctx = context(volume_bars, session, watchlist=frozenset({"SNA", "KO"}))
    assert Volume().scan(ctx).symbols == ["AMGN", "GPC", "URI"]
    assert Volume({"exclude_watchlist": False}).scan(ctx).symbols == ["SNA", "AMGN", "GPC", "URI"]


# --- breakout ------------------------------------------------------------------------------


def test_breakout_finds_closes_over_the_prior_20_session_high(breakout_bars):
    session = dt.date(2019, 12, 26)
    result = Breakout().scan(context(breakout_bars, session))
    assert result.symbols == ["AMZN", "TSLA", "C"]
    day = by_hand(breakout_bars, session)
    for s in result.symbols:
        meta = result.metadata[s]
        assert meta["prior_high"] == pytest.approx(day.loc[s, "prior_high"])
        assert meta["breakout"] == pytest.approx(day.loc[s, "close"] / day.loc[s, "prior_high"] - 1, abs=1e-6)
        assert meta["volume_ratio"] == pytest.approx(day.loc[s, "volume_ratio"], abs=1e-6)
    assert result.metadata["AMZN"]["prior_high"] == 1824.69
    # AMD closed over its high but under its open; AAPL over its high on less than its mean volume
    assert day.loc["AMD", "close"] > day.loc["AMD", "prior_high"] and day.loc["AMD", "close"] < day.loc["AMD", "open"]
    assert day.loc["AAPL", "close"] > day.loc["AAPL", "prior_high"] and day.loc["AAPL", "volume_ratio"] < 1


def test_breakout_finds_nothing_on_christmas_eve(breakout_bars):
    session = dt.date(2019, 12, 24)
    assert Breakout().scan(context(breakout_bars, session)).symbols == []
    # AMD closed over its 20-session high and over its open, on 0.97x its mean volume
    amd = by_hand(breakout_bars, session).loc["AMD"]
    assert amd["close"] > amd["prior_high"] and amd["close"] > amd["open"] and amd["volume_ratio"] < 1


# --- top dollar volume ---------------------------------------------------------------------


def test_top_dollar_volume_keeps_the_n_most_traded(breakout_bars):
    session = dt.date(2019, 12, 26)
    result = TopDollarVolume({"top_n": 3}).scan(context(breakout_bars, session))
    assert result.symbols == ["AMZN", "AAPL", "TSLA"]
    day = by_hand(breakout_bars, session)
    for s in result.symbols:
        assert result.metadata[s]["dollar_volume"] == pytest.approx(day.loc[s, "close"] * day.loc[s, "volume"], abs=0.01)
    # as traded that night (before the 2020 splits): AAPL 23,334,004 shares at $289.91
    assert result.metadata["AAPL"]["dollar_volume"] == pytest.approx(289.91 * 23_334_004, abs=0.01)
    assert TopDollarVolume({"top_n": 1}).scan(context(breakout_bars, session)).symbols == ["AMZN"]


# --- composition ---------------------------------------------------------------------------


GAPPERS = ScannerEntry(name="gappers", module="builtin:gap")


def test_all_of_keeps_the_common_finds_in_the_first_parts_order(volume_bars):
    ctx = context(volume_bars, dt.date(2019, 4, 18))
    # gappers alone: URI 7.6 %, SNA 6.4 %, HON 2.8 %; volume alone: SNA, AMGN, GPC, URI
    assert run(GAPPERS, ctx)[0].symbols == ["URI", "SNA", "HON"]
    both = ScannerEntry(name="both", all_of=["gappers", "builtin:volume"])
    result = run(both, ctx, [GAPPERS, both])[0]
    assert result.symbols == ["URI", "SNA"]
    assert set(result.metadata["SNA"]) == {"gappers.gap", "gappers.price", "gappers.prev_close", "gappers.volume",
                                           "volume.volume_ratio", "volume.change", "volume.volume"}
    day = by_hand(volume_bars, ctx.session)
    assert result.metadata["URI"]["gappers.gap"] == pytest.approx(day.loc["URI", "gap"], abs=1e-6)
    assert result.metadata["URI"]["volume.volume_ratio"] == pytest.approx(day.loc["URI", "volume_ratio"], abs=1e-6)


def test_any_of_keeps_every_find_in_the_order_the_parts_found_them(volume_bars):
    ctx = context(volume_bars, dt.date(2019, 4, 18))
    either = ScannerEntry(name="either", any_of=["gappers", "builtin:volume"])
    result = run(either, ctx, [GAPPERS, either])[0]
    assert result.symbols == ["URI", "SNA", "HON", "AMGN", "GPC"]
    assert set(result.metadata["HON"]) == {"gappers.gap", "gappers.price", "gappers.prev_close", "gappers.volume"}
    assert set(result.metadata["AMGN"]) == {"volume.volume_ratio", "volume.change", "volume.volume"}


def test_each_part_applies_its_own_floors(volume_bars):
    ctx = context(volume_bars, dt.date(2019, 4, 18))
    dear = ScannerEntry(name="dear_gappers", module="builtin:gap", min_price=150)   # URI closed at $136
    both = ScannerEntry(name="both", all_of=["dear_gappers", "builtin:volume"])
    either = ScannerEntry(name="either", any_of=["dear_gappers", "builtin:volume"])
    entries = [dear, both, either]
    assert run(both, ctx, entries)[0].symbols == ["SNA"]
    # URI comes back through the volume part, which has no price floor
    assert run(either, ctx, entries)[0].symbols == ["SNA", "HON", "AMGN", "GPC", "URI"]


# --- the bar panel -------------------------------------------------------------------------


def test_the_panel_refuses_a_bar_after_the_session(gap_bars):
    session = dt.date(2019, 2, 27)
    leaked = as_of(gap_bars, dt.date(2019, 2, 28))   # holds 02-28, one session too many
    ctx = ScanContext(session=session, phase="evening", now=dt.datetime(2019, 2, 27, 20, tzinfo=ET), bars=leaked)
    with pytest.raises(ValueError, match="after session 2019-02-27"):
        ctx.last()
    with pytest.raises(ValueError, match="after session 2019-02-27"):
        Gap().scan(ctx)
    with pytest.raises(ValueError, match="no volume column"):
        BarPanel(as_of(gap_bars, session).drop(columns="volume"), session)


def test_the_panel_does_not_depend_on_row_order_or_date_type(volume_bars):
    session = dt.date(2019, 4, 18)
    bars = as_of(volume_bars, session)
    now = dt.datetime(2019, 4, 18, 20, tzinfo=ET)
    shuffled = bars.sample(frac=1.0, random_state=7).reset_index(drop=True)
    stamped = bars.assign(date=pd.to_datetime(bars["date"]))
    for frame in (shuffled, stamped):
        ctx = ScanContext(session=session, phase="evening", now=now, bars=frame)
        assert Volume().scan(ctx).symbols == ["SNA", "AMGN", "GPC", "URI"]
        assert ctx.last()["prev_close"].to_dict() == by_hand(volume_bars, session)["prev_close"].to_dict()


def test_the_panel_holds_only_names_with_a_bar_on_the_session(sample_bars):
    # VAR's last bar is 2021-04-16; VTRS's first is 2020-11-16
    raw = cut(sample_bars, ["SPY", "VAR", "VTRS"], dt.date(2021, 4, 19), 5)
    ctx = context(raw, dt.date(2021, 4, 19))
    assert list(ctx.symbols) == ["SPY", "VTRS"]
    early = context(cut(sample_bars, ["SPY", "VTRS"], dt.date(2020, 11, 18), 10), dt.date(2020, 11, 18))
    closes = early.history("close", 5)
    assert closes.shape == (5, 2)
    assert [math.isnan(v) for v in closes[:, 1]] == [True, True, False, False, False]
    vtrs = sample_bars[(sample_bars["symbol"] == "VTRS") & (sample_bars["date"] <= dt.date(2020, 11, 18))]
    assert closes[2:, 1].tolist() == vtrs["close"].tolist()
    assert early.last().loc["VTRS", "prev_close"] == vtrs["close"].iloc[-2]


# --- config ---------------------------------------------------------------------------------


def _load(tmp_path: Path, scanners_yaml: str):
    path = tmp_path / "config.yaml"
    path.write_text("scanners:\n" + scanners_yaml)
    return load_config(path)


@pytest.mark.parametrize(("yaml", "says"), [
    ("  - {name: gappers, module: 'builtin:gap', colour: red}\n", "unknown key 'scanners[gappers].colour'"),
    ("  - {name: gappers, module: 'builtin:gapz'}\n", "scanner 'gappers': there is no built-in scanner 'gapz'"),
    ("  - {name: gappers, module: 'builtin:gap', params: {min_gapp: 0.03}}\n", "scanner 'gappers': params.min_gapp"),
    ("  - {name: gappers, module: 'builtin:gap', params: {min_gap: 3}}\n", "scanner 'gappers': params.min_gap"),
    ("  - {name: gappers, module: 'builtin:gap', action: veto}\n", "scanner 'gappers': action veto needs phase morning"),
    ("  - {name: gappers, module: 'builtin:gap', phase: morning, action: add}\n",
     "scanner 'gappers': action add needs phase evening"),
    ("  - {name: gappers, module: 'builtin:gap'}\n  - {name: gappers, module: 'builtin:volume'}\n",
     "scanner names must be unique (gappers given twice)"),
    ("  - {name: gappers, module: 'builtin:gap'}\n  - {name: combo, all_of: [gappers, movers]}\n",
     "scanner 'combo' names 'movers', which is not in the scanners list"),
    ("  - {name: combo, any_of: ['builtin:nope', 'builtin:gap']}\n", "scanner 'combo': there is no built-in scanner"),
    ("  - {name: a, any_of: [b, 'builtin:gap']}\n  - {name: b, all_of: [a, 'builtin:volume']}\n",
     "scanner 'a' contains itself (a -> b -> a)"),
    ("  - {name: gappers, module: 'builtin:gap', all_of: [x, y]}\n", "scanner 'gappers' needs exactly one of"),
    ("  - {name: gappers}\n", "scanner 'gappers' needs exactly one of module, all_of or any_of (none given)"),
    ("  - {name: gappers, module: 'my scanners.py'}\n", "is neither builtin:NAME nor package.module:Class"),
    ("  - {name: combo, all_of: [gappers]}\n  - {name: gappers, module: 'builtin:gap'}\n", "scanners[combo].all_of"),
])
def test_config_refuses_a_bad_scanner_entry_in_one_sentence(tmp_path, yaml, says):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, yaml)
    message = str(err.value)
    assert says in message
    assert "\n" not in message and message.endswith(".")


def test_config_takes_good_entries_without_importing_user_modules(tmp_path):
    cfg = _load(tmp_path, "  - {name: gappers, module: 'builtin:gap', max_symbols: 25, params: {min_gap: 0.03}}\n"
                          "  - {name: mine, module: 'no_such_package.scanners:Mine', phase: morning}\n"
                          "  - {name: combo, any_of: [gappers, 'builtin:volume']}\n")
    gappers, mine, combo = cfg.scanners
    assert (gappers.name, gappers.max_symbols, gappers.params, gappers.what) == ("gappers", 25, {"min_gap": 0.03}, "add")
    assert (mine.phase, mine.what) == ("morning", "veto")
    assert combo.parts == ["gappers", "builtin:volume"] and combo.module is None
    # the built-in's own params model takes them when it is bound
    assert bind(gappers, cfg.scanners).scanner.params == GapParams(min_gap=0.03)


# --- loader ---------------------------------------------------------------------------------


def test_loader_runs_a_users_scanner_from_pythonpath(volume_bars, monkeypatch):
    monkeypatch.syspath_prepend(str(FAKES))
    ctx = context(volume_bars, dt.date(2019, 4, 18))
    entry = ScannerEntry(name="ranges", module="user_scanners:BigRange", params={"min_range": 0.03})
    bound = bind(entry, [entry])
    assert isinstance(bound.scanner, Scanner) and bound.scanner.params == {"min_range": 0.03}
    result, notes = bound.run(ctx)
    # (high - low) / previous close: GPC 6.2 %, SNA 4.3 %, AMGN 3.6 %, URI 3.5 %
    assert result.symbols == ["GPC", "SNA", "AMGN", "URI"] and notes == []
    day = by_hand(volume_bars, ctx.session)
    assert result.metadata["GPC"]["range"] == pytest.approx(
        (day.loc["GPC", "high"] - day.loc["GPC", "low"]) / day.loc["GPC", "prev_close"], abs=1e-6)
    # a user's scanner has no floors of its own; the entry's apply
    floored = bind(ScannerEntry(name="ranges", module="user_scanners:BigRange", params={"min_range": 0.03},
                                min_volume=3_000_000), [])
    # GPC traded 2.15M shares and SNA 2.51M
    assert floored.run(ctx)[0].symbols == ["AMGN", "URI"]


@pytest.mark.parametrize(("module", "says"), [
    ("no_such_scanners_module:Thing", "module 'no_such_scanners_module' cannot be imported"),
    ("user_scanners:Missing", "module 'user_scanners' has no 'Missing'"),
    ("user_scanners:NotAScanner", "user_scanners:NotAScanner is not a Scanner subclass"),
    ("user_scanners:not_a_class", "user_scanners:not_a_class is not a Scanner subclass"),
])
def test_loader_refuses_what_is_not_a_scanner(module, says, monkeypatch):
    monkeypatch.syspath_prepend(str(FAKES))
    entry = ScannerEntry(name="mine", module=module)
    with pytest.raises(ScannerLoadError) as err:
        bind(entry, [entry])
    assert says in str(err.value) and str(err.value).startswith("scanner mine: ")
    assert isinstance(err.value, ConfigError)


def test_loader_finds_a_builtin_by_name_and_refuses_an_unknown_one():
    assert find_entry([GAPPERS], "gappers") is GAPPERS
    entry = find_entry([GAPPERS], "volume")
    assert (entry.name, entry.module) == ("volume", "builtin:volume")
    assert bind(entry, []).scanner.params == VolumeParams()
    with pytest.raises(ConfigError, match="no scanner named 'gapperz'"):
        builtin_entry("gapperz")
