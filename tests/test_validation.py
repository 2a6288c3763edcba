"""The morning gate on hand-given scores (scores are points, not market data), and on a real night."""

import pytest

from trading_system.config import ValidationConfig
from trading_system.state.plan import Strategy
from trading_system.validate.gate import check_pick, percent_vs, select_strategy, validate_strategy


def test_retention_threshold_is_inclusive():
    assert check_pick(80.0, 68.0, 10.0, "x", 0.85).passed          # exactly 85 %
    c = check_pick(80.0, 67.9, 10.0, "x", 0.85)
    assert not c.passed and c.retention == pytest.approx(67.9 / 80)
    assert c.reason == "kept 84.9 % of its score, under 85.0 %"
    assert check_pick(80.0, 68.0, 10.0, "x", 0.85).reason == "kept 85.0 % of its score"


def test_no_price_or_no_score_is_rejected_with_reason():
    c = check_pick(70.0, None, None, None, 0.85)
    assert not c.passed and c.reason == "no pre-market price"
    c = check_pick(70.0, float("nan"), 12.0, "x", 0.85)
    assert not c.passed and c.reason == "could not be re-scored"


def test_validate_strategy_renormalises_survivors():
    st = Strategy(allocations={"A": 0.5, "B": 0.3, "C": 0.2}, original_scores={"A": 70, "B": 60, "C": 55})
    checks = {"A": check_pick(70, 70, 1, "x", .85), "B": check_pick(60, 10, 1, "x", .85),
              "C": check_pick(55, 60, 1, "x", .85)}
    v = validate_strategy(st, checks, min_names=2)
    assert v.validated_allocations == pytest.approx({"A": 0.5 / 0.7, "C": 0.2 / 0.7})
    assert v.rejected_tickers == ["B"]
    assert v.validation_rate == pytest.approx(2 / 3)
    assert v.contestant
    assert not validate_strategy(st, checks, min_names=3).contestant


def _v(rate, contestant=True):
    from trading_system.state.plan import ValidatedStrategy
    return ValidatedStrategy(validated_allocations={}, rejected_tickers=[], validation_rate=rate,
                             contestant=contestant)


def test_selection_highest_rate_then_preference_then_fallback():
    cfg = ValidationConfig()
    assert select_strategy({"TACTICAL": _v(0.9), "SPEC": _v(0.8), "ASYM": _v(0.7)}, cfg)[0] == "TACTICAL"
    name, why = select_strategy({"TACTICAL": _v(0.8), "SPEC": _v(0.8), "ASYM": _v(0.7)}, cfg)
    assert name == "SPEC" and "preference" in why           # ASYM > SPEC > TACTICAL on ties
    name, why = select_strategy({"TACTICAL": _v(0.4), "SPEC": _v(0.3), "ASYM": _v(0.2)}, cfg)
    assert name == "BUY_HOLD" and why == "best validation rate 40.0 % (TACTICAL) is under 50.0 %"
    assert select_strategy({"TACTICAL": _v(4 / 9)}, cfg)[1] == "best validation rate 44.4 % (TACTICAL) is under 50.0 %"
    assert select_strategy({"TACTICAL": _v(0.6)}, cfg)[1] == "highest validation rate 60.0 % (at least 50.0 % needed)"
    name, why = select_strategy({"TACTICAL": _v(1.0, False), "SPEC": _v(0.9, False), "ASYM": _v(0.9, False)}, cfg)
    assert name == "BUY_HOLD" and "5 or more names" in why
    # A non-contestant with the best rate does not win.
    assert select_strategy({"TACTICAL": _v(0.6), "SPEC": _v(1.0, False), "ASYM": _v(0.5)}, cfg)[0] == "TACTICAL"


@pytest.mark.parametrize("value, threshold, shown", [
    (0.8469787669966389, 0.85, ("84.7 %", "85.0 %")),      # ALB on 2020-02-24
    (0.84996, 0.85, ("84.996 %", "85.000 %")),              # never "85.0 %, under 85.0 %"
    (0.85, 0.85, ("85.0 %", "85.0 %")),                     # at the threshold: passes, reads equal
    (0.8500001, 0.85, ("85.0 %", "85.0 %")),
    (1.0062, 0.85, ("100.6 %", "85.0 %")),
    (0.4999999, 0.5, ("50.0000 %", "50.0000 %")),          # four decimals at most
])
def test_a_figure_next_to_its_threshold_has_one_decimal_and_never_reads_as_it(value, threshold, shown):
    assert percent_vs(value, threshold) == shown


def test_alb_on_2020_02_24_shows_its_retention_next_to_the_threshold(prep):
    """A real night: ALB kept 79.248 of 93.566 points (0.84698), under the 85 % gate.  Before, the
    output said "85 % | REJECT (kept 85 % of its score, under 85 %)"."""
    assert prep("--as-of", "2020-02-21T20:00", "prepare").exit_code == 0
    r = prep("--as-of", "2020-02-24T09:00", "validate")
    assert r.exit_code == 0, r.output
    vr = prep.plan()["validation_results"]
    alb = vr["checks"]["ALB"]
    assert not alb["passed"] and alb["retention"] == pytest.approx(0.846979, abs=1e-6)
    assert alb["reason"] == "kept 84.7 % of its score, under 85.0 %"
    row = next(line for line in r.output.splitlines() if line.startswith("│ ALB "))
    assert "│    84.7 % │" in row and "REJECT (kept 84.7 % of its score, under 85.0 %)" in row
    assert "85 %" not in r.output.replace("85.0 %", "")
    # The selection reason and the rates: one decimal, next to the 50 % floor.
    assert vr["selected_strategy"] == "TACTICAL"
    assert vr["selection_reason"] == "highest validation rate 60.0 % (at least 50.0 % needed)"
    assert "SPEC: validation rate 53.3 %, rejected" in r.output and "ASYM: validation rate 55.6 %, rejected" in r.output
