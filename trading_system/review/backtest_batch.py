"""The backtest's batch engine (DESIGN §12, "Speed"): the nightly cycle's decisions without its files.

The nightly engine (``backtest.py``) calls ``run_prepare`` / ``run_validate`` / ``run_execute``
each night, as cron does, in scratch workspaces: every plan is written, locked, read back and
archived.  This engine makes the same decisions in memory with the same functions:

- evening: every night's scan comes from ``NightlyScans`` (one pass over the panel, the very
  ``panel_metrics`` / ``scan_frame`` of the nightly scan), then the same coverage and history
  checks, ``evening_context`` (regime and earnings gate) and ``plan_strategies`` (the four
  strategies and the plan id) as ``run_prepare``;
- morning: ``morning_scores``, ``judge_picks`` and ``select`` as ``run_validate`` (re-score at the open, the
  retention gate, the regime);
- open: ``traded_weights``, ``sizing_prices`` and ``rebalance_session`` as ``run_execute``,
  against the same ``SimulatedBroker``;

so every plan id, selection, order and mark is the nightly engine's (``tests/test_backtest_batch.py``
compares them over 2020-02/04: the crash, the ODFL and RTX splits, every twin).

What it leaves out, each of which cannot change a decision: the plan file and its lock, the
journals (a plan is executed once, so the journal never recovers an order), the archives,
``scan_results.json``, the pick levels (informational: neither the id nor an order reads them),
the scan summary and the wait for the open (the as-of clock is 09:31, after it).

Not supported (``unsupported`` says why, and ``run_backtest`` then runs the nightly engine):
enabled scanners (their runs fork, keep state and may add names or veto picks).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from trading_system import sessions
from trading_system.broker.simulated import SimulatedBroker
from trading_system.config import Config
from trading_system.execute.rebalance import Journal
from trading_system.execute.run import rebalance_session, sizing_prices, traded_weights
from trading_system.marketdata.cached import CachedSource
from trading_system.prepare.context.build import evening_context, regime_for
from trading_system.prepare.run import check_coverage, check_history, plan_strategies
from trading_system.prepare.scan_batch import NightlyScans
from trading_system.prepare.universe import build_universe
from trading_system.review.backtest_replay import AccountDay
from trading_system.state.plan import RegimeRecord, Strategy
from trading_system.validate.run import MorningScores, judge_picks, morning_scores, select
from trading_system.vocabulary import StrategyName


def unsupported(cfg: Config) -> str | None:
    """Why the batch engine cannot replay ``cfg`` (one clause), or None when it can."""
    if any(e.enabled for e in cfg.scanners):
        return "scanners are configured (their runs fork, keep state and can add or veto names)"
    return None


@dataclasses.dataclass(frozen=True)
class EveningPlan:
    """What the morning and the open read of a night's plan (held in memory, never written).

    ``closes``: the picks' evening closes (dollars; the plan's ``tickers``); ``removed``: the
    picks the earnings gate removed, sorted."""

    plan_id: str
    strategies: dict[StrategyName, Strategy]
    closes: dict[str, float]
    regime: RegimeRecord | None
    removed: list[str]


class BatchNights:
    """The nights of one backtest: scans precomputed in chunks, plans and sessions in memory.

    Requires: ``source`` holding the bars of every night; ``nights`` the scan sessions (the
    session before the first backtest session, then each session but the last), sorted.
    """

    def __init__(self, cfg: Config, source: CachedSource, nights: list[dt.date]):
        self._source = source
        self._universes = {night: build_universe(cfg, source, night).symbols for night in nights}
        self._scans = NightlyScans(source, nights, self._universes, cfg)
        self._morning: tuple[tuple[str, dt.date], MorningScores] | None = None

    def evening(self, cfg: Config, night: dt.date) -> EveningPlan:
        """The plan ``run_prepare`` would write with ``cfg`` as of ``night``'s 20:00 ET.

        Raises:
            DataError / TooLittleHistory: as ``run_prepare`` (coverage, history, a required gate).
        """
        target = sessions.next_session(night)
        universe = self._universes[night]
        scanned = self._scans.night(night)
        check_coverage(scanned.have_bar, universe, night, cfg.data.min_coverage, self._source.name)
        scan = scanned.frame.copy()
        check_history(scan, night, cfg.scoring.lookback, lambda: scanned.first_bar or night)
        context = evening_context(cfg, self._source, scan, night, target, universe)
        plan_id, strategies = plan_strategies(cfg, scan, night, target)
        picks = scan[scan["pick"]]
        closes = dict(zip(picks.index.astype(str).tolist(), picks["close"].astype(float).tolist()))
        return EveningPlan(plan_id=plan_id, strategies=strategies, closes=closes, regime=context.regime,
                           removed=sorted(context.events.removed))

    def without_regime(self, plan: EveningPlan, cfg: Config, night: dt.date) -> EveningPlan:
        """``plan`` with the regime record ``cfg`` gives (``regime.enabled`` false: status ``off``)."""
        return dataclasses.replace(plan, regime=regime_for(cfg, self._source, night))

    def morning_scores(self, cfg: Config, plan: EveningPlan, day: dt.date) -> MorningScores:
        """``plan``'s picks re-scored at ``day``'s open (``morning_scores``); twins trading the same
        plan share it.  Raises DataError: too many picks have no price at the open."""
        key = (plan.plan_id, day)
        if self._morning is None or self._morning[0] != key:
            night = sessions.previous_session(day)
            self._morning = (key, morning_scores(cfg, self._source, plan.strategies, day, night))
        return self._morning[1]

    def morning(self, cfg: Config, plan: EveningPlan, day: dt.date, broker: SimulatedBroker,
                scores: MorningScores | None = None) -> AccountDay:
        """Validate ``plan`` at ``day``'s open (``run_validate``) and trade it (``run_execute``);
        ``scores``: its re-score when already made (by ``EveningWorkers``).

        Raises:
            DataError: too many picks have no price at the open.
            BrokerError / RunFailure: as ``run_execute``.
        """
        checks = judge_picks(cfg, plan.strategies, scores or self.morning_scores(cfg, plan, day))
        validated, selected, _reason, exposure = select(cfg, plan.strategies, checks, plan.regime)
        weights = traded_weights(validated[selected].validated_allocations, exposure)
        report = rebalance_session(cfg, broker, plan.plan_id, weights, sizing_prices(checks, plan.closes), day,
                                   Journal(None))
        return AccountDay(strategy=selected, checks=len(checks), rejected=sum(not c.passed for c in checks.values()),
                          exposure=exposure, report=report)
