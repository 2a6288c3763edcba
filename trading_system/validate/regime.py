"""The regime's effect at the morning's selection (DESIGN §11): the evening's regime, recorded in the
plan, may impose a strategy (BUY_HOLD under RISK_OFF) and sets the exposure (the fraction of the
investable equity traded; the rest stays in cash).  A plan without a usable regime (``context``
missing, the regime ``unavailable`` or ``off``) trades as selected, fully invested.
"""

from __future__ import annotations

from trading_system.state.plan import RegimeRecord
from trading_system.validate.gate import percent
from trading_system.vocabulary import StrategyName


def apply_regime(regime: RegimeRecord | None, selected: StrategyName, reason: str) -> tuple[StrategyName, str, float]:
    """(strategy, reason, exposure) once the plan's ``regime`` (``plan.context.regime``) is applied
    to the gate's choice.

    The reason says what the regime changed, so the archive and the printout show why a gate's
    choice was overruled or scaled.  Exposure is a fraction in [0, 1].
    """
    if regime is None or regime.status != "ok":
        return selected, reason, 1.0
    why = "; ".join(regime.reasons)
    if regime.strategy is not None and regime.strategy != selected:
        reason = f"regime {regime.state} ({why}) imposes {regime.strategy}; the gate had chosen {selected}: {reason}"
        selected = regime.strategy
    if regime.exposure < 1.0:
        reason = f"{reason}; regime {regime.state}: exposure {percent(regime.exposure, 0)} of the investable equity"
    return selected, reason, regime.exposure
