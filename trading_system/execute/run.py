"""``prep execute`` (09:31 ET): rebalance the account to the validated plan in two phases, archive
it, and consume the plan once the account reached its targets (or the session closed).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping

from trading_system import sessions
from trading_system.broker.base import Broker
from trading_system.config import Config
from trading_system.errors import PlanError, RunFailure
from trading_system.execute import market_clock
from trading_system.execute.orders import default_guards
from trading_system.execute.rebalance import ExecutionReport, Journal, rebalance
from trading_system.runtime import archive, make_broker
from trading_system.state.pending import morning_plan
from trading_system.state.plan import (
    PickCheck,
    Plan,
    plan_lock,
)

log = logging.getLogger(__name__)

@dataclasses.dataclass
class ExecuteResult:
    """The morning rebalance: strategy traded, its weights, the report, the archive."""

    plan: Plan
    strategy: str
    weights: dict[str, float]
    report: ExecutionReport
    archive_path: str | None
    waited_until: dt.datetime | None
    plan_kept: bool = False


def _sizing_prices(plan: Plan) -> dict[str, float]:
    """Dollars per share for sizing whole-share buys: the higher of the morning's validated price
    and the evening close of each pick.

    Why the higher: a wrong, too-low morning print would buy too many whole shares (no guard
    sees share counts, only the planned dollars); the higher price can only buy fewer.  The cost
    is a smaller buy on a day a split makes the evening close look high (split on the target
    session of a non-fractionable asset), which the next run tops up.
    """
    vr = plan.validation_results
    return sizing_prices(vr.checks if vr is not None else {}, {s: m.close for s, m in plan.tickers.items()})


def sizing_prices(checks: Mapping[str, PickCheck], closes: Mapping[str, float]) -> dict[str, float]:
    """Per checked pick with a morning price: the higher of that price and its evening close in
    ``closes`` (dollars per share; the plan's ``tickers``); see :func:`_sizing_prices`."""
    out = {s: c.price for s, c in checks.items() if c.price}
    for s, close in closes.items():
        if s in out:
            out[s] = max(out[s], close)
    return out


def traded_weights(allocations: Mapping[str, float], exposure: float) -> dict[str, float]:
    """The selected strategy's validated ``allocations`` scaled by the regime's ``exposure`` (fractions
    of the investable equity; exposure 1.0 unless the evening's regime scaled it: the rest stays in cash)."""
    return {s: w * exposure for s, w in allocations.items()}


def rebalance_session(cfg: Config, broker: Broker, plan_id: str, weights: dict[str, float],
                      prices: Mapping[str, float], today: dt.date, journal: Journal,
                      dry_run: bool = False) -> ExecutionReport:
    """``rebalance`` the account to ``weights`` for session ``today`` with the configured guards; the
    buys only while the broker's market is open.  Shared by ``run_execute`` and the backtest."""
    guards = default_guards(cfg.execution, cfg.path(cfg.paths.kill_switch))
    since = dt.datetime.combine(today, dt.time(0), tzinfo=sessions.ET)
    _, report = rebalance(weights, broker, cfg.execution, plan_id, journal, guards, prices=prices, since=since,
                          market_open=lambda: dry_run or market_clock.still_open(broker))
    return report


def wait_for_open(cfg: Config, clock: sessions.Clock, session: dt.date, announce=lambda msg: None,
                  hours: tuple[dt.datetime, dt.datetime] | None = None) -> dt.datetime | None:
    """Wait for the open when it is at most ``execution.max_wait_for_open_minutes`` away.

    ``hours`` (open, close) come from the broker's calendar when it has one, else XNYS.
    Returns the instant waited until, or None when the market is already open.

    Raises:
        RunFailure: the open is further away than that, or the session has closed.
    """
    now = clock.now()
    opens, closes = hours or (sessions.session_open(session), sessions.session_close(session))
    if now >= closes:
        raise RunFailure(f"session {session} closed at {closes:%H:%M} ET; nothing was sent and the plan is kept.")
    if now >= opens:
        return None
    if (opens - now).total_seconds() > cfg.execution.max_wait_for_open_minutes * 60:
        raise RunFailure(f"the market opens at {opens:%H:%M} ET, more than "
                           f"{cfg.execution.max_wait_for_open_minutes:g} minutes away; nothing was sent, "
                           "run 'prep execute' closer to the open.")
    until = opens + dt.timedelta(seconds=cfg.execution.open_delay_seconds)
    announce(f"waiting for the open: orders go out at {until:%H:%M:%S} ET")
    clock.sleep_until(until)
    return until


def _run_clock(clock: sessions.Clock, broker: Broker) -> sessions.Clock:
    """The clock of the run, chosen once: a real account's own (``--as-of`` refused there), whose
    kind (paper/live) is checked now rather than after the wait for the open; else ``clock``.

    Raises:
        BadInputError: ``--as-of`` with a real account, or an account of the wrong kind.
    """
    if not market_clock.has_clock(broker):
        return clock
    run_clock = market_clock.broker_clock(clock, broker)
    broker.get_account()
    return run_clock


def run_execute(cfg: Config, clock: sessions.Clock, dry_run: bool = False, live: bool = False,
                announce=lambda msg: None, broker: Broker | None = None) -> ExecuteResult:
    """Rebalance the account to the selected strategy in two phases, then archive and consume the plan.

    Requires: a validated plan for today's session.
    Sets: orders at the broker, ``data/orders/<plan_id>.jsonl``, an archive.  The plan is
    consumed (removed) once the account reached its targets or the session has closed;
    otherwise (an order refused or failed, a sell left unfilled) the archive is marked
    ``incomplete`` and the plan kept, so ``prep execute`` again finishes the job: the journal
    makes sure no order it already sent is sent twice.  A dry run sends nothing and writes nothing.

    Raises:
        PlanError: the plan is not validated yet, or is stale.
        RunFailure / BrokerError: too early, too late, blocked account, a guard refused.
    """
    plan_path = cfg.path(cfg.paths.plan)
    with plan_lock(plan_path):
        # The broker is built once; the simulated one trades the as-of clock's day (a day that is
        # not the plan's session is refused just below, before any order).
        broker = broker or make_broker(cfg, clock.now().date(), dry_run=dry_run, live=live)
        clock = _run_clock(clock, broker)
        plan, today = morning_plan(cfg, clock)
        vr = plan.validation_results
        if vr is None:
            raise PlanError(f"{plan_path} has not been validated yet; run 'prep validate' first.")
        hours = market_clock.session_hours(broker, today)
        if dry_run and market_clock.has_clock(broker):
            waited = None
            announce("dry run: the orders below are planned against the account now; nothing waits for the open")
        else:
            waited = wait_for_open(cfg, clock, today, announce, hours=hours)
            market_clock.confirm_open(broker)
        strategy = vr.selected_strategy
        weights = traded_weights(vr.validated_strategies[strategy].validated_allocations, vr.exposure)
        journal = Journal(None if dry_run else cfg.path(cfg.paths.data_dir) / "orders" / f"{plan.plan_id}.jsonl")
        report = rebalance_session(cfg, broker, plan.plan_id, weights, _sizing_prices(plan), today, journal, dry_run)
        path, kept = None, False
        if not dry_run:
            done = plan.model_copy(update={"validation_results": vr.model_copy(
                update={"orders_executed": sum(1 for o in report.orders if o.broker_order_id and not o.earlier_run)})})
            closed = clock.now() >= (hours[1] if hours else sessions.session_close(today))
            kept = not report.reached_targets and not closed
            path = str(archive(cfg, done, "incomplete" if kept else "executed", clock.now(), report.to_dict()))
            if not kept:
                plan_path.unlink()
            plan = done
    return ExecuteResult(plan=plan, strategy=strategy, weights=weights, report=report, archive_path=path,
                         waited_until=waited, plan_kept=kept)
