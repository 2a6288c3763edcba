"""The plan file ``pending_trades.json``: pydantic models, atomic load/save, lock, archive.

Field names follow the original system (DESIGN §8): ``timestamp``, ``preparation_time``,
``market_open_time``, ``strategies.{NAME}.allocations / original_scores``,
``scan_summary.*`` and ``validation_results.*``; ``schema_version``, ``plan_id``, ``as_of``,
per-ticker metrics and buckets, the data source and the config are added.  Weights are
fractions of the account summing to 1; scores are 0-100 points.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Literal

import pydantic_core
from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .atomic import atomic_write
from .errors import LockHeldError, PlanError

SCHEMA_VERSION = 1
STRATEGY_NAMES = ("BUY_HOLD", "TACTICAL", "SPEC", "ASYM")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    """One candidate strategy: weights (fractions summing to 1) and the evening scores."""

    allocations: dict[str, float]
    original_scores: dict[str, float | None]

    @model_validator(mode="after")
    def _weights(self) -> "Strategy":
        if self.allocations:
            total = sum(self.allocations.values())
            if abs(total - 1.0) > 1e-6 or any(w < 0 for w in self.allocations.values()):
                raise ValueError(f"allocations must be non-negative and sum to 1 (they sum to {total:.6f})")
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

    validated_allocations: dict[str, float]
    rejected_tickers: list[str]
    validation_rate: float = Field(ge=0, le=1)
    contestant: bool


class ValidationResults(_Model):
    """What ``prep validate`` decided (DESIGN §6)."""

    validation_time: dt.datetime
    selected_strategy: Literal["BUY_HOLD", "TACTICAL", "SPEC", "ASYM"]
    selection_reason: str
    validated_strategies: dict[str, ValidatedStrategy]
    checks: dict[str, PickCheck]
    orders_executed: int = 0
    dry_run: bool = False


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
    strategies: dict[Literal["BUY_HOLD", "TACTICAL", "SPEC", "ASYM"], Strategy]
    config: dict[str, Any]
    validation_results: ValidationResults | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "Plan":
        missing = [n for n in STRATEGY_NAMES if n not in self.strategies]
        if missing:
            raise ValueError(f"strategies {missing} are missing")
        if self.target_session <= self.scan_session:
            raise ValueError("target_session must come after scan_session")
        return self

    @property
    def stage(self) -> str:
        """``prepared`` or ``validated``."""
        return "validated" if self.validation_results is not None else "prepared"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temp file in the same folder, fsync, then ``os.replace``.

    A crash leaves either the old file or the new one, never half of one.  Encoded by
    pydantic-core (stdlib ``json`` falls back to its pure-Python encoder once ``indent``
    is set, ~25x slower on a plan); dates and datetimes as ISO 8601, other objects by ``str``.
    """
    payload = pydantic_core.to_json(data, indent=2, fallback=str) + b"\n"
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(payload))


def load_plan(path: Path) -> Plan | None:
    """Parse and validate the plan file; ``None`` when there is none.

    One pass in pydantic-core (``model_validate_json`` on the bytes), ~3x faster than
    ``json.loads`` then ``model_validate``, with the same result.

    Raises:
        PlanError: the file is not JSON or does not match the schema (it is left untouched).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return Plan.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            why = first["msg"].removeprefix("Invalid JSON: ")
            raise PlanError(
                f"{path} is not valid JSON ({why}); it was left as it is: fix it or run 'prep prepare' again."
            ) from exc
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise PlanError(
            f"{path} is not a valid plan ({where}: {first['msg']}); it was left as it is: "
            "fix it or run 'prep prepare' again."
        ) from exc


def save_plan(path: Path, plan: Plan) -> None:
    """Write the plan atomically (the bytes ``write_json_atomic`` writes for its JSON dump)."""
    payload = plan.model_dump_json(indent=2).encode() + b"\n"
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
