"""Price levels (DESIGN §11) on real bars: Wilder's ATR worked out by hand, each pick's levels, what the
sessions after the scan touched first, and ``prep replay`` of a plan that recorded its levels.

Real facts used (data/sample/bars.parquet, checked below where a test relies on them): PLD, EXR, ANET,
BMY and AES are picks of the default scan of the close of 2020-11-06; the next session, 2020-11-09 (the
vaccine news), swung so far that EXR's bar fell under its invalidation and rose over its 2R target;
AAPL split 4-for-1 with ex-date 2020-08-31.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SAMPLE, cycled_night
from trading_system.config_context import LevelsConfig
from trading_system.marketdata.sample import SampleSource
from trading_system.prepare.context.levels import first_touch, pick_levels, true_range, wilder_atr, window_length
from trading_system.review.touches import scan_basis_bars

D = dt.date
SCAN = D(2020, 11, 6)

# (date, high, low, close), cut from data/sample/bars.parquet (no split in these windows).
PLD = [
    ("2020-10-14", 106.47, 103.87, 104.03), ("2020-10-15", 105.9, 103.08, 104.98),
    ("2020-10-16", 105.49, 104.2, 104.26), ("2020-10-19", 105.24, 102.9, 103.02),
    ("2020-10-20", 105.08, 102.9101, 103.53), ("2020-10-21", 104.54, 102.27, 102.65),
    ("2020-10-22", 103.83, 102.615, 102.8), ("2020-10-23", 104.12, 102.88, 103.24),
    ("2020-10-26", 102.13, 99.9, 100.47), ("2020-10-27", 101.35, 99.12, 99.14),
    ("2020-10-28", 99.14, 96.87, 97.51), ("2020-10-29", 101.1, 96.57, 100.18),
    ("2020-10-30", 100.39, 97.99, 99.2), ("2020-11-02", 102.28, 100.36, 101.87),
    ("2020-11-03", 105.16, 102.27, 104.39), ("2020-11-04", 107.63, 104.29, 105.81),
    ("2020-11-05", 106.88, 105.29, 105.88), ("2020-11-06", 106.4, 104.5, 104.89),
]
EXR = [
    ("2020-10-16", 115.5, 114.13, 114.63), ("2020-10-19", 115.07, 113.45, 113.73),
    ("2020-10-20", 115.47, 113.93, 114.37), ("2020-10-21", 116.34, 114.24, 115.35),
    ("2020-10-22", 117.65, 115.08, 117.46), ("2020-10-23", 118.7, 117.06, 118.66),
    ("2020-10-26", 118.72, 116.13, 118.61), ("2020-10-27", 120.29, 116.99, 117.09),
    ("2020-10-28", 117.52, 114.385, 115.7), ("2020-10-29", 117.02, 115.04, 116.32),
    ("2020-10-30", 116.985, 114.32, 115.95), ("2020-11-02", 117.545, 115.14, 115.85),
    ("2020-11-03", 117.53, 115.6, 116.85), ("2020-11-04", 119.62, 116.32, 117.35),
    ("2020-11-05", 119.03, 113.55, 113.9), ("2020-11-06", 116.04, 112.445, 112.72),
]
# Wilder's ATR(14) after the last bar, worked out with hand_atr below (and pinned, so a change shows).
PLD_ATR, EXR_ATR = 2.4236371642024137, 2.6747193877551045


def hand_atr(rows: list[tuple], period: int) -> float:
    """Wilder (1978) with plain loops: TR of each bar after the first; the first ATR the mean of the first
    ``period`` TRs; then ATR = (previous ATR x (period - 1) + TR) / period.  NaN with too few bars."""
    trs = []
    for i in range(1, len(rows)):
        high, low, prev_close = rows[i][1], rows[i][2], rows[i - 1][3]
        trs.append(max(high - low, abs(high - prev_close), abs(low - prev_close)))
    if len(trs) < period:
        return math.nan
    atr = 0.0
    for tr in trs[:period]:
        atr += tr
    atr /= period
    for tr in trs[period:]:
        atr = (atr * (period - 1) + tr) / period
    return atr


def panel(*columns: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-aligned (high, low, close) panels of the columns, NaN-padded on top."""
    depth = max(len(c) for c in columns)
    out = np.full((3, depth, len(columns)), np.nan)
    for j, rows in enumerate(columns):
        for k, (_, high, low, close) in enumerate(rows):
            out[:, depth - len(rows) + k, j] = (high, low, close)
    return out[0], out[1], out[2]


@pytest.fixture(scope="module")
def source() -> SampleSource:
    return SampleSource(SAMPLE)


@pytest.fixture(scope="module")
def night(source) -> pd.DataFrame:
    """The scan's bars of the close of 2020-11-06: 400 calendar days, split-adjusted through that session."""
    return source.bars(end=SCAN, start=SCAN - dt.timedelta(days=400))


@pytest.fixture(scope="module")
def levels(night) -> dict:
    return pick_levels(night, ["PLD", "EXR", "ANET", "BMY", "AES"], {}, LevelsConfig())


@pytest.fixture(scope="module")
def after(source) -> pd.DataFrame:
    """The bars of the 20 sessions after the scan (2020-11-09 .. 2020-12-07); no split of those five in them."""
    return source.bars(end=D(2020, 12, 7), start=D(2020, 11, 9), symbols=["PLD", "EXR", "ANET", "BMY", "AES"],
                       adjust_through=D(2020, 12, 7))


# --- Wilder's ATR ------------------------------------------------------------------------------

def test_the_cut_bars_are_the_samples(sample_bars):
    bars = sample_bars.set_index(["symbol", "date"])
    for symbol, rows in (("PLD", PLD), ("EXR", EXR)):
        for day, high, low, close in rows:
            bar = bars.loc[(symbol, D.fromisoformat(day))]
            assert (bar["high"], bar["low"], bar["close"]) == (high, low, close), (symbol, day)


def test_true_range_takes_the_gap_from_the_previous_close():
    high, low, close = panel(PLD)
    tr = true_range(high, low, close)[:, 0]
    assert tr[0] == pytest.approx(105.9 - 103.08)      # 10-15: high - low
    assert tr[7] == pytest.approx(103.24 - 99.9)       # 10-26 gapped down: previous close - low > high - low
    assert tr[13] == pytest.approx(105.16 - 101.87)    # 11-03 gapped up: high - previous close
    assert len(tr) == len(PLD) - 1


def test_wilder_atr_is_the_hand_computation():
    assert hand_atr(PLD, 14) == pytest.approx(PLD_ATR, rel=1e-12)
    assert hand_atr(EXR, 14) == pytest.approx(EXR_ATR, rel=1e-12)
    assert wilder_atr(*panel(PLD), 14)[0] == pytest.approx(PLD_ATR, rel=1e-12)
    # 15 bars: 14 TRs, the seed alone (their mean)
    trs = [max(PLD[i][1] - PLD[i][2], abs(PLD[i][1] - PLD[i - 1][3]), abs(PLD[i][2] - PLD[i - 1][3]))
           for i in range(1, 15)]
    assert wilder_atr(*panel(PLD[:15]), 14)[0] == pytest.approx(sum(trs) / 14, rel=1e-12)


def test_wilder_atr_panel_of_two_symbols_of_different_lengths():
    atr = wilder_atr(*panel(PLD, EXR), 14)       # EXR has 2 bars fewer: NaN-padded on top
    assert atr == pytest.approx([PLD_ATR, EXR_ATR], rel=1e-12)
    assert wilder_atr(*panel(EXR, PLD), 14) == pytest.approx([EXR_ATR, PLD_ATR], rel=1e-12)
    # a period of 3 on the same panel: each column seeded on its own first TRs
    assert wilder_atr(*panel(PLD, EXR), 3) == pytest.approx([hand_atr(PLD, 3), hand_atr(EXR, 3)], rel=1e-12)


def test_wilder_atr_is_nan_for_short_histories():
    short = wilder_atr(*panel(PLD, EXR[-14:], EXR[-15:]), 14)      # 14 bars have 13 TRs: no seed
    assert short[0] == pytest.approx(PLD_ATR, rel=1e-12)
    assert math.isnan(short[1])
    assert short[2] == pytest.approx(hand_atr(EXR[-15:], 14), rel=1e-12)
    assert np.isnan(wilder_atr(*panel(PLD[:14], EXR[:10]), 14)).all()


# --- each pick's levels ------------------------------------------------------------------------

def test_pick_levels_on_the_real_scan(night, sample_bars):
    cfg = LevelsConfig()
    allocations = {"CORE": {"PLD": 0.6, "EXR": 0.4}, "SPEC": {"PLD": 0.25, "ANET": 0.75}}
    out = pick_levels(night, ["PLD", "EXR", "ANET", "BMY", "NOPE"], allocations, cfg)
    assert sorted(out) == ["ANET", "BMY", "EXR", "PLD"]          # NOPE has no bars: left out
    close = sample_bars[sample_bars["date"] == SCAN].set_index("symbol")["close"]
    for s, lv in out.items():
        rows = [(str(r.date), r.high, r.low, r.close)
                for r in night[night["symbol"] == s].tail(window_length(cfg)).itertuples()]
        assert lv.entry == close[s]                                   # the scan session's close, exactly
        assert lv.atr == pytest.approx(hand_atr(rows, 14), rel=1e-12)
        risk = 1.5 * lv.atr
        assert lv.risk_per_share == pytest.approx(risk, rel=1e-12)
        assert lv.invalidation == pytest.approx(lv.entry - risk, rel=1e-12)
        assert lv.target_1r == pytest.approx(lv.entry + risk, rel=1e-12)
        assert lv.target_2r == pytest.approx(lv.entry + 2 * risk, rel=1e-12)
    pld = out["PLD"]
    assert pld.entry == 104.89
    assert pld.account_risk == pytest.approx({"CORE": 0.6 * pld.risk_per_share / 104.89,
                                              "SPEC": 0.25 * pld.risk_per_share / 104.89}, rel=1e-12)
    assert set(out["EXR"].account_risk) == {"CORE"} and set(out["ANET"].account_risk) == {"SPEC"}
    assert out["BMY"].account_risk == {}


def test_pick_levels_follows_the_config(night):
    cfg = LevelsConfig(atr_period=10, stop_atr=2.0, targets_r=(1.5, 3.0))
    lv = pick_levels(night, ["PLD"], {}, cfg)["PLD"]
    rows = [(str(r.date), r.high, r.low, r.close) for r in night[night["symbol"] == "PLD"].tail(201).itertuples()]
    assert window_length(cfg) == 201
    assert lv.atr == pytest.approx(hand_atr(rows, 10), rel=1e-12)
    assert lv.invalidation == pytest.approx(104.89 - 2 * lv.atr, rel=1e-12)
    assert lv.target_1r == pytest.approx(104.89 + 1.5 * 2 * lv.atr, rel=1e-12)
    assert lv.target_2r == pytest.approx(104.89 + 3.0 * 2 * lv.atr, rel=1e-12)


def test_pick_levels_leaves_out_short_histories_and_reads_rows_in_any_order(night, levels):
    cut = pd.concat([night[night["symbol"] == "PLD"].tail(15), night[night["symbol"] == "EXR"].tail(14)])
    assert list(pick_levels(cut, ["PLD", "EXR"], {}, LevelsConfig())) == ["PLD"]
    shuffled = night.sample(frac=1.0, random_state=7)
    assert pick_levels(shuffled, list(levels), {}, LevelsConfig()) == levels
    assert pick_levels(night.iloc[:0], ["PLD"], {}, LevelsConfig()) == {}


# --- what came first ---------------------------------------------------------------------------

def bar(sample_bars, symbol: str, day: D) -> pd.Series:
    return sample_bars.set_index(["symbol", "date"]).loc[(symbol, day)]


def test_a_target_first(levels, after, sample_bars):
    """ANET: nothing touched for 5 sessions, then 1R on 2020-11-17 (its 7th session after the scan)."""
    lv = levels["ANET"]
    window = sample_bars[(sample_bars["symbol"] == "ANET") & (sample_bars["date"] > SCAN)].head(7)
    assert ((window["low"] > lv.invalidation) & (window["high"] < lv.target_1r)).iloc[:6].all()
    last = window.iloc[6]
    assert last["date"] == D(2020, 11, 17) and lv.target_1r <= last["high"] < lv.target_2r
    assert last["low"] > lv.invalidation
    assert first_touch(after, levels)["ANET"] == {1: ("neither", D(2020, 11, 9)), 5: ("neither", D(2020, 11, 13)),
                                                  20: ("target_1r", D(2020, 11, 17))}


def test_the_invalidation_first(levels, after, sample_bars):
    """BMY: under its invalidation on 2020-11-19 (9th session after the scan), no target before."""
    lv = levels["BMY"]
    window = sample_bars[(sample_bars["symbol"] == "BMY") & (sample_bars["date"] > SCAN)].head(9)
    assert ((window["low"] > lv.invalidation) & (window["high"] < lv.target_1r)).iloc[:8].all()
    assert window.iloc[8]["date"] == D(2020, 11, 19) and window.iloc[8]["low"] <= lv.invalidation
    assert first_touch(after, levels)["BMY"] == {1: ("neither", D(2020, 11, 9)), 5: ("neither", D(2020, 11, 13)),
                                                 20: ("invalidation", D(2020, 11, 19))}


def test_one_bar_touching_both_counts_the_invalidation(levels, after, sample_bars):
    """EXR on 2020-11-09: low under the invalidation and high over even the 2R target."""
    lv, b = levels["EXR"], bar(sample_bars, "EXR", D(2020, 11, 9))
    assert b["low"] <= lv.invalidation and b["high"] >= lv.target_2r
    assert first_touch(after, levels)["EXR"] == {h: ("invalidation", D(2020, 11, 9)) for h in (1, 5, 20)}


def test_the_furthest_target_of_the_first_bar(levels, after, sample_bars):
    """AES on 2020-11-09 passed 1R and 2R without touching its invalidation: 2R."""
    lv, b = levels["AES"], bar(sample_bars, "AES", D(2020, 11, 9))
    assert b["low"] > lv.invalidation and b["high"] >= lv.target_2r
    assert first_touch(after, levels)["AES"] == {h: ("target_2r", D(2020, 11, 9)) for h in (1, 5, 20)}


def test_no_bar_after_the_scan_is_neither_with_no_session(levels, after):
    out = first_touch(after[after["symbol"] != "PLD"], levels, horizons=(1, 3))
    assert out["PLD"] == {1: ("neither", None), 3: ("neither", None)}
    assert out["ANET"] == {1: ("neither", D(2020, 11, 9)), 3: ("neither", D(2020, 11, 11))}


def test_bars_after_a_split_are_brought_back_to_the_scan_basis(source):
    """AAPL split 4-for-1 on 2020-08-31: read as traded, its bars fall under any level set on the 08-28 close."""
    scan = D(2020, 8, 28)
    lv = pick_levels(source.bars(end=scan, start=scan - dt.timedelta(days=400)), ["AAPL"], {}, LevelsConfig())
    assert lv["AAPL"].entry == 499.23
    as_traded = source.bars(end=D(2020, 9, 30), start=D(2020, 8, 31), symbols=["AAPL"], adjust_through=scan)
    assert first_touch(as_traded, lv)["AAPL"][1] == ("invalidation", D(2020, 8, 31))      # the wrong answer
    fixed = scan_basis_bars(source, ["AAPL"], scan, D(2020, 9, 30), D(2021, 4, 21))
    first = fixed.iloc[0]
    assert first["date"] == D(2020, 8, 31) and first["high"] == pytest.approx(4 * 131.0)
    assert min(fixed["date"]) > scan
    assert lv["AAPL"].target_1r <= 524.0 and 4 * 126.0 > lv["AAPL"].invalidation
    assert first_touch(fixed, lv)["AAPL"][1] == ("target_1r", D(2020, 8, 31))
    # no split: the bars are the source's, unchanged
    plain = scan_basis_bars(source, ["PLD"], SCAN, D(2020, 11, 13), D(2021, 4, 21))
    expected = source.bars(end=D(2020, 11, 13), start=D(2020, 11, 9), symbols=["PLD"])
    assert plain[["date", "high", "low"]].equals(expected[["date", "high", "low"]])


# --- prep replay -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def nights(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """(evening, morning) -> a workspace where that night's cycle ran, once per module (``run_night``)."""
    return {("folder", ""): tmp_path_factory.mktemp("nights")}


def run_night(prep, nights, evening: str = "2020-11-06", morning: str = "2020-11-09"):
    """The real nightly cycle (prepare, validate, execute) of ``evening``; run once per night and module,
    ``prep``'s empty workspace gets a copy of its files (none of them names its folder).  The path of the
    copy's archive."""
    assert not (prep.folder / "archived_trades").exists()
    cycled_night(nights, nights[("folder", "")], prep, evening, morning)
    return next((prep.folder / "archived_trades").glob("*.json"))


def with_levels(path, source, scan: D) -> dict:
    """Write into the archive the levels of its checked picks as of ``scan`` (those prepare records, or
    the first ones where prepare does not record them yet); return them as the plan holds them."""
    doc = json.loads(path.read_text())
    plan = doc["plan"]
    picks = sorted(plan["validation_results"]["checks"])
    allocations = {n: s["allocations"] for n, s in plan["strategies"].items()}
    bars = source.bars(end=scan, start=scan - dt.timedelta(days=400))
    levels = {s: lv.model_dump() for s, lv in pick_levels(bars, picks, allocations, LevelsConfig()).items()}
    context = plan.get("context") or {"regime": {"status": "off"}, "events": {"status": "off"}}
    plan["context"] = {**context, "levels": levels}
    path.write_text(json.dumps(doc))
    return levels


def hand_touches(sample_bars, levels: dict, scan: D, horizon: int) -> dict[str, str]:
    """What each pick touched first in its first ``horizon`` bars after the scan, by a plain loop over
    the raw bars, prices after a split's ex-date multiplied back by its ratio."""
    splits = pd.read_csv(SAMPLE / "splits.csv")
    after = sample_bars[sample_bars["symbol"].isin(list(levels)) & (sample_bars["date"] > scan)]
    by_symbol = dict(list(after.groupby("symbol", sort=False)))   # each pick's rows, in the file's order
    out = {}
    for s, lv in levels.items():
        rows = by_symbol.get(s, after.iloc[:0]).head(horizon)
        out[s] = "neither"
        for r in rows.itertuples():
            k = math.prod(sp.ratio for sp in splits[splits["symbol"] == s].itertuples()
                          if scan < D.fromisoformat(sp.date) <= r.date)
            if r.low * k <= lv["invalidation"]:
                out[s] = "invalidation"
                break
            if r.high * k >= lv["target_1r"]:
                out[s] = "target"
                break
    return out


def row_of(output: str, symbol: str) -> list[str]:
    """The symbol's row of the levels table (which comes after the picks table)."""
    table = output[output.index("what came first"):]
    return next(line for line in table.splitlines() if line.startswith(f"{symbol} ")).split()


def test_replay_prints_what_each_pick_touched_first(prep, nights, sample_bars, source):
    levels = with_levels(run_night(prep, nights), source, SCAN)
    r = prep("replay", "--latest")
    assert r.exit_code == 0, r.output
    assert "price levels of the scan of 2020-11-06: what came first" in r.output
    # the night's picks include BLL, TYL and CRM
    assert {"BLL", "TYL", "CRM"} <= set(levels), sorted(levels)
    for s, lv in levels.items():
        row = row_of(r.output, s)
        assert row[1:5] == [f"{lv[k]:.2f}" for k in ("entry", "invalidation", "target_1r", "target_2r")], row
    bll, b = levels["BLL"], bar(sample_bars, "BLL", D(2020, 11, 9))
    assert b["low"] <= bll["invalidation"] and b["high"] >= bll["target_1r"]      # both on one bar: the stop
    assert row_of(r.output, "BLL")[5:] == ["stop", "stop", "stop", "2020-11-09"]
    assert row_of(r.output, "TYL")[5:] == ["-", "-", "1R", "2020-12-01"]
    assert row_of(r.output, "CRM")[5:] == ["-", "stop", "stop", "2020-11-10"]
    for h in (1, 5, 20):
        hand = list(hand_touches(sample_bars, levels, SCAN, h).values())
        assert (f"+{h} session{'s' if h > 1 else ''}: {hand.count('target')} of {len(levels)} picks touched a "
                f"target first, {hand.count('invalidation')} the stop, {hand.count('neither')} neither") in r.output
    assert "a bar touching both counts as the stop" in r.output


def test_replay_says_not_yet_past_the_data(prep, nights, sample_bars, source):
    """Scan of 2021-04-19: the sample ends on 2021-04-21, two sessions after it."""
    levels = with_levels(run_night(prep, nights, "2021-04-19", "2021-04-20"), source, D(2021, 4, 19))
    r = prep("replay", "--latest")
    assert r.exit_code == 0, r.output
    hand = hand_touches(sample_bars, levels, D(2021, 4, 19), 2)
    open_ = [s for s, what in hand.items() if what == "neither"]
    assert open_, hand                                    # some pick touched nothing in the two sessions
    for s in open_:                                       # +1 is over: nothing; +5 and +20 run past the data
        assert row_of(r.output, s)[5:] == ["-", "not", "yet", "not", "yet", "-"], row_of(r.output, s)
    assert (f"+20 sessions: {list(hand.values()).count('target')} of {len(levels)} picks touched a target first, "
            f"{list(hand.values()).count('invalidation')} the stop, {len(open_)} not yet") in r.output


@pytest.mark.parametrize("context", ["absent", None])
def test_a_plan_without_context_still_replays(prep, nights, context):
    path = run_night(prep, nights)
    doc = json.loads(path.read_text())
    if context == "absent":
        doc["plan"].pop("context", None)
    else:
        doc["plan"]["context"] = None
    path.write_text(json.dumps(doc))
    r = prep("replay", "--latest")
    assert r.exit_code == 0, r.output
    assert "picks: evening vs morning" in r.output and "forward returns from the open of 2020-11-09" in r.output
    assert "price levels" not in r.output and "first touch" not in r.output
