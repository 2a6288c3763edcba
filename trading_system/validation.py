"""The morning gate (DESIGN §6): retention, renormalisation, validation rate, selection.

Pure functions on plain mappings; ``pipeline.run_validate`` feeds them the plan and the
morning re-score.  Scores are 0-100 points, retention and weights are fractions.
"""

from __future__ import annotations

import math
from typing import Mapping

from .config import ValidationConfig
from .plan import PickCheck, Strategy, ValidatedStrategy

FALLBACK = "BUY_HOLD"
CONTESTANTS = ("TACTICAL", "SPEC", "ASYM")


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
    reason = (f"kept {retention:.0%} of its score" if passed
              else f"kept {retention:.0%} of its score, under {threshold:.0%}")
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


def select_strategy(validated: Mapping[str, ValidatedStrategy], cfg: ValidationConfig) -> tuple[str, str]:
    """Choose the strategy that held up best; BUY_HOLD is the fallback, never a contestant.

    Highest validation rate among contestants wins; ties go to ``cfg.preference`` order.
    Returns (name, reason in plain words).
    """
    contestants = [n for n in CONTESTANTS if n in validated and validated[n].contestant]
    if not contestants:
        return FALLBACK, f"no strategy kept {cfg.min_names} or more names"
    order = {n: i for i, n in enumerate(cfg.preference)}
    best = max(contestants, key=lambda n: (validated[n].validation_rate, -order.get(n, len(order))))
    rate = validated[best].validation_rate
    if rate < cfg.min_validation_rate:
        return FALLBACK, f"best validation rate {rate:.0%} ({best}) is under {cfg.min_validation_rate:.0%}"
    tied = [n for n in contestants if validated[n].validation_rate == rate and n != best]
    why = f"highest validation rate {rate:.0%}"
    if tied:
        why += f", tie with {', '.join(tied)} broken by preference order"
    return best, why
