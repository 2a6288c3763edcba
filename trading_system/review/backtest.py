"""``prep backtest``: the nightly cycle replayed over history with the simulated broker.

For every session T in [start, end] the cron cycle's decisions are made with a frozen as-of clock:
the scan of the previous session (its 20:00 ET), the morning gate at T 09:00 and the rebalance at
T 09:31, against an in-memory ``SimulatedBroker`` that fills at T's open.  Every account is marked
to market at T's close.  Two engines make them (``ENGINES``), with the same decisions:

- ``nightly``: the very ``run_prepare`` / ``run_validate`` / ``run_execute`` the crontab runs, in
  a scratch workspace per account (plan file, journals, archives);
- ``batch`` (the default; ``backtest_batch``): every night's scan in one pass over the panel, and
  the same functions those commands call, in memory.  ``tests/test_backtest_batch.py`` proves every
  plan id, selection, order and mark identical over 62 sessions of 2020 with every twin.  With
  scanners configured the nightly engine runs instead, and ``result.engine`` says why.

Beside the system run, each in a workspace and a scratch config of its own:

- BUY_HOLD: the benchmark weights (SPY 0.6 / QQQ 0.4) rebalanced every session by the
  same ``execution.rebalance`` code, cash buffer and minimum order;
- with ``gate_off_twin`` (NO_GATE): the same system with the retention gate off (threshold 0).
  The evening scan does not depend on the gate, so it runs once and its plan file is copied
  to the twin's workspace, which then validates and executes it on its own;
- with ``regime_off_twin`` (NO_REGIME): the same system with ``regime.enabled`` false.  The
  regime does not change the evening scan either (prepare only records it in the plan; it acts
  at validate), so the twin's plan is the system's with the record prepare writes when the regime is
  off (``regime_for`` of the twin's config: status ``off``) and the twin's config (``regime_off_plan``;
  tests/test_backtest.py checks it equals the plan ``run_prepare`` writes with that config);
- with ``events_off_twin`` (NO_EVENTS): the same system with ``events.enabled`` false.  The earnings
  gate removes picks before the strategies are built, so the twin runs its own evening scan.

The twins each switch off one thing; the system has everything the user's config has on.
Every night records the regime state of the system's plan (``Night.regime``), the exposure each
account traded, and the picks the system's earnings gate removed.

Speed: the bars are read once into a ``CachedSource`` (split factors rebuilt only when a
newly known split appears; a read repeated at once answered from the last one), and the broker
keeps its account, and an index of its orders by symbol, in memory.  The pre-trade notional guards
are lifted in the scratch config (the absolute caps off, the relative ones at the top of their
ranges: a simulation holds no money).  ``benchmarks/bench_backtest.py`` times both engines.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from trading_system import sessions
from trading_system.broker.simulated import SimulatedBroker
from trading_system.config import Config, PathsConfig
from trading_system.errors import BadInputError, RunFailure
from trading_system.execute.run import run_execute
from trading_system.marketdata.cached import CachedSource
from trading_system.marketdata.store import BarStore
from trading_system.prepare.context.build import regime_for
from trading_system.prepare.run import run_prepare
from trading_system.review import metrics
from trading_system.review.backtest_batch import BatchNights, EveningPlan, unsupported
from trading_system.review.backtest_replay import (
    AccountDay,
    Replay,
    Step,
    SystemNight,
    at,
    replay_nights,
)
from trading_system.review.backtest_result import (  # noqa: F401 (re-exported: the accounts' names)
    ACCOUNTS,
    BUY_HOLD,
    NO_EVENTS,
    NO_GATE,
    NO_REGIME,
    REGIME_STATES,
    SYSTEM,
    BacktestResult,
    Night,
)
from trading_system.review.backtest_workers import EveningWorkers, can_fork
from trading_system.state.plan import Plan, load_plan, save_plan
from trading_system.validate.run import run_validate

#: The backtest's engines: ``batch`` (``backtest_batch``, in memory, the scans in one pass) and
#: ``nightly`` (the cron path's ``run_*`` functions with their files, night by night).
ENGINES = ("batch", "nightly")


def fast_tmp() -> str | None:
    """A RAM-backed temp folder when there is one (``/dev/shm``): fsync there costs nothing."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and shm.stat().st_mode & 0o002 else None


def scratch_config(cfg: Config, folder: Path, retention_threshold: float, regime_off: bool = False,
                   events_off: bool = False) -> Config:
    """``cfg`` with every state path inside ``folder``, the given gate and the pre-trade limits lifted;
    ``regime.enabled`` / ``events.enabled`` false when ``regime_off`` / ``events_off``.

    The data, universe, scoring, strategies, market context and execution sizing are the user's own.
    """
    paths = PathsConfig(plan=str(folder / "pending_trades.json"), archive_dir=str(folder / "archived_trades"),
                        data_dir=str(folder / "data"), log_dir=str(folder / "logs"),
                        kill_switch=str(folder / "KILL_SWITCH"))
    execution = cfg.execution.model_copy(update={"max_order_notional": None, "max_run_notional": None,
                                                 "max_order_fraction": 1.0, "max_run_turnover": 4.0})
    validation = cfg.validation.model_copy(update={"retention_threshold": retention_threshold})
    update = {"paths": paths, "execution": execution, "validation": validation}
    if regime_off:
        update["regime"] = cfg.regime.model_copy(update={"enabled": False})
    if events_off:
        update["events"] = cfg.events.model_copy(update={"enabled": False})
    return cfg.model_copy(update=update)


def regime_off_plan(plan: Plan, cfg: Config, source: CachedSource) -> Plan:
    """The plan ``run_prepare`` writes with ``cfg`` (``regime.enabled`` false) on the night of ``plan``,
    a plan the system's prepare wrote on that night: the same scan, strategies and earnings gate (the
    regime does not change them), with the regime record of ``cfg`` (``regime_for``: status ``off``,
    nothing read) and ``cfg`` as the plan's config."""
    context = plan.context
    if context is not None:
        context = context.model_copy(update={"regime": regime_for(cfg, source, plan.scan_session)})
    return plan.model_copy(update={"context": context, "config": cfg.public_dict()})


def default_source(cfg: Config) -> CachedSource:
    """The configured bar store (``data.sample_dir`` for the sample source, else ``data.store_dir``), in memory."""
    root = cfg.data.sample_dir if cfg.data.source == "sample" else cfg.data.store_dir
    return CachedSource.from_store(BarStore(cfg.path(root)), name=cfg.data.source)


def _check_coverage(source: CachedSource, first_scan: dt.date, last: dt.date, benchmarks: list[str]) -> None:
    first, newest = source.first_date(), source.last_date()
    if first_scan < first or last > newest:
        raise BadInputError(f"the backtest needs bars from {first_scan} (the scan before its first session) "
                            f"to {last}, but the data covers {first} to {newest}; pick --start/--end inside it.")
    for sym in benchmarks:
        span = source.symbol_dates(sym)
        if span is None or span[0] > first_scan or span[1] < last:
            have = "no bars" if span is None else f"bars from {span[0]} to {span[1]}"
            raise BadInputError(f"BUY_HOLD needs {sym} over the whole backtest but the data has {have}; "
                                "pick --start/--end inside that range.")


def run_backtest(cfg: Config, start: dt.date, end: dt.date, source: CachedSource | None = None,
                 gate_off_twin: bool = False, on_step: Step | None = None,
                 workdir: Path | None = None, regime_off_twin: bool = False,
                 events_off_twin: bool = False, engine: str = "batch", workers: int = 0) -> BacktestResult:
    """Replay prepare -> validate -> execute for every session in [start, end].

    Requires: bars (and splits) from the session before ``start`` to ``end`` in ``source``
    (default: the configured store, read once); the benchmarks' bars over that span.
    ``source`` must also answer the store reads of the simulated broker (``CachedSource`` does).
    ``on_step(stage, as_of, sessions_done, sessions_total)`` is called before each stage
    (``prepare``, ``validate``, ``execute``) and once per finished session (``marked``).
    ``workdir``: where the scratch workspaces go (default a temporary folder, removed after), one
    folder per account (``system``, ``no_gate``, ``no_regime``, ``no_events``, ``buy_hold``).
    ``gate_off_twin`` / ``regime_off_twin`` / ``events_off_twin`` add NO_GATE / NO_REGIME / NO_EVENTS.
    ``engine``: ``batch`` (default; the nightly engine instead when ``backtest_batch.unsupported``
    says why, and ``result.engine`` says so) or ``nightly``: the same decisions either way.
    ``workers``: processes the batch engine computes the evenings on ahead (0: none, in this
    process; a sweep's trial, already on a worker, passes 0); at most one a chunk of ``CHUNK``
    nights, none for a backtest of one chunk.  The decisions do not depend on it.
    Sets: a ``BacktestResult`` with equity curves of SYSTEM, the twins asked for and BUY_HOLD in dollars.

    Raises:
        BadInputError: empty or reversed range, a range outside the data, an unknown ``engine``.
        PrepError: a night failed (its message names the session).
    """
    t0 = time.perf_counter()
    if engine not in ENGINES:
        raise BadInputError(f"unknown backtest engine {engine!r}; use one of {', '.join(ENGINES)}.")
    why_not = unsupported(cfg) if engine == "batch" else None
    used = "nightly" if why_not else engine
    days = _backtest_sessions(start, end)
    first_scan = sessions.previous_session(days[0])
    source = source or default_source(cfg)
    benchmarks = dict(cfg.strategies.benchmarks)
    _check_coverage(source, first_scan, days[-1], list(benchmarks))
    owned_tmp = None
    if workdir is None:
        owned_tmp = tempfile.TemporaryDirectory(prefix="prep-backtest-", dir=fast_tmp())
        workdir = Path(owned_tmp.name)
    try:
        twins = [name for name, on in ((NO_GATE, gate_off_twin), (NO_REGIME, regime_off_twin),
                                       (NO_EVENTS, events_off_twin)) if on]
        replay = _replay_context(cfg, workdir, twins, source, benchmarks, days[0],
                                 on_step or (lambda *a: None), len(days))
        nights = (_batch(replay, first_scan, days, workers) if used == "batch"
                  else _nightly(replay, first_scan, days))
    finally:
        if owned_tmp is not None:
            owned_tmp.cleanup()
    equity = pd.DataFrame(replay.marks, index=pd.Index([first_scan, *days], name="session"))
    equity = equity[[c for c in ACCOUNTS if c in equity.columns]]
    paid = pd.DataFrame(replay.costs, index=equity.index)[list(equity.columns)]
    figures = {name: {**metrics.summary(equity[name], replay.totals[name][0], replay.totals[name][1],
                                        cfg.scoring.risk_free_rate),
                      **_cost_figures(equity[name], replay.brokers[name])} for name in equity.columns}
    context_file = source.context_file
    index_file = str(context_file) if context_file is not None and Path(context_file).is_file() else None
    return BacktestResult(start=days[0], end=days[-1], data_source=source.name, equity=equity, figures=figures,
                          nights=nights, seconds=time.perf_counter() - t0, index_file=index_file,
                          gross=equity + paid, engine=f"nightly ({why_not})" if why_not else used)


def _cost_figures(equity: pd.Series, broker: SimulatedBroker) -> dict[str, float]:
    """What an account paid (dollars: ``commission``, ``slippage``, ``costs``) and its equity before
    them: ``gross_end_equity`` = the end equity plus the costs paid (what was paid earns nothing
    here: a simple, conservative gross), ``gross_total_return`` a fraction."""
    paid = broker.costs_paid
    costs = paid["commission"] + paid["slippage"]
    gross_end = float(equity.iloc[-1]) + costs
    return {"commission": paid["commission"], "slippage": paid["slippage"], "costs": costs,
            "gross_end_equity": gross_end, "gross_total_return": gross_end / float(equity.iloc[0]) - 1.0}


def _backtest_sessions(start: dt.date, end: dt.date) -> list[dt.date]:
    """The trading sessions in [start, end]; BadInputError when the range is reversed or has none."""
    if start > end:
        raise BadInputError(f"--start {start} is after --end {end}; swap them.")
    days = sessions.sessions_between(start, end)
    if not days:
        raise BadInputError(f"there is no trading session between {start} and {end}; widen the range.")
    return days


def _replay_context(cfg: Config, workdir: Path, twins: list[str], source: CachedSource,
                    benchmarks: dict[str, float], first_day: dt.date, step: Step, total: int) -> Replay:
    """The scratch configs under ``workdir`` and a simulated broker per account, each holding the starting cash."""
    cash = cfg.broker.simulated.starting_cash
    gate = cfg.validation.retention_threshold
    made = {SYSTEM: lambda: scratch_config(cfg, workdir / "system", gate),
            NO_GATE: lambda: scratch_config(cfg, workdir / "no_gate", 0.0),
            NO_REGIME: lambda: scratch_config(cfg, workdir / "no_regime", gate, regime_off=True),
            NO_EVENTS: lambda: scratch_config(cfg, workdir / "no_events", gate, events_off=True)}
    configs = {name: make() for name, make in made.items() if name == SYSTEM or name in twins}
    bh_cfg = scratch_config(cfg, workdir / "buy_hold", cfg.validation.retention_threshold)
    # Every account, BUY_HOLD included, pays the configured costs (costs:, DESIGN §12).
    brokers = {name: SimulatedBroker(source, None, first_day, cash, cfg.costs.commission_per_order,
                                     cfg.costs.slippage_bps) for name in [*configs, BUY_HOLD]}
    return Replay(configs=configs, bh_cfg=bh_cfg, brokers=brokers, benchmarks=benchmarks,
                  plan_file={name: c.path(c.paths.plan) for name, c in configs.items()},
                  source=source, step=step, total=total,
                  marks={name: [cash] for name in brokers}, totals={name: [0.0, 0.0] for name in brokers},
                  costs={name: [0.0] for name in brokers})


def _nightly(replay: Replay, first_scan: dt.date, days: list[dt.date]) -> list[Night]:
    """The nightly engine: ``run_prepare`` / ``run_validate`` / ``run_execute`` in the scratch workspaces."""

    def prepare(name: str, night: dt.date) -> None:
        run_prepare(replay.configs[name], at(night, 20, 0), source=replay.source)

    def session(day: dt.date, i: int) -> tuple[dict[str, AccountDay], SystemNight]:
        _twin_plans(replay)
        accounts, system = {}, SystemNight("", None, [])
        for name, c in replay.configs.items():
            replay.step("validate", at(day, 9, 0).now(), i, replay.total)
            v = run_validate(c, at(day, 9, 0), source=replay.source)
            vr = v.plan.validation_results
            assert vr is not None  # run_validate always sets it (a dry run too)
            if name == SYSTEM:
                context = v.plan.context
                system = SystemNight(v.plan.plan_id, context.regime if context is not None else None,
                                     sorted(context.events.removed) if context is not None else [])
            replay.step("execute", at(day, 9, 31).now(), i, replay.total)
            ex = run_execute(c, at(day, 9, 31), broker=replay.brokers[name])
            accounts[name] = AccountDay(strategy=ex.strategy, checks=len(vr.checks),
                                        rejected=sum(not chk.passed for chk in vr.checks.values()),
                                        exposure=vr.exposure, report=ex.report)
        return accounts, system

    return replay_nights(replay, first_scan, days, prepare, session)


def _batch(replay: Replay, first_scan: dt.date, days: list[dt.date], workers: int) -> list[Night]:
    """The batch engine (``backtest_batch``): the same decisions in memory, a chunk of nights at a time,
    computed ahead on ``workers`` forked processes (``backtest_workers``) when there are any."""
    scanning = {name: replay.configs[name] for name in replay.scans}
    batch = BatchNights(replay.configs[SYSTEM], replay.source, [first_scan, *days[:-1]], scanning, days[-1])
    # Workers pay only when a chunk can be computed ahead while this process trades the one before:
    # a backtest of one chunk stays here, and no more workers than chunks are started.
    workers = min(workers, len(batch.chunks)) if len(batch.chunks) > 1 else 0
    plans: dict[str, EveningPlan] = {}

    def prepare(name: str, night: dt.date) -> None:
        plans[name] = batch.evening(name, night)

    def session(day: dt.date, i: int) -> tuple[dict[str, AccountDay], SystemNight]:
        accounts = {}
        night = sessions.previous_session(day)
        for name, c in replay.configs.items():
            plan = plans[name] if name in replay.scans else plans[SYSTEM]
            if name == NO_REGIME:
                plan = batch.without_regime(plan, c, night)
            replay.step("validate", at(day, 9, 0).now(), i, replay.total)
            replay.step("execute", at(day, 9, 31).now(), i, replay.total)
            accounts[name] = batch.morning(c, plan, day, replay.brokers[name], batch.scores(plan.plan_id, day, night))
        system = plans[SYSTEM]
        return accounts, SystemNight(system.plan_id, system.regime, system.removed)

    with EveningWorkers(batch, workers) if workers and can_fork() else contextlib.nullcontext():
        return replay_nights(replay, first_scan, days, prepare, session)


def _twin_plans(replay: Replay) -> None:
    """The evening plan of each twin without a scan of its own: the system's, copied (NO_GATE) or with
    the regime switched off (NO_REGIME, ``regime_off_plan``)."""
    plan_file = replay.plan_file
    for name in replay.configs:
        if name in replay.scans:
            continue
        plan_file[name].parent.mkdir(parents=True, exist_ok=True)
        if name == NO_REGIME:
            plan = load_plan(plan_file[SYSTEM])
            if plan is None:
                raise RunFailure(f"the system's plan {plan_file[SYSTEM]} is missing; the backtest cannot go on.")
            save_plan(plan_file[name], regime_off_plan(plan, replay.configs[name], replay.source))
        else:
            shutil.copyfile(plan_file[SYSTEM], plan_file[name])
