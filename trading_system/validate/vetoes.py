"""The morning scanners (DESIGN §10): ``phase: morning`` scanners run at ``validate`` on the picks,
with their pre-market prices; a pick that a ``veto`` scanner finds is rejected with its reason.

The context's session is the last closed session (the picks' bars up to its close, on the split
basis of the session being traded) and ``premarket`` holds the morning's price of each priced
pick, in dollars.  A scanner that fails vetoes nothing: the run goes on, with one line.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from trading_system.config import Config
from trading_system.prepare.discovery import scan_context
from trading_system.prepare.scanners.record import scanners_dir
from trading_system.prepare.scanners.runner import ScanOutcome, run_scanners
from trading_system.state.plan import PickCheck, Plan, ScannerRunRecord, ScannersRecord


def morning_scan(cfg: Config, history: pd.DataFrame, prices: dict[str, float], last_closed: dt.date,
                 now: dt.datetime, record: bool) -> ScanOutcome | None:
    """Run the enabled morning scanners on the picks; None when there are none.

    ``history``: the picks' long bars dated <= ``last_closed``; ``prices``: pick -> pre-market
    price (dollars).  ``record``: write the scanners' state and stats (False for a dry run).
    """
    if not any(e.enabled and e.phase == "morning" for e in cfg.scanners):
        return None
    ctx = scan_context(cfg, history, last_closed, now, "morning", universe=sorted(prices), premarket=prices)
    state = scanners_dir(cfg.path(cfg.paths.data_dir)) if record else None
    return run_scanners(cfg.scanners, ctx, state_dir=state)


def apply_vetoes(checks: dict[str, PickCheck], outcome: ScanOutcome | None) -> dict[str, str]:
    """Fail the check of every pick a ``veto`` scanner found, in place; returns pick -> the reason."""
    if outcome is None:
        return {}
    vetoed = {s: why for s, why in outcome.reasons("veto").items() if s in checks}
    for s, why in vetoed.items():
        checks[s] = checks[s].model_copy(update={"passed": False, "reason": f"vetoed by scanner {why}"})
    return vetoed


def with_morning(plan: Plan, outcome: ScanOutcome | None, vetoed: dict[str, str]) -> ScannersRecord | None:
    """The plan's scanners record with the morning's runs and vetoes added (unchanged when none ran)."""
    if outcome is None:
        return plan.scanners
    base = plan.scanners or ScannersRecord()
    return base.model_copy(update={"morning": [ScannerRunRecord(**r.summary()) for r in outcome.runs],
                                   "vetoed": vetoed})
