"""The plan file ``pending_trades.json``: pydantic models, atomic load/save, lock, archive.

Field names follow the original system (DESIGN §8): ``timestamp``, ``preparation_time``,
``market_open_time``, ``strategies.{NAME}.allocations / original_scores``,
``scan_summary.*`` and ``validation_results.*``; ``schema_version``, ``plan_id``, ``as_of``,
per-ticker metrics and buckets, the data source and the config are added.  Weights are
fractions of the account summing to 1; scores are 0-100 points.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Final, Iterator, Literal

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trading_system.errors import LockHeldError, PlanError, first_problem
from trading_system.state.atomic import atomic_write, strict_json
from trading_system.vocabulary import STRATEGY_NAMES, StrategyName

SCHEMA_VERSION: Final = 1


class _Model(BaseModel):
    # NaN / inf are refused in every float field, and (should one reach a model that skipped
    # validation) written as NaN constants, never as a silent null: ``save_plan`` then refuses them.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, ser_json_inf_nan="constants")


#: A weight: a finite fraction of the account in [0, 1].
Weight = Annotated[float, Field(ge=0, le=1)]
#: A score: 0-100 points.
Score = Annotated[float, Field(ge=0, le=100)]
WEIGHT_TOLERANCE = 1e-6


def _check_weights(weights: dict[str, float], what: str) -> None:
    """Weights (already finite, in [0, 1]) must sum to 1 within ``WEIGHT_TOLERANCE``, or be empty."""
    total = math.fsum(weights.values())
    if weights and abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"{what} must sum to 1 (they sum to {total:.6f})")


class TickerMetrics(_Model):
    """One scored ticker of the evening scan (DESIGN §4). Fractions, not percent."""

    bucket: Literal["CORE", "SPEC", "ASYM"]
    score: float = Field(ge=0, le=100)
    close: float = Field(gt=0)
    sharpe: float
    volatility: float = Field(ge=0)
    rsi: float = Field(ge=0, le=100)
    max_drawdown: float = Field(ge=0, le=1)
    gradual_loss: float = Field(ge=0, le=1)
    trend: float = Field(ge=0, le=1)
    dollar_volume: float = Field(ge=0)


class Strategy(_Model):
    """One candidate strategy: weights (fractions summing to 1), the evening scores, and a note in words
    when its allocation needs one (its names cannot honour the weight cap)."""

    allocations: dict[str, Weight]
    original_scores: dict[str, Score | None]   # None: a benchmark the scan could not score
    note: str | None = None                    # e.g. why its weights break the cap (strategies.cap_note)

    @model_validator(mode="after")
    def _weights(self) -> "Strategy":
        _check_weights(self.allocations, "allocations")
        missing = sorted(set(self.allocations) - set(self.original_scores))
        if missing:
            raise ValueError(f"original_scores has no entry for {', '.join(missing)}")
        return self


class ScanSummary(_Model):
    """Counts of the evening scan."""

    total_tickers_scanned: int
    eligible: int
    core_picks: int
    spec_picks: int
    asym_picks: int


class PickCheck(_Model):
    """The morning check of one pick: evening vs morning score (points) and the verdict."""

    original_score: float
    current_score: float | None
    retention: float | None
    passed: bool
    reason: str
    price: float | None
    price_source: str | None


class ValidatedStrategy(_Model):
    """One strategy after the 85 % gate: surviving weights renormalised to 1."""

    validated_allocations: dict[str, Weight]
    rejected_tickers: list[str]
    validation_rate: float = Field(ge=0, le=1)
    contestant: bool

    @model_validator(mode="after")
    def _weights(self) -> "ValidatedStrategy":
        _check_weights(self.validated_allocations, "validated_allocations")
        return self


class ValidationResults(_Model):
    """What ``prep validate`` decided (DESIGN §6)."""

    validation_time: dt.datetime
    selected_strategy: StrategyName
    selection_reason: str
    validated_strategies: dict[str, ValidatedStrategy]
    checks: dict[str, PickCheck]
    orders_executed: int = 0
    dry_run: bool = False
    exposure: float = Field(1.0, ge=0, le=1)   # fraction of the investable equity traded (the regime's)


class ScannerRunRecord(_Model):
    """One scanner's run on the night (DESIGN §10): what it found (after ``max_symbols``) and how it went."""

    name: str
    phase: str
    action: Literal["add", "veto", "report"]
    found: int = Field(ge=0)
    symbols: list[str]
    execution_time_ms: float = Field(ge=0)
    attempts: int = Field(ge=0)
    skipped: bool = False
    error: str | None = None
    disabled: bool = False
    capped_from: int | None = None


class ScannersRecord(_Model):
    """The scanners of the plan: the evening's runs and attribution, the morning's runs and vetoes.

    ``found_by``: symbol -> the evening scanners that found it; ``added``: the symbols ``add``
    scanners put in the universe that the universe chain did not hold; ``vetoed``: pick -> why
    a morning ``veto`` scanner rejected it.
    """

    evening: list[ScannerRunRecord] = Field(default_factory=list)
    found_by: dict[str, list[str]] = Field(default_factory=dict)
    added: list[str] = Field(default_factory=list)
    morning: list[ScannerRunRecord] = Field(default_factory=list)
    vetoed: dict[str, str] = Field(default_factory=dict)


class RegimeRecord(_Model):
    """The market's regime as of the evening (DESIGN §11).

    ``status``: ``ok``, ``unavailable`` (no data: ``note`` says why; the gate is off for the
    night) or ``off`` (``regime.enabled: false``).  ``source``: where the inputs came from (the
    indices, or the ETF proxies).  ``inputs``: every figure the rules read (closes and averages in
    index points or dollars, drawdowns and percentiles as fractions, VIX in points).
    ``exposure``: the fraction of the investable equity the morning trades; ``strategy``: the
    strategy the regime imposes (BUY_HOLD under RISK_OFF), or None.
    """

    status: Literal["ok", "unavailable", "off"]
    state: Literal["RISK_ON", "NEUTRAL", "RISK_OFF"] | None = None
    source: str | None = None
    inputs: dict[str, float | bool | None] = Field(default_factory=dict)
    reasons: list[str] = Field(default_factory=list)
    exposure: float = Field(1.0, ge=0, le=1)
    strategy: StrategyName | None = None
    note: str | None = None


class EarningsEvent(_Model):
    """One earnings report: its session (a weekend date moved to the next session), the time of day
    as the provider gives it (``bmo``, ``amc`` or None when unknown) and the provider."""

    symbol: str
    date: dt.date
    time: str | None = None
    source: str


class EventsRecord(_Model):
    """The earnings gate of the evening (DESIGN §11).

    ``window``: the sessions whose reports count ([scan session, target + within_sessions]).
    ``removed``: pick -> why it left before the strategies were built.  ``unknown``: scored names
    the provider does not cover (never "clear").  ``events``: the reports in the window for the universe.
    """

    status: Literal["ok", "unavailable", "off"]
    source: str | None = None
    window: list[dt.date] = Field(default_factory=list)
    removed: dict[str, str] = Field(default_factory=dict)
    unknown: list[str] = Field(default_factory=list)
    events: list[EarningsEvent] = Field(default_factory=list)
    note: str | None = None


class PickLevels(_Model):
    """A pick's price levels (DESIGN §11), dollars per share: Wilder ATR, the entry (last close), the
    invalidation (entry - k x ATR), the targets (entry + r x risk) and the risk per share; and per
    strategy holding it, ``account_risk`` = weight x risk per share / entry (a fraction of equity)."""

    atr: float = Field(gt=0)
    entry: float = Field(gt=0)
    invalidation: float
    target_1r: float
    target_2r: float
    risk_per_share: float = Field(gt=0)
    account_risk: dict[str, float] = Field(default_factory=dict)


class ContextRecord(_Model):
    """The market context of the plan: regime, earnings events and each pick's levels."""

    regime: RegimeRecord
    events: EventsRecord
    levels: dict[str, PickLevels] = Field(default_factory=dict)


class Plan(_Model):
    """The whole ``pending_trades.json``."""

    schema_version: Literal[1] = SCHEMA_VERSION
    plan_id: str = Field(pattern=r"^[0-9]{8}-[0-9a-f]{8}$")
    timestamp: dt.datetime
    preparation_time: dt.datetime
    as_of: dt.datetime
    scan_session: dt.date
    target_session: dt.date
    market_open_time: dt.datetime
    data_source: str
    scan_summary: ScanSummary
    tickers: dict[str, TickerMetrics]
    strategies: dict[StrategyName, Strategy]
    config: dict[str, Any]
    validation_results: ValidationResults | None = None
    scanners: ScannersRecord | None = None   # None: no scanner configured
    context: ContextRecord | None = None     # None: a plan written before the market context existed

    @model_validator(mode="after")
    def _consistent(self) -> "Plan":
        missing = [n for n in STRATEGY_NAMES if n not in self.strategies]
        if missing:
            raise ValueError(f"strategies {missing} are missing")
        if self.target_session <= self.scan_session:
            raise ValueError("target_session must come after scan_session")
        for name, strategy in self.strategies.items():
            unscored = sorted(s for s in strategy.allocations if strategy.original_scores[s] is None)
            if name != StrategyName.BUY_HOLD and unscored:  # the morning gate divides by the evening score
                raise ValueError(f"strategies.{name}.original_scores has no score for {', '.join(unscored)}")
        if self.validation_results is not None:
            _check_validation(self.validation_results, self.strategies)
        return self

    @property
    def stage(self) -> str:
        """``prepared`` or ``validated``."""
        return "validated" if self.validation_results is not None else "prepared"


def _check_validation(vr: ValidationResults, strategies: dict[StrategyName, Strategy]) -> None:
    """``validation_results`` must fit the evening strategies it validated.

    The selected strategy has a validated entry; each validated strategy exists in the evening
    and keeps a subset of its evening names; every validated or rejected name of a contestant
    (all but BUY_HOLD, whose benchmarks are not re-scored) has a check, and a kept name passed it.
    """
    where = "validation_results"
    if vr.selected_strategy not in vr.validated_strategies:
        raise ValueError(f"{where}.selected_strategy {vr.selected_strategy} has no entry in "
                         f"{where}.validated_strategies")
    for name, v in vr.validated_strategies.items():
        field = f"{where}.validated_strategies.{name}"
        if name not in strategies:
            raise ValueError(f"{field} is not one of the plan's strategies")
        evening = strategies[StrategyName(name)]  # a plan's strategy, so a StrategyName
        extra = sorted(set(v.validated_allocations) - set(evening.allocations))
        if extra:
            raise ValueError(f"{field}.validated_allocations holds {', '.join(extra)}, "
                             f"which strategies.{name}.allocations does not")
        if name == StrategyName.BUY_HOLD:
            continue
        unchecked = sorted((set(v.validated_allocations) | set(v.rejected_tickers)) - set(vr.checks))
        if unchecked:
            raise ValueError(f"{where}.checks has no check for {', '.join(unchecked)} of {name}")
        failed = sorted(s for s in v.validated_allocations if not vr.checks[s].passed)
        if failed:
            raise ValueError(f"{field}.validated_allocations keeps {', '.join(failed)}, whose check did not pass")


def load_plan(path: Path) -> Plan | None:
    """Parse and validate the plan file; ``None`` when there is none.

    One pass in pydantic-core (``model_validate_json`` on the bytes), ~3x faster than
    ``json.loads`` then ``model_validate``, with the same result.  Anything but a regular file
    (a folder, a FIFO that would block the read forever, a device) is refused before it is opened.

    Raises:
        PlanError: the file is not a regular readable file, is not JSON, or does not match the
            schema (it is left untouched).
    """
    path = Path(path)
    fix = "it was left as it is: fix it or run 'prep prepare' again."
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise PlanError(f"{path} is not a regular file (a folder, a pipe or a device); "
                            "move it away and run 'prep prepare' again.")
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:  # PermissionError, EIO, ...
        raise PlanError(f"{path} cannot be read ({exc.strerror or exc.__class__.__name__}); {fix}") from exc
    try:
        return Plan.model_validate_json(data)
    except ValidationError as exc:
        raise PlanError(_plan_problem(path, exc, fix)) from exc


def _plan_problem(path: Path, exc: ValidationError, fix: str) -> str:
    """One sentence for the first error pydantic found, naming the field (``a.b.c``) where it has one."""
    problem = first_problem(exc)
    if problem.kind == "json_invalid":
        return f"{path} is not valid JSON ({problem.message.removeprefix('Invalid JSON: ')}); {fix}"
    return f"{path} is not a valid plan ({problem.clause()}); {fix}"


def save_plan(path: Path, plan: Plan) -> None:
    """Write the plan atomically (the bytes ``write_json_atomic`` writes for its JSON dump).

    The tool never writes a plan it would refuse to load: the bytes are read back through
    ``Plan`` first (~1 ms), which also checks a plan built by ``model_copy(update=...)``,
    since that skips validation.

    Raises:
        ValueError: the plan holds a NaN or an infinity (``config`` is free-form), or does not
            validate; nothing is written.  That is a bug, not an input to report.
    """
    payload = strict_json(plan.model_dump_json(indent=2).encode(), path)   # NaN as constants: see _Model
    try:
        Plan.model_validate_json(payload)
    except ValidationError as exc:
        raise ValueError(f"refusing to write {path}: {_plan_problem(path, exc, 'this is a bug')}") from exc
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(payload))


def archive_path(archive_dir: Path, when: dt.datetime) -> Path:
    """``archived_trades/pending_trades_YYYYMMDD_HHMMSS.json`` for ``when`` (never overwrites)."""
    base = Path(archive_dir) / f"pending_trades_{when.strftime('%Y%m%d_%H%M%S')}.json"
    path, n = base, 1
    while path.exists():
        path = base.with_name(f"{base.stem}_{n}.json")
        n += 1
    return path


@contextmanager
def plan_lock(plan_path: Path, timeout: float = 0.0) -> Iterator[None]:
    """Hold the lock beside the plan file for the whole run, so two runs never overlap.

    Raises:
        LockHeldError: another ``prep`` run holds it.
    """
    lock_path = Path(str(plan_path) + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=timeout)
    except Timeout as exc:
        raise LockHeldError(
            f"another prep run holds {lock_path}; wait for it to finish and run this command again."
        ) from exc
    try:
        yield
    finally:
        lock.release()
