"""``prep validate`` (09:00 ET): re-score the picks with pre-market prices, apply the retention
gate, select the strategy and record it in the plan.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping

import pandas as pd

from trading_system import sessions
from trading_system.config import Config
from trading_system.errors import DataError, PlanError
from trading_system.marketdata.base import MarketData, Quote
from trading_system.prepare.discovery import HISTORY_DAYS
from trading_system.prepare.scoring import rescore
from trading_system.runtime import make_source
from trading_system.state.journal import Journal
from trading_system.state.pending import morning_plan
from trading_system.state.plan import (
    PickCheck,
    Plan,
    RegimeRecord,
    Strategy,
    ValidatedStrategy,
    ValidationResults,
    plan_lock,
    save_plan,
)
from trading_system.validate.gate import check_pick, select_strategy, validate_strategy
from trading_system.validate.regime import apply_regime
from trading_system.validate.vetoes import apply_vetoes, morning_scan, with_morning
from trading_system.vocabulary import StrategyName

log = logging.getLogger(__name__)

@dataclasses.dataclass
class ValidateResult:
    """The morning gate: the plan with its ``validation_results``, and whether it was saved."""

    plan: Plan
    written: bool
    plan_path: str
    scanner_lines: list[str] = dataclasses.field(default_factory=list)   # each morning scanner problem



def run_validate(cfg: Config, clock: sessions.Clock, dry_run: bool = False,
                 source: MarketData | None = None) -> ValidateResult:
    """Re-score the picks with pre-market prices, apply the retention gate, select a strategy.

    Requires: a pending plan for today's session, and a pre-market price for all but at
    most ``validation.max_unpriced_fraction`` of the picks.
    Sets: ``validation_results`` in the plan (not in a dry run).

    Raises:
        PlanError: orders were already sent for this plan (its journal has intents): a second
            validation could pick another strategy and undo them; ``execute`` finishes it instead.
        DataError: no price source answered, or too many picks have no price: a missing price
            is a data failure, not a verdict on the pick, so the plan is left unvalidated
            (and ``execute`` sends nothing for it).
    """
    plan_path = cfg.path(cfg.paths.plan)
    with plan_lock(plan_path):
        plan, today = morning_plan(cfg, clock)
        journal = cfg.path(cfg.paths.data_dir) / "orders" / f"{plan.plan_id}.jsonl"
        if not dry_run and Journal(journal).intents():
            raise PlanError(f"orders were already sent for plan {plan.plan_id} ({journal}), so it is not validated "
                            "again (a new choice could undo them): run 'prep execute' to finish it.")
        now = clock.now()
        source = source or make_source(cfg, clock)
        last_closed = sessions.last_closed_session(now)
        morning = morning_scores(cfg, source, plan.strategies, today, last_closed)
        checks = judge_picks(cfg, plan.strategies, morning)
        outcome = morning_scan(cfg, morning.history, {s: q.price for s, q in morning.quotes.items()}, last_closed,
                               now, record=not dry_run)
        vetoed = apply_vetoes(checks, outcome)
        regime = plan.context.regime if plan.context is not None else None
        validated, selected, reason, exposure = select(cfg, plan.strategies, checks, regime)
        plan = plan.model_copy(update={"validation_results": ValidationResults(
            validation_time=now, selected_strategy=selected, selection_reason=reason,
            validated_strategies=validated, checks=checks, dry_run=dry_run, exposure=exposure),
            "scanners": with_morning(plan, outcome, vetoed)})
        if not dry_run:
            save_plan(plan_path, plan)
    return ValidateResult(plan=plan, written=not dry_run, plan_path=str(plan_path),
                          scanner_lines=list(outcome.lines) if outcome is not None else [])


@dataclasses.dataclass(frozen=True)
class MorningScores:
    """The picks' morning re-score: their pre-market ``quotes`` (dollars), the ``scores`` (0-100
    points; a pick without one is absent) and the ``history`` the re-score read (long bars)."""

    quotes: dict[str, Quote]
    scores: dict[str, float]
    history: pd.DataFrame


def morning_scores(cfg: Config, source: MarketData, strategies: Mapping[StrategyName, Strategy], today: dt.date,
                   last_closed: dt.date) -> MorningScores:
    """Re-score every pick of the contestant strategies with its pre-market price (DESIGN §6).

    ``history`` is the picks' bars of the ``HISTORY_DAYS`` up to ``last_closed``, split-adjusted
    through ``today``; the quotes are the source's pre-market prices.

    Raises:
        DataError: too many picks have no price (see :func:`_check_priced`).
    """
    quotes = morning_quotes(cfg, source, strategies, today)
    symbols = _contested(strategies)
    history = source.bars(end=last_closed, start=last_closed - dt.timedelta(days=HISTORY_DAYS),
                          symbols=symbols, adjust_through=today)
    morning = rescore(history, {s: q.price for s, q in quotes.items()}, today, cfg.scoring)
    return MorningScores(quotes=quotes, history=history,
                         scores={s: float(v) for s, v in morning["score"].items() if pd.notna(v)})


def morning_quotes(cfg: Config, source: MarketData, strategies: Mapping[StrategyName, Strategy],
                   today: dt.date) -> dict[str, Quote]:
    """The source's pre-market prices (dollars) of the contestant strategies' picks on ``today``.

    Raises:
        DataError: too many picks have no price (see :func:`_check_priced`).
    """
    symbols = _contested(strategies)
    quotes = source.premarket_prices(symbols, today)
    _check_priced(symbols, quotes, cfg.validation.max_unpriced_fraction)
    return quotes


def judge_picks(cfg: Config, strategies: Mapping[StrategyName, Strategy], morning: MorningScores
                ) -> dict[str, PickCheck]:
    """Each contestant pick judged against its evening score by the retention gate (``check_pick``)."""
    contest = [s for n, s in strategies.items() if n != StrategyName.BUY_HOLD]
    checks = {}
    for s in _contested(strategies):
        original = next(st.original_scores[s] for st in contest if s in st.allocations)
        assert original is not None  # Plan._consistent: every pick of a contestant has an evening score
        q = morning.quotes.get(s)
        checks[s] = check_pick(original, morning.scores.get(s), q.price if q else None, q.source if q else None,
                               cfg.validation.retention_threshold)
    return checks


def _contested(strategies: Mapping[StrategyName, Strategy]) -> list[str]:
    """The picks of the contestant strategies (every strategy but BUY_HOLD), sorted."""
    return sorted({sym for n, s in strategies.items() if n != StrategyName.BUY_HOLD for sym in s.allocations})


def select(cfg: Config, strategies: Mapping[StrategyName, Strategy], checks: Mapping[str, PickCheck],
           regime: RegimeRecord | None) -> tuple[dict[str, ValidatedStrategy], StrategyName, str, float]:
    """(validated strategies, the strategy to trade, why, exposure as a fraction): each contestant
    keeps its picks that passed ``checks``, the gate selects (``select_strategy``: BUY_HOLD as the
    fallback), then the evening's ``regime`` may impose a strategy and scale the exposure."""
    validated: dict[str, ValidatedStrategy] = {  # str keys, as ValidationResults.validated_strategies
        n: validate_strategy(s, checks, cfg.validation.min_names)
        for n, s in strategies.items() if n != StrategyName.BUY_HOLD}
    bh = strategies[StrategyName.BUY_HOLD].allocations
    validated[StrategyName.BUY_HOLD] = ValidatedStrategy(validated_allocations=dict(bh), rejected_tickers=[],
                                                         validation_rate=1.0, contestant=False)
    selected, reason = select_strategy(validated, cfg.validation)
    selected, reason, exposure = apply_regime(regime, selected, reason)
    return validated, selected, reason, exposure


def _check_priced(symbols: list[str], quotes: dict, max_unpriced: float) -> None:
    """Stop when more than ``max_unpriced`` (fraction) of ``symbols`` have no quote.

    Raises:
        DataError: naming how many picks are unpriced and the setting.
    """
    unpriced = [s for s in symbols if s not in quotes]
    if symbols and len(unpriced) / len(symbols) > max_unpriced:
        shown = ", ".join(unpriced[:8]) + (f" and {len(unpriced) - 8} more" if len(unpriced) > 8 else "")
        raise DataError(f"{len(unpriced)} of {len(symbols)} picks ({len(unpriced) / len(symbols):.1%}) have no "
                        f"pre-market price ({shown}), over validation.max_unpriced_fraction "
                        f"{max_unpriced:.1%}; the plan was left unvalidated, so nothing will be traded: check the "
                        "price source and run 'prep validate' again.")
