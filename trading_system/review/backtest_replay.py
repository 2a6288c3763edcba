"""What both backtest engines share (``backtest.py`` runs them): the accounts' brokers and running
sums, the loop over the nights, BUY_HOLD's rebalance, the marks and each night's record.

An engine supplies two steps: ``prepare(account, night)`` (the evening scan of ``night`` for an
account that scans) and ``session(day, i)`` (each account's morning and open, as ``AccountDay``s).  The
rest (the order of the steps, BUY_HOLD, the marks, the progress calls, the error wording) is
here once, so the two engines cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Callable

from trading_system import sessions
from trading_system.broker.simulated import SimulatedBroker
from trading_system.config import Config
from trading_system.errors import PrepError, RunFailure
from trading_system.execute.orders import default_guards
from trading_system.execute.rebalance import ExecutionReport, Journal, OrderRecord, rebalance
from trading_system.marketdata.cached import CachedSource
from trading_system.review.backtest_result import BUY_HOLD, NO_EVENTS, SYSTEM, Night, OrderLine
from trading_system.state.plan import RegimeRecord

Step = Callable[[str, dt.datetime, int, int], None]


@dataclasses.dataclass
class Replay:
    """What every night of one backtest shares: the workspaces, the brokers and the running sums."""

    configs: dict[str, Config]            # account -> its scratch config (SYSTEM and the twins)
    bh_cfg: Config                        # BUY_HOLD's scratch config
    brokers: dict[str, SimulatedBroker]   # account (the above and BUY_HOLD) -> its broker
    benchmarks: dict[str, float]          # BUY_HOLD's weights (fractions)
    plan_file: dict[str, Path]            # account -> its plan file (the nightly engine's)
    source: CachedSource
    step: Step
    total: int                            # sessions in the backtest
    marks: dict[str, list[float]]         # account -> equity at the start, then each session's close (dollars)
    totals: dict[str, list[float]]        # account -> [dollars bought, dollars sold]
    costs: dict[str, list[float]]         # account -> costs paid to date at each mark (dollars)

    @property
    def scans(self) -> list[str]:
        """The accounts whose evening runs its own scan: SYSTEM, and NO_EVENTS (its gate changes the picks)."""
        return [name for name in self.configs if name in (SYSTEM, NO_EVENTS)]


@dataclasses.dataclass(frozen=True)
class AccountDay:
    """One account's session: the strategy traded, the picks re-scored and rejected, the exposure
    (fraction invested) and the execution report."""

    strategy: str
    checks: int
    rejected: int
    exposure: float
    report: ExecutionReport


@dataclasses.dataclass(frozen=True)
class SystemNight:
    """What the night's record says of the system's own plan."""

    plan_id: str
    regime: RegimeRecord | None
    removed: list[str]


def at(day: dt.date, hour: int, minute: int) -> sessions.Clock:
    """A clock frozen at ``hour:minute`` ET of ``day``."""
    return sessions.Clock(dt.datetime.combine(day, dt.time(hour, minute), tzinfo=sessions.ET))


def replay_nights(replay: Replay, first_scan: dt.date, days: list[dt.date], prepare: Callable[[str, dt.date], None],
                  session: Callable[[dt.date, int], tuple[dict[str, AccountDay], SystemNight]]) -> list[Night]:
    """The scan of ``first_scan``, then per session: the accounts' mornings, BUY_HOLD, the marks,
    and the evening's scan.

    Raises:
        PrepError: of the same class as the failure, its message naming the session or scan.
    """
    step, nights = replay.step, []
    step("prepare", at(first_scan, 20, 0).now(), 0, len(days))
    for name in replay.scans:
        prepare(name, first_scan)
    for i, day in enumerate(days):
        for broker in replay.brokers.values():
            broker.move_to(day)
        try:
            accounts, system = session(day, i)
            nights.append(_record(day, replay, accounts, system))
        except PrepError as exc:
            raise exc.__class__(f"backtest session {day}: {exc}") from exc
        for name, broker in replay.brokers.items():
            replay.marks[name].append(mark(broker, replay.source, day))
            replay.costs[name].append(sum(broker.costs_paid.values()))
        step("marked", at(day, 16, 0).now(), i + 1, len(days))
        if i + 1 < len(days):
            step("prepare", at(day, 20, 0).now(), i + 1, len(days))
            for name in replay.scans:
                try:
                    prepare(name, day)
                except PrepError as exc:
                    whose = "" if name == SYSTEM else f" (account {name})"
                    raise exc.__class__(f"backtest scan of {day}{whose}: {exc}") from exc
    return nights


def _record(day: dt.date, replay: Replay, accounts: dict[str, AccountDay], system: SystemNight) -> Night:
    """Rebalance BUY_HOLD, add every account's fills to ``replay.totals``: the night's record."""
    bh_cfg = replay.bh_cfg
    guards = default_guards(bh_cfg.execution, bh_cfg.path(bh_cfg.paths.kill_switch))
    _, report = rebalance(replay.benchmarks, replay.brokers[BUY_HOLD], bh_cfg.execution, f"{day:%Y%m%d}-00000000",
                          Journal(None), guards)
    reports = {**{name: a.report for name, a in accounts.items()}, BUY_HOLD: report}
    traded = {}
    for name, rep in reports.items():
        bought, sold = filled(rep.orders)
        replay.totals[name][0] += bought
        replay.totals[name][1] += sold
        traded[name] = bought + sold
    return Night(session=day, plan_id=system.plan_id,
                 selected={**{n: a.strategy for n, a in accounts.items()}, BUY_HOLD: BUY_HOLD},
                 checked=accounts[SYSTEM].checks, rejected={n: a.rejected for n, a in accounts.items()},
                 traded=traded, checks={n: a.checks for n, a in accounts.items()},
                 regime=regime_state(system.regime), exposure={n: a.exposure for n, a in accounts.items()},
                 earnings_removed=system.removed,
                 orders={name: order_lines(rep.orders) for name, rep in reports.items()})


def order_lines(orders: list[OrderRecord]) -> list[OrderLine]:
    """The night's orders as ``OrderLine`` tuples, in the order they were planned."""
    return [(o.client_order_id, o.side, o.symbol, o.qty, o.notional, o.filled_qty, o.filled_avg_price, o.status)
            for o in orders]


def regime_state(record: RegimeRecord | None) -> str:
    """A plan's regime record as one of REGIME_STATES: its state when the record is ``ok``, else its
    status (``unavailable`` / ``off``); ``unavailable`` for a plan without one."""
    if record is None:
        return "unavailable"
    if record.status == "ok" and record.state is not None:
        return record.state
    return record.status


def mark(broker: SimulatedBroker, source: CachedSource, session: dt.date) -> float:
    """Cash + shares x the session's close (the last close before it for a symbol without a bar).

    Raises:
        RunFailure: a held symbol has no close by then.
    """
    holdings = broker.holdings
    closes = source.closes(session, list(holdings))
    missing = [s for s in holdings if s not in closes]
    if missing:
        raise RunFailure(f"no close for {', '.join(missing)} on or before {session}; cannot mark the account.")
    return broker.cash + sum(q * closes[s] for s, q in holdings.items())


def filled(orders) -> tuple[float, float]:
    """(dollars bought, dollars sold) of an execution report's orders."""
    bought = sum(o.filled_qty * (o.filled_avg_price or 0.0) for o in orders if o.side == "buy")
    sold = sum(o.filled_qty * (o.filled_avg_price or 0.0) for o in orders if o.side == "sell")
    return bought, sold
