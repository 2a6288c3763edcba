"""The three nightly-cycle runs, each one function from config + clock to a result.

``run_prepare`` (20:00 ET), ``run_validate`` and ``run_execute`` (09:00 ET).  Each reads
and writes the flat files under the plan lock; the pure stages they call (scoring,
strategies, validation, order planning) do the thinking.  ``cli.py`` prints the results.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging

import pandas as pd

from trading_system import sessions
from trading_system.broker.base import Broker
from trading_system.config import Config
from trading_system.errors import DataError, NothingToDo, PlanError, RunFailure
from trading_system.execute import market_clock
from trading_system.execute.orders import default_guards
from trading_system.execute.rebalance import ExecutionReport, Journal, rebalance
from trading_system.marketdata.base import MarketData
from trading_system.prepare.scoring import rescore, score_universe
from trading_system.prepare.strategies import build_strategies, cap_notes
from trading_system.prepare.universe import build_universe, save_universe
from trading_system.runtime import archive, make_broker, make_source
from trading_system.state.plan import (
    Plan,
    ScanSummary,
    Strategy,
    TickerMetrics,
    ValidatedStrategy,
    ValidationResults,
    load_plan,
    plan_lock,
    save_plan,
    write_json_atomic,
)
from trading_system.validate.gate import check_pick, select_strategy, validate_strategy
from trading_system.vocabulary import StrategyName

log = logging.getLogger(__name__)

#: Calendar days of history read for the scan: enough for the 250-session RSI window.
HISTORY_DAYS = 400


@dataclasses.dataclass
class PrepareResult:
    """The evening scan: the plan, every scored ticker (index symbol), what was written."""

    plan: Plan
    scan: pd.DataFrame
    universe_size: int
    written: bool
    plan_path: str
    expired_archive: str | None = None
    replaced_archive: str | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ValidateResult:
    """The morning gate: the plan with its ``validation_results``, and whether it was saved."""

    plan: Plan
    written: bool
    plan_path: str


def _plan_id(target: dt.date, scan_session: dt.date, strategies: dict, cfg: Config) -> str:
    """``YYYYMMDD-<8 hex>``: the target session and a digest of what the plan decides.

    The same data and settings give the same id on any machine (paths are left out), so
    a re-run finds the orders of the same plan by their client_order_id.
    """
    decided = cfg.model_dump(mode="json", include={"scoring", "eligibility", "buckets", "strategies"})
    digest = hashlib.sha256(
        json.dumps([str(scan_session), strategies, decided], sort_keys=True).encode()
    ).hexdigest()
    return f"{target:%Y%m%d}-{digest[:8]}"


_METRIC_FIELDS = ["bucket", "score", "close", "sharpe", "volatility", "rsi", "max_drawdown", "gradual_loss",
                  "trend", "dollar_volume"]


def _metrics(picks: pd.DataFrame) -> dict[str, TickerMetrics]:
    """Per-pick metrics for the plan (rows zipped from column lists; ``to_dict`` is ~10x slower)."""
    columns = [picks[f].tolist() for f in _METRIC_FIELDS]
    return {str(s): TickerMetrics(**dict(zip(_METRIC_FIELDS, row)))
            for s, row in zip(picks.index.tolist(), zip(*columns))}


def run_prepare(cfg: Config, clock: sessions.Clock, dry_run: bool = False,
                source: MarketData | None = None, force: bool = False) -> PrepareResult:
    """Scan, score, bucket and build the four strategies for the next session.

    Requires: bars of the last closed session in the data source (``source``, default the
    configured one; a caller such as a backtest may pass its own, already loaded), for at
    least ``data.min_coverage`` of the universe.
    Sets: ``data/scan_results.json`` and ``pending_trades.json`` (not in a dry run); an
    older plan that was never executed is archived as expired first.  ``warnings`` says
    when the morning will have no pre-market price source.

    Refuses (unless ``force``; what ``force`` replaces is archived as ``replaced``): a plan
    for the same session that is already validated (its validation would be lost), a plan
    for a later session (an earlier ``--as-of`` must not replace it), and a scan during the
    target session's market hours (the plan would be for a session already trading).

    Raises:
        AsOfError / DataError: the session's bars are outside the data, missing or too few.
        PlanError: the existing plan file is corrupt (it is left untouched), or one of the refusals above.
    """
    now = clock.now()
    scan_session = sessions.last_closed_session(now)
    target = sessions.next_session(scan_session)
    if not dry_run and not force and now >= sessions.session_open(target):
        raise PlanError(f"session {target} is already trading ({now:%H:%M} ET): a plan now would be for a session "
                        "under way; prepare after the close, or add --force.")
    injected, source = source, source or make_source(cfg, clock)
    source.ensure_session(scan_session)
    chain = build_universe(cfg, source, scan_session)
    universe = chain.symbols
    bars = source.bars(end=scan_session, start=scan_session - dt.timedelta(days=HISTORY_DAYS), symbols=universe)
    _check_coverage(bars, universe, scan_session, cfg.data.min_coverage, source.name)
    scan = score_universe(bars, scan_session, cfg.scoring, cfg.eligibility, cfg.buckets)
    _check_history(bars, scan, scan_session, cfg.scoring.lookback)
    allocations = build_strategies(scan, cfg.strategies)
    notes = cap_notes(allocations, cfg.strategies)
    scores = scan["score"].where(scan["score"].notna(), None)
    strategies = {
        name: Strategy(allocations=weights, note=notes.get(name),
                       original_scores={s: (round(float(scores[s]), 6) if s in scores.index and scores[s] is not None
                                            else None) for s in weights})
        for name, weights in allocations.items()
    }
    picks = scan[scan["pick"]]
    config = cfg.public_dict()
    plan = Plan(
        plan_id=_plan_id(target, scan_session, allocations, cfg),
        timestamp=now, preparation_time=now, as_of=now,
        scan_session=scan_session, target_session=target,
        market_open_time=sessions.session_open(target),
        data_source=source.name,
        scan_summary=ScanSummary(
            total_tickers_scanned=len(scan), eligible=int(scan["eligible"].sum()),
            core_picks=int((picks["bucket"] == "CORE").sum()), spec_picks=int((picks["bucket"] == "SPEC").sum()),
            asym_picks=int((picks["bucket"] == "ASYM").sum())),
        tickers=_metrics(picks),
        strategies=strategies,
        config=config,
    )
    plan_path = cfg.path(cfg.paths.plan)
    result = PrepareResult(plan=plan, scan=scan, universe_size=len(universe), written=False,
                           plan_path=str(plan_path))
    result.warnings += _preflight(cfg, clock) if injected is None else []
    problem = source.premarket_source_problem()
    if problem and not any(problem in w for w in result.warnings):
        result.warnings.append(problem)
    for warning in result.warnings:
        log.warning("prepare: %s", warning)
    if dry_run:
        return result
    with plan_lock(plan_path):
        old = load_plan(plan_path)
        if old is not None and old.target_session < target:
            result.expired_archive = str(archive(cfg, old, "expired", now, execution=None))
            log.info("archived expired plan %s for session %s", old.plan_id, old.target_session)
        elif old is not None and (why := _replacing_needs_force(old, target, plan_path)):
            if not force:
                raise PlanError(why)
            result.replaced_archive = str(archive(cfg, old, "replaced", now, execution=None))
            log.info("--force: archived replaced plan %s for session %s", old.plan_id, old.target_session)
        write_json_atomic(cfg.path(cfg.paths.data_dir) / "scan_results.json", _scan_json(scan, plan))
        save_universe(cfg, chain, now)
        save_plan(plan_path, plan)
    result.written = True
    return result


def _check_coverage(bars: pd.DataFrame, universe: list[str], session: dt.date, min_coverage: float,
                    source: str) -> None:
    """Refuse a scan whose session has bars for under ``min_coverage`` (fraction) of the universe.

    Raises:
        DataError: no bar at all on ``session`` (stale data) or too few symbols have one.
    """
    have = set(bars.loc[bars["date"] == session, "symbol"]) if not bars.empty else set()
    if not have:
        raise DataError(f"no bars for session {session} in the {source} data; "
                        "the data is stale, so no plan was written.")
    covered = len(have & set(universe))
    if universe and covered / len(universe) < min_coverage:
        raise DataError(f"only {covered} of {len(universe)} symbols of the universe ({covered / len(universe):.1%}) "
                        f"have a bar for session {session} in the {source} data, under data.min_coverage "
                        f"{min_coverage:.1%}; the data is incomplete, so no plan was written.")


def _preflight(cfg: Config, clock: sessions.Clock) -> list[str]:
    """``prep doctor`` in brief (no network): each WARN or FAIL of its local checks, one sentence each.

    Run by the cron path only (a backtest passes its own source and skips it)."""
    from trading_system.doctor import brief_checks

    return [f"{c.name}: {c.message}" for c in brief_checks(cfg, clock) if c.status != "OK"]


class TooLittleHistory(DataError):
    """No symbol has the bars the scan needs; ``first_usable`` is the first night one can."""

    def __init__(self, message: str, first_usable: dt.date):
        super().__init__(message)
        self.first_usable = first_usable


def first_usable_night(first_bar: dt.date, lookback: int) -> dt.date:
    """The first session whose scan can score a symbol whose bars start on ``first_bar``: the
    scan needs ``lookback + 1`` bars (DESIGN §4), so it is the (lookback + 1)-th session from it."""
    days = sessions.sessions_between(first_bar, first_bar + dt.timedelta(days=2 * lookback + 30))
    return days[lookback]


def _check_history(bars: pd.DataFrame, scan: pd.DataFrame, session: dt.date, lookback: int) -> None:
    """Refuse a scan in which no symbol has ``lookback + 1`` bars (a plan of zero picks that says
    nothing about the market); a scan whose names fail the price or liquidity floors is a verdict.

    Raises:
        TooLittleHistory: naming when the bars start, what the scan needs and the first usable night.
    """
    if scan.empty or not scan["reason"].str.startswith("fewer than").all():
        return
    first = min(bars["date"])
    usable = first_usable_night(first, lookback)
    raise TooLittleHistory(f"no symbol has the {lookback + 1} bars the scan needs (scoring.lookback {lookback} + 1) "
                           f"on {session}: the bars start on {first}, so the first usable night is {usable}; "
                           "no plan was written.", usable)


def _replacing_needs_force(old: Plan, target: dt.date, plan_path) -> str | None:
    """Why replacing ``old`` with a plan for ``target`` needs ``--force`` (one sentence), or None.

    A plan for a later session, or one already validated, is never replaced silently; an
    unvalidated plan for the same session is (running ``prepare`` again the same evening).
    """
    if old.target_session > target:
        return (f"{plan_path} holds a plan for session {old.target_session}, later than this scan's "
                f"{target}; it was kept: add --force to replace it (it is archived first).")
    if old.validation_results is not None:
        return (f"{plan_path} was already validated for session {target} "
                f"({old.validation_results.selected_strategy}); it was kept: add --force to replace it "
                "(it is archived first).")
    return None


def _scan_json(scan: pd.DataFrame, plan: Plan) -> dict:
    columns = {scan.index.name or "index": scan.index.tolist()}
    for c in scan.columns:
        col = scan[c].astype(str) if c == "last_date" else scan[c]
        values = col.tolist()
        if col.dtype.kind == "f":  # NaN -> None by the NaN != NaN test: no isna() pass needed
            columns[c] = [None if v != v else v for v in values]
        elif col.dtype.kind not in "biu":  # bool and int columns hold no gap
            columns[c] = [None if gap else v for v, gap in zip(values, col.isna().tolist())]
        else:
            columns[c] = values
    records = [dict(zip(columns, row)) for row in zip(*columns.values())]  # 5x faster than to_dict
    return {"plan_id": plan.plan_id, "scan_session": str(plan.scan_session), "as_of": plan.as_of.isoformat(),
            "data_source": plan.data_source, "tickers": records}


def _executed_archive(cfg: Config, session: dt.date, newest: int = 20):
    """The newest archive (of the last ``newest``) of a plan executed for ``session``, or None."""
    folder = cfg.path(cfg.paths.archive_dir)
    for path in sorted(folder.glob("pending_trades_*.json"), reverse=True)[:newest]:
        try:
            doc = json.loads(path.read_text())
            if doc.get("status") == "executed" and doc["plan"]["target_session"] == str(session):
                return path
        except (OSError, ValueError, KeyError, TypeError):
            continue  # an unreadable archive is history's business, not this run's
    return None


def morning_plan(cfg: Config, clock: sessions.Clock) -> tuple[Plan, dt.date]:
    """The pending plan and today's session, if today is the session it was made for.

    Raises:
        NothingToDo: no plan, or today is not a session (the plan is kept).
        PlanError: the plan is corrupt or was prepared for another session.
    """
    plan_path = cfg.path(cfg.paths.plan)
    plan = load_plan(plan_path)
    today = clock.now().date()
    if plan is None:
        done = _executed_archive(cfg, today)
        if done is not None:
            raise NothingToDo(f"the plan for session {today} was already executed; its archive is {done}.")
        raise NothingToDo(f"no pending plan ({plan_path}); nothing to do.")
    if not sessions.is_session(today):
        raise NothingToDo(f"{today} is not a trading session; the plan for {plan.target_session} is kept.")
    if plan.target_session != today:
        raise PlanError(f"{plan_path} was prepared for session {plan.target_session}, not today's session "
                        f"{today}; it is stale: run 'prep prepare' to replace it.")
    return plan, today


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
        contest = {n: s for n, s in plan.strategies.items() if n != StrategyName.BUY_HOLD}
        symbols = sorted({sym for s in contest.values() for sym in s.allocations})
        quotes = source.premarket_prices(symbols, today)
        _check_priced(symbols, quotes, cfg.validation.max_unpriced_fraction)
        last_closed = sessions.last_closed_session(now)
        history = source.bars(end=last_closed, start=last_closed - dt.timedelta(days=HISTORY_DAYS),
                              symbols=symbols, adjust_through=today)
        morning = rescore(history, {s: q.price for s, q in quotes.items()}, today, cfg.scoring)
        checks = {}
        morning_scores = {s: float(v) for s, v in morning["score"].items() if pd.notna(v)}
        for s in symbols:
            original = next(st.original_scores[s] for st in contest.values() if s in st.allocations)
            current = morning_scores.get(s)
            q = quotes.get(s)
            checks[s] = check_pick(original, current, q.price if q else None, q.source if q else None,
                                   cfg.validation.retention_threshold)
        validated = {n: validate_strategy(s, checks, cfg.validation.min_names) for n, s in contest.items()}
        bh = plan.strategies[StrategyName.BUY_HOLD].allocations
        validated[StrategyName.BUY_HOLD] = ValidatedStrategy(validated_allocations=dict(bh), rejected_tickers=[],
                                                  validation_rate=1.0, contestant=False)
        selected, reason = select_strategy(validated, cfg.validation)
        plan = plan.model_copy(update={"validation_results": ValidationResults(
            validation_time=now, selected_strategy=selected, selection_reason=reason,
            validated_strategies=validated, checks=checks, dry_run=dry_run)})
        if not dry_run:
            save_plan(plan_path, plan)
    return ValidateResult(plan=plan, written=not dry_run, plan_path=str(plan_path))


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
    checks = vr.checks if vr is not None else {}
    out = {s: c.price for s, c in checks.items() if c.price}
    for s, m in plan.tickers.items():
        if s in out:
            out[s] = max(out[s], m.close)
    return out


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
        if broker is None and cfg.broker.kind == "alpaca":
            broker = make_broker(cfg, None, dry_run=dry_run, live=live)
        if market_clock.has_clock(broker):  # a real account: its clock and calendar, no --as-of
            clock = market_clock.broker_clock(clock, broker)
            broker.get_account()  # the account's kind (paper/live) is checked now, not after the wait
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
        weights = vr.validated_strategies[strategy].validated_allocations
        broker = broker or make_broker(cfg, today, dry_run=dry_run, live=live)
        journal = Journal(None if dry_run else cfg.path(cfg.paths.data_dir) / "orders" / f"{plan.plan_id}.jsonl")
        guards = default_guards(cfg.execution, cfg.path(cfg.paths.kill_switch))
        prices = _sizing_prices(plan)
        since = dt.datetime.combine(today, dt.time(0), tzinfo=sessions.ET)
        _, report = rebalance(weights, broker, cfg.execution, plan.plan_id, journal, guards, dry_run,
                              prices=prices, since=since, market_open=lambda: dry_run or market_clock.still_open(broker))
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
