"""Tests of trading_system.prepare.strategies (DESIGN §5).

The ranking and weighting rules are tested on small hand-made frames and Sharpe lists
(SYNTHETIC: they hold scores and ratios, not prices, and are shaped to hit ties and cap
cascades that a real scan would only give by chance).  ``build_strategies`` is also run
on the real scan of the whole sample as of 2021-04-19 (split-adjusted).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_properties import reference_capped_weights

from trading_system.config import StrategiesConfig
from trading_system.prepare.strategies import STRATEGY_NAMES, build_strategies, cap_note, cap_notes, rank, sharpe_weights


def scan_frame(rows: list[tuple]) -> pd.DataFrame:
    """SYNTHETIC scan rows: (symbol, bucket, pick, score, sharpe)."""
    f = pd.DataFrame(rows, columns=["symbol", "bucket", "pick", "score", "sharpe"])
    return f.set_index("symbol")


@pytest.fixture
def real_scan(whole_sample_scan) -> pd.DataFrame:
    """The scan of the whole sample as of 2021-04-19, split-adjusted (built once per session in conftest.py)."""
    return whole_sample_scan[1]


# --------------------------------------------------------------------------- rank


def test_rank_breaks_ties_by_sharpe_then_symbol():
    scan = scan_frame([
        ("CCC", "CORE", True, 80.0, 1.0),
        ("BBB", "CORE", True, 80.0, 1.0),
        ("AAA", "CORE", True, 80.0, 0.5),
    ])
    assert rank(scan, "CORE", 3) == ["BBB", "CCC", "AAA"]


def test_rank_orders_by_score_and_keeps_only_picks_of_the_bucket():
    scan = scan_frame([
        ("LOW", "CORE", True, 60.0, 3.0),
        ("TOP", "CORE", True, 90.0, 0.1),
        ("MID", "CORE", True, 75.0, 2.0),
        ("NOTPICK", "CORE", False, 99.0, 5.0),
        ("OTHER", "SPEC", True, 95.0, 5.0),
    ])
    assert rank(scan, "CORE", 10) == ["TOP", "MID", "LOW"]
    assert rank(scan, "CORE", 2) == ["TOP", "MID"]
    assert rank(scan, "SPEC", 5) == ["OTHER"]
    assert rank(scan, "ASYM", 5) == []
    assert rank(scan, "CORE", 0) == []


# --------------------------------------------------------------------------- sharpe_weights


def test_weights_proportional_when_no_cap_binds():
    s = pd.Series([2.0, 1.0, 1.0, -0.5], index=["A", "B", "C", "D"])
    w = sharpe_weights(s, 1.0)
    assert list(w.index) == ["A", "B", "C", "D"]
    assert w.tolist() == pytest.approx([0.5, 0.25, 0.25, 0.0])     # negative Sharpe -> 0


def test_cap_excess_is_redistributed_until_none_exceeds():
    # SYNTHETIC Sharpes chosen for a two-round cascade under a 0.20 cap:
    # round 1: A = 6/17 = 0.353 > 0.20 -> capped; B then gets 0.8 * 3/11 = 0.218 > 0.20;
    # round 2: B capped too; the eight 1.0s share 0.6 -> 0.075 each.
    names = ["H", "A", "C", "B", "D", "E", "F", "G", "I", "J"]
    s = pd.Series([1.0, 6.0, 1.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], index=names)
    w = sharpe_weights(s, 0.20)
    assert list(w.index) == names                                     # order kept
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert (w <= 0.20 + 1e-12).all()
    assert w["A"] == pytest.approx(0.20) and w["B"] == pytest.approx(0.20)
    assert w.drop(["A", "B"]).tolist() == pytest.approx([0.075] * 8)


def test_cap_spreads_pro_rata_over_the_names_under_it():
    s = pd.Series([8.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], index=list("ABCDEFGH"))
    w = sharpe_weights(s, 0.25)
    assert w["A"] == pytest.approx(0.25)
    # the other 0.75 in proportion 2:1:1:1:1:1:1
    assert w.drop("A").tolist() == pytest.approx([0.75 * 2 / 8] + [0.75 / 8] * 6)
    assert w.sum() == pytest.approx(1.0)


def test_all_nonpositive_sharpes_give_equal_weights():
    w = sharpe_weights(pd.Series([-1.0, 0.0, -0.3, np.nan], index=list("ABCD")), 0.5)
    assert w.tolist() == pytest.approx([0.25] * 4)


def test_infeasible_cap_gives_equal_weights():
    # 3 names under a 0.20 cap cannot sum to 1: equal weights (documented).
    w = sharpe_weights(pd.Series([3.0, 1.0, 0.5], index=list("ABC")), 0.20)
    assert w.tolist() == pytest.approx([1 / 3] * 3)


def test_cap_with_zero_weight_names_left_spreads_equally():
    # SYNTHETIC: three strong names hit the cap, the rest have Sharpe <= 0: the excess cannot
    # go pro rata (their weights are 0), so it is spread equally and the cap still holds.
    s = pd.Series([5.0, 5.0, 5.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0], index=list("ABCDEFGHIJ"))
    w = sharpe_weights(s, 0.20)
    assert w.iloc[:3].tolist() == pytest.approx([0.2] * 3)
    assert w.iloc[3:].tolist() == pytest.approx([0.4 / 7] * 7)
    assert w.sum() == pytest.approx(1.0)


def test_empty_sharpes():
    w = sharpe_weights(pd.Series([], dtype=float), 0.2)
    assert w.empty


# --------------------------------------------------------------------------- build_strategies


def test_build_strategies_on_the_real_scan(real_scan):
    cfg = StrategiesConfig()
    out = build_strategies(real_scan, cfg)
    assert tuple(out) == STRATEGY_NAMES
    assert out["BUY_HOLD"] == {"SPY": 0.6, "QQQ": 0.4}
    tactical, spec, asym = (list(out[n]) for n in ("TACTICAL", "SPEC", "ASYM"))
    # Nesting: each strategy is a prefix of the next.
    assert spec[: len(tactical)] == tactical and asym[: len(spec)] == spec
    assert set(tactical) < set(spec) < set(asym)
    assert len(tactical) == cfg.top_core
    assert len(spec) - len(tactical) == cfg.top_spec
    assert 0 < len(asym) - len(spec) <= cfg.top_asym
    # Picks of the right buckets, in rank order; benchmarks excluded.
    candidates = real_scan.drop(index=["SPY", "QQQ"])
    assert tactical == rank(candidates, "CORE", cfg.top_core)
    assert spec[len(tactical):] == rank(candidates, "SPEC", cfg.top_spec)
    assert real_scan.loc[asym, "pick"].all()
    assert real_scan.loc["SPY", "pick"] and real_scan.loc["SPY", "bucket"] == "CORE"
    assert "SPY" not in asym and "QQQ" not in asym
    for name in ("TACTICAL", "SPEC", "ASYM"):
        weights = out[name]
        assert sum(weights.values()) == pytest.approx(1.0, abs=1e-12)
        assert max(weights.values()) <= cfg.weight_cap + 1e-12
        expected = sharpe_weights(real_scan.loc[list(weights), "sharpe"], cfg.weight_cap)
        assert list(weights.values()) == pytest.approx(expected.tolist())
        # ... and the plain reference (cap the largest, spread pro rata, repeat) on the real Sharpes.
        reference = reference_capped_weights(real_scan.loc[list(weights), "sharpe"].tolist(), cfg.weight_cap)
        assert list(weights.values()) == pytest.approx(reference, abs=1e-12)


def test_benchmarks_are_never_picks(real_scan):
    top = rank(real_scan, "CORE", 1)[0]
    cfg = StrategiesConfig(benchmarks={top: 1.0})
    out = build_strategies(real_scan, cfg)
    assert out["BUY_HOLD"] == {top: 1.0}
    assert top not in out["TACTICAL"] and top not in out["ASYM"]
    assert list(out["TACTICAL"]) == rank(real_scan.drop(index=top), "CORE", cfg.top_core)


def test_strategy_sizes_come_from_the_config(real_scan):
    out = build_strategies(real_scan, StrategiesConfig(top_core=3, top_spec=2, top_asym=1, weight_cap=0.5))
    assert [len(out[n]) for n in ("TACTICAL", "SPEC", "ASYM")] == [3, 5, 6]
    assert max(out["SPEC"].values()) <= 0.5 + 1e-12


def test_strategy_without_names_is_empty():
    scan = scan_frame([
        ("SPY", "CORE", True, 90.0, 2.0),         # a benchmark: never a pick
        ("AAA", "SPEC", True, 70.0, 1.0),
        ("BBB", "CORE", False, 40.0, 0.5),
    ])
    out = build_strategies(scan, StrategiesConfig())
    assert out["TACTICAL"] == {}
    assert out["SPEC"] == {"AAA": 1.0} and out["ASYM"] == {"AAA": 1.0}
    none = build_strategies(scan.assign(pick=False), StrategiesConfig())
    assert none["TACTICAL"] == none["SPEC"] == none["ASYM"] == {}
    assert none["BUY_HOLD"] == {"SPY": 0.6, "QQQ": 0.4}


@pytest.mark.parametrize("names, cap, note", [
    (3, 0.2, "ASYM: 3 names cannot honour the 20 % cap; weights are equal, 33.3 % each"),
    (4, 0.2, "ASYM: 4 names cannot honour the 20 % cap; weights are equal, 25.0 % each"),
    (1, 0.2, "ASYM: 1 name cannot honour the 20 % cap; it holds 100 %"),
    (2, 0.45, "ASYM: 2 names cannot honour the 45 % cap; weights are equal, 50.0 % each"),
    (5, 0.2, None),      # 5 x 20 % = 100 %: every name at the cap, the cap holds
    (18, 0.2, None),
    (0, 0.2, None),      # no names, nothing to cap
])
def test_cap_note_says_when_the_names_cannot_honour_the_cap(names, cap, note):
    assert cap_note("ASYM", names, cap) == note


def test_cap_notes_of_built_strategies_skip_buy_hold():
    built = {"BUY_HOLD": {"SPY": 0.6, "QQQ": 0.4}, "TACTICAL": {}, "SPEC": {"A": 0.5, "B": 0.5},
             "ASYM": {s: 0.2 for s in "ABCDE"}}
    assert cap_notes(built, StrategiesConfig()) == {
        "SPEC": "SPEC: 2 names cannot honour the 20 % cap; weights are equal, 50.0 % each"}


def test_prepare_says_which_strategies_cannot_honour_the_cap(prep):
    """A real night: after the close of 2020-03-20 no CORE name scores 50 and only 4 SPEC names do, so SPEC
    and ASYM hold 4 names at 25 % each, over the 20 % cap; TACTICAL holds none and breaks no cap."""
    r = prep("--as-of", "2020-03-20T20:00", "prepare")
    assert r.exit_code == 0, r.output
    plan = prep.plan()
    assert plan["scan_summary"]["core_picks"] == 0 and plan["scan_summary"]["asym_picks"] == 0
    for name in ("SPEC", "ASYM"):
        assert sorted(plan["strategies"][name]["allocations"].values()) == [0.25] * 4
        assert f"note: {name}: 4 names cannot honour the 20 % cap; weights are equal, 25.0 % each" in r.output
    assert "TACTICAL: " not in r.output and "BUY_HOLD: " not in r.output
    r = prep("--as-of", "2021-04-19T20:00", "prepare", "--dry-run")   # 10, 15 and 18 names: the cap holds
    assert r.exit_code == 0 and "cannot honour" not in r.output
