"""Scanners in the nightly cycle, end to end on the real sample (issue 11 items 2-3).

The universe is cut to 60 real names so the scanners have something to discover; the finds are
checked against the rule computed here with plain pandas on the raw sample bars.
"""

import datetime as dt
import json

import pandas as pd
import pytest

from conftest import SAMPLE, Prep

EVENING, MORNING = "2021-04-19T20:00", "2021-04-20T09:00"
SCAN, PREV, TARGET = dt.date(2021, 4, 19), dt.date(2021, 4, 16), dt.date(2021, 4, 20)


@pytest.fixture(scope="module")
def day_bars(sample_bars):
    """Raw bars of the scan session, the session before and the target session, indexed by symbol."""
    return {d: sample_bars[sample_bars["date"] == d].set_index("symbol") for d in (PREV, SCAN, TARGET)}


def evening_gappers(day_bars) -> set[str]:
    """DESIGN §10's gap rule with its defaults, by hand: |open / previous close - 1| >= 2 %,
    volume >= 1,000,000 shares, close <= $500 (no split in the sample on these two sessions)."""
    last, prev = day_bars[SCAN], day_bars[PREV]
    gap = last["open"] / prev["close"].reindex(last.index) - 1
    ok = (gap.abs() >= 0.02) & (last["volume"] >= 1_000_000) & (last["close"] <= 500)
    return set(gap[ok].index)


def workspace(folder, scanners: str, universe: list[str]) -> Prep:
    (folder / "universe.csv").write_text("symbol\n" + "\n".join(universe) + "\n")
    (folder / "config.yaml").write_text(
        f"data:\n  sample_dir: {SAMPLE}\nuniverse:\n  constituents_file: universe.csv\n" + scanners)
    return Prep(folder)


@pytest.fixture(scope="module")
def small_universe(day_bars, sample_bars):
    """60 real names of the sample, none of them an evening gapper of 2021-04-19."""
    gappers = evening_gappers(day_bars)
    names = sorted(set(day_bars[SCAN].index) - gappers)
    return names[:60]


TWO = """scanners:
  - name: gappers
    module: builtin:gap
  - name: breakouts
    module: builtin:breakout
"""


def test_two_scanners_add_names_and_the_plan_says_who_found_them(tmp_path, day_bars, small_universe):
    prep = workspace(tmp_path, TWO, small_universe)
    r = prep("--as-of", EVENING, "prepare")
    assert r.exit_code == 0, r.output
    plan = prep.plan()
    rec = plan["scanners"]
    gappers = evening_gappers(day_bars)
    assert gappers == {"ALB", "ENPH", "TXT"}  # the real night: three gaps of 2 % or more
    runs = {run["name"]: run for run in rec["evening"]}
    assert set(runs["gappers"]["symbols"]) == gappers and runs["gappers"]["error"] is None
    found = gappers | set(runs["breakouts"]["symbols"])
    assert set(rec["added"]) == found - set(small_universe)
    assert set(rec["found_by"]) == found
    for sym, names in rec["found_by"].items():
        assert names == [n for n in ("gappers", "breakouts") if sym in runs[n]["symbols"]], sym
    # The finds were scored like every other name: they are rows of scan_results.json, with attribution.
    scan = {t["symbol"]: t for t in json.loads((tmp_path / "data" / "scan_results.json").read_text())["tickers"]}
    assert set(scan) >= set(small_universe) | found
    assert scan["ALB"]["found_by"] == rec["found_by"]["ALB"] and scan[small_universe[0]]["found_by"] == []
    assert "scanner gappers (add): 3 found, 3 new to the universe" in r.output
    stats = (tmp_path / "data" / "scanners" / "stats.jsonl").read_text().splitlines()
    assert [json.loads(line)["name"] for line in stats] == ["gappers", "breakouts"]


def test_a_scanner_that_raises_never_fails_the_night(tmp_path, small_universe):
    broken = TWO + "  - name: broken\n    module: fakes.cycle_scanners:Broken\n"
    prep = workspace(tmp_path, broken, small_universe)
    r = prep("--as-of", EVENING, "prepare")
    assert r.exit_code == 0, r.output
    assert "scanner broken failed (attempt 2 of 2): RuntimeError: this scanner has a bug" in r.output
    runs = {run["name"]: run for run in prep.plan()["scanners"]["evening"]}
    assert runs["broken"]["error"] == "RuntimeError: this scanner has a bug" and runs["broken"]["symbols"] == []
    assert runs["gappers"]["found"] == 3
    state = json.loads((tmp_path / "data" / "scanners" / "state.json").read_text())["scanners"]
    assert state["broken"]["consecutive_failures"] == 1 and not state["broken"]["disabled"]


def test_a_dry_run_writes_no_scanner_state(tmp_path, small_universe):
    prep = workspace(tmp_path, TWO, small_universe)
    r = prep("--as-of", EVENING, "prepare", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "scanner gappers (add): 3 found" in r.output
    assert not (tmp_path / "data" / "scanners").exists()


def test_max_symbols_caps_what_joins_the_universe(tmp_path, small_universe, day_bars):
    everything = "scanners:\n  - name: all\n    module: fakes.cycle_scanners:Everything\n    max_symbols: 7\n"
    prep = workspace(tmp_path, everything, small_universe)
    r = prep("--as-of", EVENING, "prepare")
    assert r.exit_code == 0, r.output
    run = prep.plan()["scanners"]["evening"][0]
    assert run["capped_from"] == len(day_bars[SCAN]) and run["found"] == 7   # every symbol with a bar that day
    assert run["symbols"] == sorted(day_bars[SCAN].index)[:7] and "kept its top 7 (max_symbols)" in r.output


VETO = """scanners:
  - name: morning_gap
    module: builtin:gap
    phase: morning
    action: veto
    params: {min_gap: 0.01}
"""


def test_a_morning_veto_rejects_the_picks_that_gap(tmp_path, day_bars):
    prep = workspace(tmp_path, VETO, sorted(day_bars[SCAN].index))
    assert prep("--as-of", EVENING, "prepare").exit_code == 0
    plan = prep.plan()
    picks = sorted({s for n, st in plan["strategies"].items() if n != "BUY_HOLD" for s in st["allocations"]})
    # By hand: the sample's pre-market price is the target session's open, the base the scan's close.
    last, opens = day_bars[SCAN].loc[picks], day_bars[TARGET]["open"].reindex(picks)
    gap = opens / last["close"] - 1
    expected = set(gap[(gap.abs() >= 0.01) & (last["volume"] >= 1_000_000) & (last["close"] <= 500)].index)
    assert expected, "the night must hold at least one pick that gaps 1 % for this test to bite"
    r = prep("--as-of", MORNING, "validate")
    assert r.exit_code == 0, r.output
    plan = prep.plan()
    vr, rec = plan["validation_results"], plan["scanners"]
    assert set(rec["vetoed"]) == expected
    for sym in picks:
        check = vr["checks"][sym]
        if sym in expected:
            assert not check["passed"] and check["reason"].startswith("vetoed by scanner morning_gap (gap ")
        assert sym not in expected or all(sym not in v["validated_allocations"]
                                          for v in vr["validated_strategies"].values())
    assert rec["evening"] == [] and rec["morning"][0]["name"] == "morning_gap"
    assert pd.Series(sorted(expected)).isin(picks).all()
