"""``prep backtest``: the nightly cycle replayed over history with the simulated broker.

For every session T in [start, end] the very same pipeline functions the crontab runs
are called, each with a frozen as-of clock:

- ``run_prepare`` as of the previous session's 20:00 ET (the scan of that session),
- ``run_validate`` as of T 09:00 and ``run_execute`` as of T 09:31,

in a scratch workspace (plan file, journals, archives), against an in-memory
``SimulatedBroker`` that fills at T's open.  Every account is marked to market at T's close.
Beside the system run two twins:

- BUY_HOLD: the benchmark weights (SPY 0.6 / QQQ 0.4) rebalanced every session by the
  same ``execution.rebalance`` code, cash buffer and minimum order;
- with ``gate_off_twin``: the same system with the retention gate off (threshold 0).  The
  evening scan does not depend on the gate, so it runs once and its plan file is copied
  to the twin's workspace, which then validates and executes it on its own.

Speed: the bars are read once into a ``CachedSource`` (split factors rebuilt only when a
newly known split appears; a read repeated at once, as the twin's validate does, answered
from the last one), and the broker keeps its account, and an index of its orders by symbol,
in memory.  The pre-trade notional guards are lifted in the scratch config (the absolute caps
off, the relative ones at the top of their ranges: a simulation holds no money); the per-night
code path is otherwise the cron path, and it is that shared
code that is kept fast (~55 ms a night for the three accounts on a 2-core machine).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from trading_system import sessions
from trading_system.broker.simulated import SimulatedBroker
from trading_system.config import Config, PathsConfig
from trading_system.errors import BadInputError, PrepError, RunFailure
from trading_system.execute.orders import default_guards
from trading_system.execute.rebalance import Journal, rebalance
from trading_system.execute.run import run_execute
from trading_system.marketdata.cached import CachedSource
from trading_system.marketdata.store import BarStore
from trading_system.prepare.run import run_prepare
from trading_system.review import metrics
from trading_system.validate.run import run_validate
from trading_system.vocabulary import StrategyName

SYSTEM, NO_GATE, BUY_HOLD = "system", "no gate", StrategyName.BUY_HOLD.value


Step = Callable[[str, dt.datetime, int, int], None]


@dataclasses.dataclass
class Night:
    """One session of the backtest: what each account traded and what the gate did."""

    session: dt.date
    plan_id: str
    selected: dict[str, str]          # account -> strategy traded that session
    checked: int                      # picks re-scored in the morning
    rejected: dict[str, int]          # account -> picks rejected by its gate
    traded: dict[str, float]          # account -> dollars filled (buys + sells)


@dataclasses.dataclass
class BacktestResult:
    """Equity curves (dollars, indexed by session; first row = start), figures and nights."""

    start: dt.date
    end: dt.date
    data_source: str
    equity: pd.DataFrame
    figures: dict[str, dict]
    nights: list[Night]
    seconds: float

    def selections(self, account: str = SYSTEM) -> dict[str, int]:
        """Sessions each strategy was traded by ``account``."""
        return dict(collections.Counter(n.selected[account] for n in self.nights if account in n.selected))

    def rejection_rate(self, account: str = SYSTEM) -> float:
        """Rejected picks / picks checked, over every morning (NaN when none were checked)."""
        checked = sum(n.checked for n in self.nights)
        return sum(n.rejected.get(account, 0) for n in self.nights) / checked if checked else math.nan


def fast_tmp() -> str | None:
    """A RAM-backed temp folder when there is one (``/dev/shm``): fsync there costs nothing."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and shm.stat().st_mode & 0o002 else None


def scratch_config(cfg: Config, folder: Path, retention_threshold: float) -> Config:
    """``cfg`` with every state path inside ``folder``, the given gate and the pre-trade limits lifted.

    The data, universe, scoring, strategies and execution sizing are the user's own.
    """
    paths = PathsConfig(plan=str(folder / "pending_trades.json"), archive_dir=str(folder / "archived_trades"),
                        data_dir=str(folder / "data"), log_dir=str(folder / "logs"),
                        kill_switch=str(folder / "KILL_SWITCH"))
    execution = cfg.execution.model_copy(update={"max_order_notional": None, "max_run_notional": None,
                                                 "max_order_fraction": 1.0, "max_run_turnover": 4.0})
    validation = cfg.validation.model_copy(update={"retention_threshold": retention_threshold})
    return cfg.model_copy(update={"paths": paths, "execution": execution, "validation": validation})


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


def _at(day: dt.date, hour: int, minute: int) -> sessions.Clock:
    return sessions.Clock(dt.datetime.combine(day, dt.time(hour, minute), tzinfo=sessions.ET))


def _mark(broker: SimulatedBroker, source: CachedSource, session: dt.date) -> float:
    """Cash + shares x the session's close (the last close before it for a symbol without a bar)."""
    holdings = broker.holdings
    closes = source.closes(session, list(holdings))
    missing = [s for s in holdings if s not in closes]
    if missing:
        raise RunFailure(f"no close for {', '.join(missing)} on or before {session}; cannot mark the account.")
    return broker.cash + sum(q * closes[s] for s, q in holdings.items())


def _filled(orders) -> tuple[float, float]:
    """(dollars bought, dollars sold) of an execution report's orders."""
    bought = sum(o.filled_qty * (o.filled_avg_price or 0.0) for o in orders if o.side == "buy")
    sold = sum(o.filled_qty * (o.filled_avg_price or 0.0) for o in orders if o.side == "sell")
    return bought, sold


def run_backtest(cfg: Config, start: dt.date, end: dt.date, source: CachedSource | None = None,
                 gate_off_twin: bool = False, on_step: Step | None = None,
                 workdir: Path | None = None) -> BacktestResult:
    """Replay prepare -> validate -> execute for every session in [start, end].

    Requires: bars (and splits) from the session before ``start`` to ``end`` in ``source``
    (default: the configured store, read once); the benchmarks' bars over that span.
    ``source`` must also answer the store reads of the simulated broker (``CachedSource`` does).
    ``on_step(stage, as_of, sessions_done, sessions_total)`` is called before each stage
    (``prepare``, ``validate``, ``execute``) and once per finished session (``marked``).
    ``workdir``: where the scratch workspaces go (default a temporary folder, removed after).
    Sets: a ``BacktestResult`` with equity curves of SYSTEM, BUY_HOLD (and NO_GATE) in dollars.

    Raises:
        BadInputError: empty or reversed range, or a range outside the data.
        PrepError: a night failed (its message names the session).
    """
    t0 = time.perf_counter()
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
        replay = _replay_context(cfg, workdir, gate_off_twin, source, benchmarks, days[0],
                                 on_step or (lambda *a: None), len(days))
        nights = _replay_nights(replay, first_scan, days)
    finally:
        if owned_tmp is not None:
            owned_tmp.cleanup()
    equity = pd.DataFrame(replay.marks, index=pd.Index([first_scan, *days], name="session"))
    equity = equity[[c for c in (SYSTEM, NO_GATE, BUY_HOLD) if c in equity.columns]]
    figures = {name: metrics.summary(equity[name], *replay.totals[name], cfg.scoring.risk_free_rate)
               for name in equity.columns}
    return BacktestResult(start=days[0], end=days[-1], data_source=source.name, equity=equity, figures=figures,
                          nights=nights, seconds=time.perf_counter() - t0)


def _backtest_sessions(start: dt.date, end: dt.date) -> list[dt.date]:
    """The trading sessions in [start, end]; BadInputError when the range is reversed or has none."""
    if start > end:
        raise BadInputError(f"--start {start} is after --end {end}; swap them.")
    days = sessions.sessions_between(start, end)
    if not days:
        raise BadInputError(f"there is no trading session between {start} and {end}; widen the range.")
    return days


@dataclasses.dataclass
class _Replay:
    """What every night of one backtest shares: the workspaces, the brokers and the running sums."""

    configs: dict[str, Config]            # account -> its scratch config (SYSTEM, maybe NO_GATE)
    bh_cfg: Config                        # BUY_HOLD's scratch config
    brokers: dict[str, SimulatedBroker]   # account (the above and BUY_HOLD) -> its broker
    benchmarks: dict[str, float]          # BUY_HOLD's weights (fractions)
    plan_file: dict[str, Path]            # account -> its plan file
    source: CachedSource
    step: Step
    total: int                            # sessions in the backtest
    marks: dict[str, list[float]]         # account -> equity at the start, then each session's close (dollars)
    totals: dict[str, list[float]]        # account -> [dollars bought, dollars sold]


def _replay_context(cfg: Config, workdir: Path, gate_off_twin: bool, source: CachedSource,
                    benchmarks: dict[str, float], first_day: dt.date, step: Step, total: int) -> _Replay:
    """The scratch configs under ``workdir`` and a simulated broker per account, each holding the starting cash."""
    cash = cfg.broker.simulated.starting_cash
    configs = {SYSTEM: scratch_config(cfg, workdir / "system", cfg.validation.retention_threshold)}
    if gate_off_twin:
        configs[NO_GATE] = scratch_config(cfg, workdir / "no_gate", 0.0)
    bh_cfg = scratch_config(cfg, workdir / "buy_hold", cfg.validation.retention_threshold)
    brokers = {name: SimulatedBroker(source, None, first_day, cash) for name in [*configs, BUY_HOLD]}
    return _Replay(configs=configs, bh_cfg=bh_cfg, brokers=brokers, benchmarks=benchmarks,
                   plan_file={name: c.path(c.paths.plan) for name, c in configs.items()},
                   source=source, step=step, total=total,
                   marks={name: [cash] for name in brokers}, totals={name: [0.0, 0.0] for name in brokers})


def _replay_nights(replay: _Replay, first_scan: dt.date, days: list[dt.date]) -> list[Night]:
    """The scan of ``first_scan``, then per session: validate, execute, mark, and the evening's scan.

    Raises:
        PrepError: of the same class as the failure, its message naming the session or scan.
    """
    system_cfg, source, step = replay.configs[SYSTEM], replay.source, replay.step
    nights: list[Night] = []
    clock = _at(first_scan, 20, 0)
    step("prepare", clock.now(), 0, len(days))
    run_prepare(system_cfg, clock, source=source)
    for i, day in enumerate(days):
        try:
            nights.append(_session(day, i, replay))
        except PrepError as exc:
            raise exc.__class__(f"backtest session {day}: {exc}") from exc
        for name, broker in replay.brokers.items():
            replay.marks[name].append(_mark(broker, source, day))
        step("marked", _at(day, 16, 0).now(), i + 1, len(days))
        if i + 1 < len(days):
            clock = _at(day, 20, 0)
            step("prepare", clock.now(), i + 1, len(days))
            try:
                run_prepare(system_cfg, clock, source=source)
            except PrepError as exc:
                raise exc.__class__(f"backtest scan of {day}: {exc}") from exc
    return nights


def _session(day: dt.date, i: int, replay: _Replay) -> Night:
    """Validate and execute the plan for ``day`` (session ``i`` of the backtest) in every workspace;
    rebalance BUY_HOLD.  Adds each account's fills to ``replay.totals``."""
    configs, brokers, plan_file, totals = replay.configs, replay.brokers, replay.plan_file, replay.totals
    for broker in brokers.values():
        broker.move_to(day)
    for name in configs:
        if name != SYSTEM:
            plan_file[name].parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(plan_file[SYSTEM], plan_file[name])
    selected, rejected, traded = {}, {}, {}
    checked, plan_id = 0, ""
    for name, c in configs.items():
        clock = _at(day, 9, 0)
        replay.step("validate", clock.now(), i, replay.total)
        v = run_validate(c, clock, source=replay.source)
        vr = v.plan.validation_results
        checked, plan_id = len(vr.checks), v.plan.plan_id
        rejected[name] = sum(not chk.passed for chk in vr.checks.values())
        clock = _at(day, 9, 31)
        replay.step("execute", clock.now(), i, replay.total)
        ex = run_execute(c, clock, broker=brokers[name])
        selected[name] = ex.strategy
        bought, sold = _filled(ex.report.orders)
        totals[name][0] += bought
        totals[name][1] += sold
        traded[name] = bought + sold
    bh_cfg = replay.bh_cfg
    guards = default_guards(bh_cfg.execution, bh_cfg.path(bh_cfg.paths.kill_switch))
    _, report = rebalance(replay.benchmarks, brokers[BUY_HOLD], bh_cfg.execution, f"{day:%Y%m%d}-00000000",
                          Journal(None), guards)
    bought, sold = _filled(report.orders)
    totals[BUY_HOLD][0] += bought
    totals[BUY_HOLD][1] += sold
    selected[BUY_HOLD], traded[BUY_HOLD] = BUY_HOLD, bought + sold
    return Night(session=day, plan_id=plan_id, selected=selected, checked=checked, rejected=rejected, traded=traded)
