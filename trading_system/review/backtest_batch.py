"""The backtest's batch engine (DESIGN §12, "Speed"): the nightly cycle's decisions without its files.

The nightly engine (``backtest.py``) calls ``run_prepare`` / ``run_validate`` / ``run_execute``
each night, as cron does, in scratch workspaces: every plan is written, locked, read back and
archived.  This engine makes the same decisions in memory with the same functions:

- evening: every night's scan comes from ``NightlyScans`` (one pass over the panel, the very
  ``panel_metrics`` / ``scan_frame`` of the nightly scan), then the same coverage and history
  checks, ``evening_context`` (regime and earnings gate) and ``plan_strategies`` (the four
  strategies and the plan id) as ``run_prepare``;
- morning: ``morning_quotes``, the re-score at the open (``NightlyScans.rescore``: the same
  ``panel_metrics``, a chunk of mornings at once), ``judge_picks`` (the retention gate) and
  ``select`` (the regime) as ``run_validate``;
- open: ``traded_weights``, ``sizing_prices`` and ``rebalance_session`` as ``run_execute``,
  against the same ``SimulatedBroker``;

so every plan id, selection, order and mark is the nightly engine's (``tests/test_backtest_batch.py``
compares them over 2020-02/04: the crash, the ODFL and RTX splits, every twin).  The evenings and
re-scores, which no account changes, are computed a chunk of nights at a time, here or ahead on
worker processes (``backtest_workers``); the sessions are traded one by one, here.

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
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from trading_system import sessions
from trading_system.broker.simulated import SimulatedBroker
from trading_system.config import Config, RegimeConfig
from trading_system.errors import PrepError
from trading_system.execute.rebalance import Journal
from trading_system.execute.run import rebalance_session, sizing_prices, traded_weights
from trading_system.marketdata.base import Quote
from trading_system.marketdata.cached import CachedSource
from trading_system.prepare.context.build import evening_context, regime_for, regimes_for
from trading_system.prepare.run import check_coverage, check_history, plan_strategies
from trading_system.prepare.scan_batch import CHUNK, NightlyScans, RescoreJob
from trading_system.prepare.universe import build_universe
from trading_system.review.backtest_replay import AccountDay
from trading_system.state.plan import RegimeRecord, Strategy
from trading_system.validate.run import MorningScores, judge_picks, morning_quotes, select
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


#: A night's outcome: an ``EveningPlan`` / ``MorningScores``, or the ``PrepError`` computing it raised.
Outcome = Any
#: What a chunk of nights gives: per night, each scanning account's evening, and the next morning's
#: re-score of each plan, keyed (plan id, session).
ChunkResult = list[tuple[dt.date, dict[str, Outcome], dict[tuple[str, dt.date], Outcome]]]


class BatchNights:
    """The nights of one backtest, computed a chunk (``CHUNK`` nights) at a time: the scans in one
    pass, each scanning account's evening, and the next morning's re-scores in one pass too; the
    sessions (validate and trade) one by one, in memory.

    Requires: ``source`` holding the bars of every night; ``nights`` the scan sessions (the session
    before the first backtest session, then each session but the last), sorted; ``configs`` the
    accounts that scan their own evening (account -> config); ``last_day`` the last session.
    A failure of a night is kept and raised when that night's plan (or re-score) is asked for, as
    the nightly engine raises it.  ``fetch(i)`` gives chunk i's results: computed here, or by
    ``backtest_workers.EveningWorkers``, which replaces it.
    """

    def __init__(self, cfg: Config, source: CachedSource, nights: list[dt.date], configs: Mapping[str, Config],
                 last_day: dt.date):
        self._source, self._configs, self._last_day = source, dict(configs), last_day
        self._universes = {night: build_universe(cfg, source, night).symbols for night in nights}
        self._scans = NightlyScans(source, nights, self._universes, cfg)
        self.chunks = [nights[i:i + CHUNK] for i in range(0, len(nights), CHUNK)]
        self._chunk_of = {night: i // CHUNK for i, night in enumerate(nights)}
        self._plans: dict[tuple[str, dt.date], Outcome] = {}
        self._scores: dict[tuple[str, dt.date], Outcome] = {}
        self._taken: set[int] = set()
        self.fetch: Callable[[int], ChunkResult] = lambda i: self.compute(self.chunks[i])

    def evening(self, name: str, night: dt.date) -> EveningPlan:
        """Account ``name``'s plan of ``night``.  Raises what computing it raised (DataError,
        TooLittleHistory...: as ``run_prepare``)."""
        return self._outcome(self._plans, (name, night), night)

    def scores(self, plan_id: str, day: dt.date, night: dt.date) -> MorningScores:
        """The re-score of plan ``plan_id`` (made on ``night``) at ``day``'s open.  Raises DataError:
        too many picks have no price at the open."""
        return self._outcome(self._scores, (plan_id, day), night)

    def _outcome(self, store: dict[tuple[str, dt.date], Outcome], key: tuple[str, dt.date], night: dt.date) -> Any:
        index = self._chunk_of[night]
        if index not in self._taken:
            for each_night, plans, scores in self.fetch(index):
                self._plans.update({(name, each_night): plan for name, plan in plans.items()})
                self._scores.update(scores)
            self._taken.add(index)
        value = store[key]
        if isinstance(value, PrepError):
            raise value
        return value

    def compute(self, nights: list[dt.date]) -> ChunkResult:
        """The evenings of ``nights`` for every scanning account (the nights' regimes computed together,
        ``regimes_for``; a night whose regime is unavailable and required fails alone), then the next
        mornings' re-scores of their plans in one pass (``NightlyScans.rescore``), as ``morning_scores``
        makes them (their ``history`` left empty: the batch engine reads only the quotes and the scores)."""
        out: ChunkResult = []
        wanted: dict[tuple[str, dt.date], EveningPlan] = {}
        by_settings: dict[RegimeConfig, dict[dt.date, RegimeRecord]] = {}   # the system and NO_EVENTS share one
        for cfg in self._configs.values():
            if cfg.regime not in by_settings:
                by_settings[cfg.regime] = dict(zip(nights, regimes_for(cfg, self._source, nights)))
        regimes = {name: by_settings[cfg.regime] for name, cfg in self._configs.items()}
        for night in nights:
            plans: dict[str, Outcome] = {}
            for name, cfg in self._configs.items():
                try:
                    plans[name] = plan = self.plan(cfg, night, regimes[name][night])
                except PrepError as exc:
                    plans[name] = exc
                    continue
                day = sessions.next_session(night)
                if day <= self._last_day:
                    wanted.setdefault((plan.plan_id, day), plan)
            out.append((night, plans, {}))
        scores = self._rescore(wanted)
        for night, _plans, mine in out:
            mine.update({key: value for key, value in scores.items() if sessions.previous_session(key[1]) == night})
        return out

    def _rescore(self, wanted: dict[tuple[str, dt.date], EveningPlan]) -> dict[tuple[str, dt.date], Outcome]:
        cfg = next(iter(self._configs.values()))   # the accounts share the scoring and price settings
        out: dict[tuple[str, dt.date], Outcome] = {}
        priced: list[tuple[tuple[str, dt.date], dict[str, Quote]]] = []
        for key, plan in wanted.items():
            try:
                priced.append((key, morning_quotes(cfg, self._source, plan.strategies, key[1])))
            except PrepError as exc:
                out[key] = exc
        jobs = [RescoreJob(sessions.previous_session(day), day, {s: q.price for s, q in quotes.items()})
                for (_plan_id, day), quotes in priced]
        for (key, quotes), scores in zip(priced, self._scans.rescore(jobs)):
            out[key] = MorningScores(quotes=quotes, scores=scores, history=pd.DataFrame())
        return out

    def plan(self, cfg: Config, night: dt.date, regime: RegimeRecord | None = None) -> EveningPlan:
        """The plan ``run_prepare`` would write with ``cfg`` as of ``night``'s 20:00 ET (``regime``: its
        record when computed ahead, ``regimes_for``; else computed here).

        Raises:
            DataError / TooLittleHistory: as ``run_prepare`` (coverage, history, a required gate).
        """
        target = sessions.next_session(night)
        universe = self._universes[night]
        scanned = self._scans.night(night)
        check_coverage(scanned.have_bar, universe, night, cfg.data.min_coverage, self._source.name)
        scan = scanned.frame.copy()
        check_history(scan, night, cfg.scoring.lookback, lambda: scanned.first_bar or night)
        context = evening_context(cfg, self._source, scan, night, target, universe, regime)
        plan_id, strategies = plan_strategies(cfg, scan, night, target)
        pick = scan["pick"].to_numpy(dtype=bool)
        closes = dict(zip(scan.index[pick].astype(str).tolist(), scan["close"].to_numpy(dtype=float)[pick].tolist()))
        return EveningPlan(plan_id=plan_id, strategies=strategies, closes=closes, regime=context.regime,
                           removed=sorted(context.events.removed))

    def without_regime(self, plan: EveningPlan, cfg: Config, night: dt.date) -> EveningPlan:
        """``plan`` with the regime record ``cfg`` gives (``regime.enabled`` false: status ``off``)."""
        return dataclasses.replace(plan, regime=regime_for(cfg, self._source, night))

    def morning(self, cfg: Config, plan: EveningPlan, day: dt.date, broker: SimulatedBroker,
                scores: MorningScores) -> AccountDay:
        """Validate ``plan`` at ``day``'s open with its re-score ``scores`` (``run_validate``) and
        trade it (``run_execute``).

        Raises:
            BrokerError / RunFailure: as ``run_execute``.
        """
        checks = judge_picks(cfg, plan.strategies, scores)
        validated, selected, _reason, exposure = select(cfg, plan.strategies, checks, plan.regime)
        weights = traded_weights(validated[selected].validated_allocations, exposure)
        report = rebalance_session(cfg, broker, plan.plan_id, weights, sizing_prices(checks, plan.closes), day,
                                   Journal(None))
        return AccountDay(strategy=selected, checks=len(checks), rejected=sum(not c.passed for c in checks.values()),
                          exposure=exposure, report=report)
