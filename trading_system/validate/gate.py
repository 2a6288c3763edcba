"""The morning gate (DESIGN §6): retention, renormalisation, validation rate, selection.

Pure functions on plain mappings; ``pipeline.run_validate`` feeds them the plan and the
morning re-score.  Scores are 0-100 points, retention and weights are fractions.
"""

from __future__ import annotations

import math
from typing import Mapping

from trading_system.config import ValidationConfig
from trading_system.state.plan import PickCheck, Strategy, ValidatedStrategy
from trading_system.vocabulary import CONTESTANTS, FALLBACK, StrategyName

#: The most decimals ``percent_vs`` adds to keep a figure apart from its threshold.
_MAX_DECIMALS = 4


def percent(x: float, decimals: int = 1) -> str:
    """A fraction as a percentage with ``decimals`` decimals: 0.84698 -> ``"84.7 %"``."""
    return f"{x * 100:.{decimals}f} %"


def percent_vs(value: float, threshold: float, decimals: int = 1) -> tuple[str, str]:
    """(value, threshold) as percentages to print side by side, with the same decimals.

    One decimal unless a value under its threshold would read as equal to it (0.84996 vs 0.85
    prints as "84.996 %" and "85.000 %", never "85.0 %, under 85.0 %"); up to four.  A value at or
    over the threshold never prints under it (rounding keeps the order).
    """
    while (decimals < _MAX_DECIMALS and value < threshold
           and percent(value, decimals) == percent(threshold, decimals)):
        decimals += 1
    return percent(value, decimals), percent(threshold, decimals)


def percent_of(value: float, threshold: float | None) -> str:
    """``value`` as a percentage with one decimal; under ``threshold`` (when one is given) with as many
    as ``percent_vs`` needs so it never reads as the threshold.  For a column of figures gated by one."""
    return percent(value) if threshold is None else percent_vs(value, threshold)[0]


def check_pick(
    original_score: float,
    current_score: float | None,
    price: float | None,
    price_source: str | None,
    threshold: float,
) -> PickCheck:
    """Judge one pick: PASS when current/original >= ``threshold`` (0.85 by default).

    A pick with no pre-market price or no morning score is rejected, with the reason.
    Requires: ``original_score`` > 0 (every pick scored >= the pick floor in the evening).
    """
    if price is None:
        return PickCheck(original_score=original_score, current_score=None, retention=None, passed=False,
                         reason="no pre-market price", price=None, price_source=price_source)
    if current_score is None or not math.isfinite(current_score):
        return PickCheck(original_score=original_score, current_score=None, retention=None, passed=False,
                         reason="could not be re-scored", price=price, price_source=price_source)
    retention = current_score / original_score if original_score > 0 else 0.0
    passed = retention >= threshold
    kept, floor = percent_vs(retention, threshold)
    reason = f"kept {kept} of its score" if passed else f"kept {kept} of its score, under {floor}"
    return PickCheck(original_score=original_score, current_score=current_score, retention=retention,
                     passed=passed, reason=reason, price=price, price_source=price_source)


def validate_strategy(strategy: Strategy, checks: Mapping[str, PickCheck], min_names: int) -> ValidatedStrategy:
    """Drop the rejected picks of one strategy and renormalise the survivors' weights to 1.

    Requires: a check for every symbol of ``strategy.allocations``.
    Sets: validation_rate = passed / total (0 for an empty strategy); contestant when at
    least ``min_names`` names survive.
    """
    names = list(strategy.allocations)
    kept = {s: w for s, w in strategy.allocations.items() if checks[s].passed}
    total = sum(kept.values())
    if total > 0:
        validated = {s: w / total for s, w in kept.items()}
    else:
        validated = {s: 1.0 / len(kept) for s in kept} if kept else {}
    rate = len(kept) / len(names) if names else 0.0
    return ValidatedStrategy(
        validated_allocations=validated,
        rejected_tickers=[s for s in names if s not in kept],
        validation_rate=rate,
        contestant=len(kept) >= min_names,
    )


def select_strategy(validated: Mapping[str, ValidatedStrategy], cfg: ValidationConfig) -> tuple[StrategyName, str]:
    """Choose the strategy that held up best; BUY_HOLD is the fallback, never a contestant.

    Highest validation rate among contestants wins; ties go to ``cfg.preference`` order.
    Returns (name, reason in plain words).
    """
    contestants = [n for n in CONTESTANTS if n in validated and validated[n].contestant]
    if not contestants:
        return FALLBACK, f"no strategy kept {cfg.min_names} or more names"
    order: dict[str, int] = {n: i for i, n in enumerate(cfg.preference)}
    best = max(contestants, key=lambda n: (validated[n].validation_rate, -order.get(n, len(order))))
    rate = validated[best].validation_rate
    shown, floor = percent_vs(rate, cfg.min_validation_rate)
    if rate < cfg.min_validation_rate:
        return FALLBACK, f"best validation rate {shown} ({best}) is under {floor}"
    tied = [n for n in contestants if validated[n].validation_rate == rate and n != best]
    why = f"highest validation rate {shown} (at least {floor} needed)"
    if tied:
        why += f", tie with {', '.join(tied)} broken by preference order"
    return best, why
