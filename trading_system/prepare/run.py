"""``prep prepare`` (20:00 ET): scan, score and bucket the universe, build the four strategies,
write ``pending_trades.json`` for the next session.

The run reads and writes the flat files under the plan lock; the pure steps it calls
(universe, scoring, strategies) do the thinking.  ``cli`` prints its result.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
from collections.abc import Callable

import pandas as pd

from trading_system import sessions
from trading_system.config import Config
from trading_system.errors import DataError, PlanError
from trading_system.marketdata.base import MarketData
from trading_system.prepare.context.build import evening_context, with_levels
from trading_system.prepare.discovery import Discovery, discover
from trading_system.prepare.scoring import score_universe
from trading_system.prepare.strategies import build_strategies, cap_notes
from trading_system.prepare.universe import Universe, build_universe, save_universe
from trading_system.runtime import archive, make_source
from trading_system.state.atomic import write_json_atomic
from trading_system.state.plan import (
    Plan,
    ScannerRunRecord,
    ScannersRecord,
    ScanSummary,
    Strategy,
    TickerMetrics,
    load_plan,
    plan_lock,
    save_plan,
)
from trading_system.vocabulary import StrategyName

log = logging.getLogger(__name__)



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
    scanner_lines: list[str] = dataclasses.field(default_factory=list)   # each scanner problem, one line



def _plan_id(target: dt.date, scan_session: dt.date, strategies: dict, cfg: Config) -> str:
    """``YYYYMMDD-<8 hex>``: the target session and a digest of what the plan decides.

    The same data and settings give the same id on any machine (paths are left out), so
    a re-run finds the orders of the same plan by their client_order_id.
    """
    decided = cfg.model_dump(mode="json", include={"scoring", "eligibility", "buckets", "strategies"})
    if cfg.scanners:  # only when configured, so a plan without scanners keeps its id
        decided["scanners"] = cfg.model_dump(mode="json", include={"scanners"})["scanners"]
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
    found = discover(cfg, source, scan_session, now, chain.symbols, record=not dry_run)
    bars = found.bars
    check_coverage(_have_bar(bars, scan_session), chain.symbols, scan_session, cfg.data.min_coverage, source.name)
    scan = score_universe(bars, scan_session, cfg.scoring, cfg.eligibility, cfg.buckets)
    check_history(scan, scan_session, cfg.scoring.lookback, lambda: min(bars["date"]))
    context = evening_context(cfg, source, scan, scan_session, target, found.universe(chain.symbols))
    plan = _build_plan(cfg, scan, now, scan_session, target, source.name, found)
    plan = plan.model_copy(update={"context": with_levels(context, bars, plan, cfg)})
    plan_path = cfg.path(cfg.paths.plan)
    result = PrepareResult(plan=plan, scan=scan, universe_size=len(chain.symbols) + len(found.added), written=False,
                           plan_path=str(plan_path),
                           scanner_lines=list(found.outcome.lines) if found.outcome is not None else [])
    if injected is None:  # the cron path: the doctor's local checks in brief, the morning's price source among them
        result.warnings = _preflight(cfg, clock)
    for warning in result.warnings:
        log.warning("prepare: %s", warning)
    if dry_run:
        return result
    _write_plan(cfg, result, chain, plan_path, now, force)
    result.written = True
    return result


def plan_strategies(cfg: Config, scan: pd.DataFrame, scan_session: dt.date,
                    target: dt.date) -> tuple[str, dict[StrategyName, Strategy]]:
    """(plan id, the four strategies) of the scan of ``scan_session`` for ``target`` (pure).

    Requires: ``scan`` as ``score_universe`` returns it, the earnings gate's removals applied
    to ``pick``.  Each strategy holds its allocations (fractions), the cap's note and the
    evening score of each name (rounded to 6 decimals; None for a name the scan could not score).
    """
    allocations = build_strategies(scan, cfg.strategies)
    notes = cap_notes(allocations, cfg.strategies)
    # None for a name the scan could not score (a benchmark with too little history); a NaN must
    # never reach the plan (``where(..., None)`` keeps NaN in a float column under pandas 3)
    held = sorted({s for weights in allocations.values() for s in weights})
    row = scan.index.get_indexer(held)       # only the allocated names' scores are read (-1: not scanned)
    score = scan["score"].to_numpy(dtype=float)
    scores = {s: (None if i < 0 or math.isnan(score[i]) else round(float(score[i]), 6))
              for s, i in zip(held, row.tolist())}
    strategies = {
        StrategyName(name): Strategy(allocations=weights, note=notes.get(name),
                                     original_scores={s: scores.get(s) for s in weights})
        for name, weights in allocations.items()
    }
    return _plan_id(target, scan_session, allocations, cfg), strategies


def _build_plan(cfg: Config, scan: pd.DataFrame, now: dt.datetime, scan_session: dt.date,
                target: dt.date, source_name: str, found: Discovery) -> Plan:
    """The plan for ``target`` from the scan of ``scan_session``: the four strategies, the picks'
    metrics and the scan's summary (pure: nothing is read or written)."""
    plan_id, strategies = plan_strategies(cfg, scan, scan_session, target)
    picks = scan[scan["pick"]]
    config = cfg.public_dict()
    return Plan(
        plan_id=plan_id,
        timestamp=now, preparation_time=now, as_of=now,
        scan_session=scan_session, target_session=target,
        market_open_time=sessions.session_open(target),
        data_source=source_name,
        scan_summary=ScanSummary(
            total_tickers_scanned=len(scan), eligible=int(scan["eligible"].sum()),
            core_picks=int((picks["bucket"] == "CORE").sum()), spec_picks=int((picks["bucket"] == "SPEC").sum()),
            asym_picks=int((picks["bucket"] == "ASYM").sum())),
        tickers=_metrics(picks),
        strategies=strategies,
        config=config,
        scanners=_scanners_record(found),
    )


def _scanners_record(found: Discovery) -> ScannersRecord | None:
    """The evening's scanner runs and attribution for the plan; None when no scanner ran."""
    if found.outcome is None:
        return None
    return ScannersRecord(evening=[ScannerRunRecord(**r.summary()) for r in found.outcome.runs],
                          found_by=found.found_by, added=found.added)


def _write_plan(cfg: Config, result: PrepareResult, chain: Universe, plan_path, now: dt.datetime,
                force: bool) -> None:
    """Under the plan lock: archive the old plan (expired, or replaced under ``force``), then write
    ``scan_results.json``, the universe and the plan; sets ``result``'s archive paths.

    Raises:
        PlanError: the old plan is corrupt, or replacing it needs ``force`` (see :func:`run_prepare`).
    """
    plan, target = result.plan, result.plan.target_session
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
        write_json_atomic(cfg.path(cfg.paths.data_dir) / "scan_results.json", _scan_json(result.scan, plan))
        save_universe(cfg, chain, now)
        save_plan(plan_path, plan)


def _have_bar(bars: pd.DataFrame, session: dt.date) -> set[str]:
    """The symbols of long ``bars`` with a bar dated ``session``."""
    return set(bars.loc[bars["date"] == session, "symbol"]) if not bars.empty else set()


def check_coverage(have: set[str] | frozenset[str], universe: list[str], session: dt.date, min_coverage: float,
                   source: str) -> None:
    """Refuse a scan whose session has bars for under ``min_coverage`` (fraction) of the universe;
    ``have``: the symbols with a bar dated ``session``.

    Raises:
        DataError: no bar at all on ``session`` (stale data) or too few symbols have one.
    """
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

    def __reduce__(self):  # pickled whole when it comes back from a backtest's worker process
        return (self.__class__, (str(self), self.first_usable))


def first_usable_night(first_bar: dt.date, lookback: int) -> dt.date:
    """The first session whose scan can score a symbol whose bars start on ``first_bar``: the
    scan needs ``lookback + 1`` bars (DESIGN §4), so it is the (lookback + 1)-th session from it."""
    days = sessions.sessions_between(first_bar, first_bar + dt.timedelta(days=2 * lookback + 30))
    return days[lookback]


def check_history(scan: pd.DataFrame, session: dt.date, lookback: int, first_bar: Callable[[], dt.date]) -> None:
    """Refuse a scan in which no symbol has ``lookback + 1`` bars (a plan of zero picks that says
    nothing about the market); a scan whose names fail the price or liquidity floors is a verdict.
    ``first_bar()``: the date of the oldest bar the scan read (asked only to word the refusal).

    Raises:
        TooLittleHistory: naming when the bars start, what the scan needs and the first usable night.
    """
    # An eligible row (reason "") settles it at once, without reading the reasons.
    if (scan.empty or scan["eligible"].to_numpy(dtype=bool).any()
            or not scan["reason"].str.startswith("fewer than").all()):
        return
    first = first_bar()
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
    if plan.scanners is not None:
        for rec in records:
            rec["found_by"] = plan.scanners.found_by.get(rec["symbol"], [])
    return {"plan_id": plan.plan_id, "scan_session": str(plan.scan_session), "as_of": plan.as_of.isoformat(),
            "data_source": plan.data_source, "tickers": records}
