"""The morning gate on hand-given scores (scores are points, not market data)."""

import pytest

from trading_system.config import ValidationConfig
from trading_system.plan import Strategy
from trading_system.validation import check_pick, select_strategy, validate_strategy


def test_retention_threshold_is_inclusive():
    assert check_pick(80.0, 68.0, 10.0, "x", 0.85).passed          # exactly 85 %
    c = check_pick(80.0, 67.9, 10.0, "x", 0.85)
    assert not c.passed and c.retention == pytest.approx(67.9 / 80)
    assert "under 85%" in c.reason


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
    from trading_system.plan import ValidatedStrategy
    return ValidatedStrategy(validated_allocations={}, rejected_tickers=[], validation_rate=rate,
                             contestant=contestant)


def test_selection_highest_rate_then_preference_then_fallback():
    cfg = ValidationConfig()
    assert select_strategy({"TACTICAL": _v(0.9), "SPEC": _v(0.8), "ASYM": _v(0.7)}, cfg)[0] == "TACTICAL"
    name, why = select_strategy({"TACTICAL": _v(0.8), "SPEC": _v(0.8), "ASYM": _v(0.7)}, cfg)
    assert name == "SPEC" and "preference" in why           # ASYM > SPEC > TACTICAL on ties
    name, why = select_strategy({"TACTICAL": _v(0.4), "SPEC": _v(0.3), "ASYM": _v(0.2)}, cfg)
    assert name == "BUY_HOLD" and "under 50%" in why
    name, why = select_strategy({"TACTICAL": _v(1.0, False), "SPEC": _v(0.9, False), "ASYM": _v(0.9, False)}, cfg)
    assert name == "BUY_HOLD" and "5 or more names" in why
    # A non-contestant with the best rate does not win.
    assert select_strategy({"TACTICAL": _v(0.6), "SPEC": _v(1.0, False), "ASYM": _v(0.5)}, cfg)[0] == "TACTICAL"
