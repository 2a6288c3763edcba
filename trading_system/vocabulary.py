"""The field's names, defined once.

The four strategies of DESIGN §5 are a ``StrEnum``: a member *is* its string (``"BUY_HOLD"``), so
plan files, dict keys and printed tables read exactly as before, while the code names them once.
"""

from __future__ import annotations

import re
from enum import StrEnum


class StrategyName(StrEnum):
    """The candidate strategies: BUY_HOLD (the benchmarks, the fallback) and the three contestants."""

    BUY_HOLD = "BUY_HOLD"
    TACTICAL = "TACTICAL"
    SPEC = "SPEC"
    ASYM = "ASYM"


#: Every strategy, in plan order.
STRATEGY_NAMES: tuple[StrategyName, ...] = tuple(StrategyName)
#: The strategies the morning gate chooses among (DESIGN §6).
CONTESTANTS: tuple[StrategyName, ...] = (StrategyName.TACTICAL, StrategyName.SPEC, StrategyName.ASYM)
#: What trades when no contestant holds up: BUY_HOLD is the fallback, never a contestant.
FALLBACK = StrategyName.BUY_HOLD

#: A US equity ticker as the orders accept it: 1-5 capitals and an optional class suffix (BRK.B).
#: A symbol that does not match never reaches a URL (execute) nor a universe (a scanner's find).
SYMBOL_PATTERN = re.compile(r"^[A-Z]{1,5}([.][A-Z]{1,2})?$")
