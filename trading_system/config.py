"""Configuration: pydantic models of ``config.yaml``.

Every figure of DESIGN §4-7 lives here with its default.  Unknown keys are refused
(``extra="forbid"``) so a typo never silently falls back to a default.  Paths in the
file are relative to the folder that holds it.  Secrets (API keys) never come from
YAML: they are read from the environment, which ``.env`` (python-dotenv) may fill.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsConfig(_Strict):
    """File locations, relative to the config file's folder."""

    plan: str = "pending_trades.json"
    archive_dir: str = "archived_trades"
    data_dir: str = "data"
    log_dir: str = "logs"
    kill_switch: str = "KILL_SWITCH"


class DataConfig(_Strict):
    """Where bars come from. ``sample`` is the bundled real data (no keys, no network)."""

    source: Literal["sample", "polygon"] = "sample"
    sample_dir: str = "data/sample"
    store_dir: str = "data/store"


class UniverseConfig(_Strict):
    """Which tickers are scanned: the constituents file plus a watchlist, minus exclusions."""

    constituents_file: str = "data/sample/constituents.csv"
    watchlist: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    # The chain (universe.py): generator, then filters, then the watchlist added.
    generator: Literal["constituents", "top_dollar_volume"] = "constituents"
    top_n: int = Field(1000, ge=1)                # top_dollar_volume: how many names
    min_price: float = Field(0.0, ge=0)           # filter on the session's close, dollars (0 = off)
    min_dollar_volume: float = Field(0.0, ge=0)   # filter on the session's close x volume (0 = off)
    types: list[str] = Field(default_factory=lambda: ["CS", "ETF"])  # Polygon ticker types kept ([] = off)


class RsiFitConfig(_Strict):
    """Piecewise-linear RSI fit: 0 at or under ``zero_below``, 1 on [full_from, full_to], 0 at ``zero_above``."""

    zero_below: float = 30.0
    full_from: float = 65.0
    full_to: float = 75.0
    zero_above: float = 95.0

    @model_validator(mode="after")
    def _ordered(self) -> "RsiFitConfig":
        if not self.zero_below < self.full_from <= self.full_to < self.zero_above:
            raise ValueError("rsi_fit needs zero_below < full_from <= full_to < zero_above")
        return self


class ScoreWeightsConfig(_Strict):
    """Points of each term of the composite score (DESIGN §4)."""

    sharpe: float = 50.0
    rsi: float = 30.0
    trend: float = 20.0
    gradual_loss: float = 20.0
    drawdown: float = 50.0


class ScoringConfig(_Strict):
    """Indicator windows and score shape (DESIGN §4). Windows count sessions (bars)."""

    lookback: int = Field(60, ge=2)
    rsi_period: int = Field(14, ge=2)
    rsi_window: int = Field(250, ge=15)
    sma_window: int = Field(20, ge=2)
    trend_band: float = Field(0.10, gt=0)
    sharpe_scale: float = Field(2.5, gt=0)
    drawdown_threshold: float = Field(0.10, ge=0)
    risk_free_rate: float = 0.0
    periods_per_year: int = 252
    weights: ScoreWeightsConfig = ScoreWeightsConfig()
    rsi_fit: RsiFitConfig = RsiFitConfig()


class EligibilityConfig(_Strict):
    """Who may be scored: price and liquidity floors (dollars)."""

    min_price: float = 5.0
    min_dollar_volume: float = 5_000_000.0
    dollar_volume_window: int = Field(20, ge=1)


class BucketsConfig(_Strict):
    """Buckets by annualised volatility (fractions) and the minimum score of a pick."""

    core_max_volatility: float = 0.35
    spec_max_volatility: float = 0.60
    min_score: float = 50.0


class StrategiesConfig(_Strict):
    """The four strategies (DESIGN §5)."""

    benchmarks: dict[str, float] = Field(default_factory=lambda: {"SPY": 0.6, "QQQ": 0.4})
    top_core: int = 10
    top_spec: int = 5
    top_asym: int = 5
    weight_cap: float = Field(0.20, gt=0, le=1)

    @model_validator(mode="after")
    def _benchmarks_sum_to_one(self) -> "StrategiesConfig":
        total = sum(self.benchmarks.values())
        if not self.benchmarks or abs(total - 1.0) > 1e-9:
            raise ValueError(f"benchmarks weights must sum to 1 (they sum to {total:g})")
        return self


class ValidationConfig(_Strict):
    """Morning gate and strategy selection (DESIGN §6). Fractions, not percent."""

    retention_threshold: float = Field(0.85, gt=0)
    min_validation_rate: float = Field(0.50, ge=0, le=1)
    min_names: int = 5
    preference: list[Literal["ASYM", "SPEC", "TACTICAL"]] = Field(
        default_factory=lambda: ["ASYM", "SPEC", "TACTICAL"]
    )


class ExecutionConfig(_Strict):
    """Order sizing and safety (DESIGN §7). Money in dollars, fractions of equity."""

    max_wait_for_open_minutes: float = 45.0
    open_delay_seconds: float = 5.0
    sell_fill_timeout_seconds: float = 30.0
    poll_interval_seconds: float = 1.0
    cash_buffer: float = Field(0.02, ge=0, lt=1)
    min_order_dollars: float = 10.0
    min_order_equity_fraction: float = 0.001
    max_order_notional: float = 100_000.0
    max_run_notional: float = 250_000.0
    keep: list[str] = Field(default_factory=list)


class SimulatedBrokerConfig(_Strict):
    """The offline broker: a flat-file account that fills at the session's open."""

    starting_cash: float = 100_000.0
    account_file: str = "data/sim_account.json"


class AlpacaBrokerConfig(_Strict):
    """alpaca-py settings. Keys and paper/live come from the environment (ALPACA_API_KEY,
    ALPACA_SECRET_KEY, ALPACA_PAPER, ALPACA_BASE_URL), never from this file."""

    timeout_seconds: float = Field(10.0, gt=0)       # HTTP read timeout of every request
    connect_timeout_seconds: float = Field(5.0, gt=0)
    read_attempts: int = Field(4, ge=1)              # reads (GET) are retried on 429/5xx/network errors
    submit_attempts: int = Field(3, ge=1)            # a submission is resent only after a lookup found nothing
    retry_wait_seconds: float = Field(0.5, ge=0)     # first back-off; doubles, capped at 8 s


class BrokerConfig(_Strict):
    """Which broker executes: ``simulated`` (offline default) or ``alpaca``."""

    kind: Literal["simulated", "alpaca"] = "simulated"
    simulated: SimulatedBrokerConfig = SimulatedBrokerConfig()
    alpaca: AlpacaBrokerConfig = AlpacaBrokerConfig()


class PolygonConfig(_Strict):
    """Polygon (Massive) REST client settings."""

    requests_per_minute: float = Field(5.0, gt=0)
    timeout_seconds: float = Field(30.0, gt=0)
    max_retries: int = Field(5, ge=0)
    plan: Literal["free", "paid"] = "free"        # free: day D published on D+1 ET, no snapshot
    burst: int = Field(1, ge=1)                   # token-bucket size (1 = evenly spaced requests)
    backoff_seconds: float = Field(12.0, ge=0)    # first retry wait without Retry-After; doubles
    max_backoff_seconds: float = Field(120.0, ge=0)
    tickers_max_age_days: int = Field(7, ge=0)    # refresh the cached ticker types this often


class LoggingConfig(_Strict):
    """Rotating log file ``logs/pre_market_prep.log``."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_bytes: int = 5_000_000
    backups: int = 5


class Config(_Strict):
    """The whole ``config.yaml``. ``root`` is the folder of the file (not a YAML key)."""

    paths: PathsConfig = PathsConfig()
    data: DataConfig = DataConfig()
    universe: UniverseConfig = UniverseConfig()
    scoring: ScoringConfig = ScoringConfig()
    eligibility: EligibilityConfig = EligibilityConfig()
    buckets: BucketsConfig = BucketsConfig()
    strategies: StrategiesConfig = StrategiesConfig()
    validation: ValidationConfig = ValidationConfig()
    execution: ExecutionConfig = ExecutionConfig()
    broker: BrokerConfig = BrokerConfig()
    polygon: PolygonConfig = PolygonConfig()
    logging: LoggingConfig = LoggingConfig()

    root: Path = Field(default=Path("."), exclude=True)

    def path(self, relative: str) -> Path:
        """Resolve a config path against the config file's folder."""
        p = Path(relative)
        return p if p.is_absolute() else self.root / p

    def public_dict(self) -> dict:
        """The config as plain data for a plan or an archive (it never holds a secret)."""
        return self.model_dump(mode="json")


def _format_validation_error(err: ValidationError, source: Path) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{where}'; remove it or check its spelling against config.yaml's comments."
    return f"{source}: invalid value for '{where}': {first['msg']}; fix it in the config file."


def load_config(path: Path | str) -> Config:
    """Read and validate ``config.yaml``, and load ``.env`` beside it into the environment.

    Raises:
        ConfigError: the file is missing, is not YAML, or holds an unknown key or a bad value.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; pass --config PATH or copy config.yaml there.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({exc.__class__.__name__}); fix its syntax.") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping of sections (paths:, scoring:, ...).")
    try:
        cfg = Config.model_validate({**raw, "root": path.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, path)) from exc
    load_env(cfg.root)
    return cfg


def load_env(root: Path) -> None:
    """Load ``root/.env`` into ``os.environ`` without overriding variables already set."""
    from dotenv import load_dotenv

    env_file = root / ".env"
    if env_file.is_file():
        load_dotenv(env_file, override=False)


def secret(name: str) -> str | None:
    """A secret from the environment (never from YAML); ``None`` when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None
