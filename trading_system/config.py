"""Configuration: pydantic models of ``config.yaml``.

Every figure of DESIGN §4-7 lives here with its default.  Unknown keys are refused
(``extra="forbid"``) so a typo never silently falls back to a default.  Paths in the
file are relative to the folder that holds it.  Secrets (API keys) never come from
YAML: they are read from the environment, which ``.env`` (python-dotenv) may fill.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from trading_system.config_context import EventsConfig, LevelsConfig, RegimeConfig
from trading_system.config_errors import format_validation_error
from trading_system.config_scanners import ScannerEntry, check_entries
from trading_system.errors import ConfigError
from trading_system.settings_types import Count, Dollars0, Fraction, Fraction0, Points, Strict

#: The default tie-break order of the morning's selection, and the default alert events.
_PREFERENCE: tuple[Literal["ASYM", "SPEC", "TACTICAL"], ...] = ("ASYM", "SPEC", "TACTICAL")
_EVENTS: tuple[Literal["plan_ready", "validated", "orders_done", "failure", "kill_switch"], ...] = (
    "plan_ready", "validated", "orders_done", "failure", "kill_switch")


class PathsConfig(Strict):
    """File locations, relative to the config file's folder."""

    plan: str = Field("pending_trades.json", min_length=1)
    archive_dir: str = Field("archived_trades", min_length=1)
    data_dir: str = Field("data", min_length=1)
    log_dir: str = Field("logs", min_length=1)
    kill_switch: str = Field("KILL_SWITCH", min_length=1)


class DataConfig(Strict):
    """Where bars come from. ``sample`` is the bundled real data (no keys, no network).

    ``min_coverage``: the fraction of the universe that must have a bar on the scan's
    session, else the data is incomplete and no plan is written (exit 1).
    ``allow_empty_sessions``: whether a session the calendar says traded may stay empty
    after a retry (Polygon answered "OK, 0 results"); off by default: the run stops.
    """

    source: Literal["sample", "polygon"] = "sample"
    sample_dir: str = Field("data/sample", min_length=1)
    store_dir: str = Field("data/store", min_length=1)
    min_coverage: Fraction = 0.9
    allow_empty_sessions: bool = False


class UniverseConfig(Strict):
    """Which tickers are scanned: the constituents file plus a watchlist, minus exclusions."""

    constituents_file: str = Field("data/sample/constituents.csv", min_length=1)
    watchlist: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    # The chain (universe.py): generator, then filters, then the watchlist added.
    generator: Literal["constituents", "top_dollar_volume"] = "constituents"
    top_n: Count = 1000                           # top_dollar_volume: how many names
    min_price: Dollars0 = 0.0                     # filter on the session's close, dollars (0 = off)
    min_dollar_volume: Dollars0 = 0.0             # filter on the session's close x volume (0 = off)
    types: list[str] = Field(default_factory=lambda: ["CS", "ETF"])  # Polygon ticker types kept ([] = off)


class RsiFitConfig(Strict):
    """Piecewise-linear RSI fit: 0 at or under ``zero_below``, 1 on [full_from, full_to], 0 at ``zero_above``.

    RSI points, each in [0, 100].
    """

    zero_below: Points = 30.0
    full_from: Points = 65.0
    full_to: Points = 75.0
    zero_above: Points = 95.0

    @model_validator(mode="after")
    def _ordered(self) -> "RsiFitConfig":
        if not self.zero_below < self.full_from <= self.full_to < self.zero_above:
            raise ValueError("rsi_fit needs zero_below < full_from <= full_to < zero_above")
        return self


class ScoreWeightsConfig(Strict):
    """Points of each term of the composite score (DESIGN §4), each in [0, 100]."""

    sharpe: Points = 50.0
    rsi: Points = 30.0
    trend: Points = 20.0
    gradual_loss: Points = 20.0
    drawdown: Points = 50.0

    @model_validator(mode="after")
    def _some_reward(self) -> "ScoreWeightsConfig":
        if self.sharpe + self.rsi + self.trend <= 0:
            raise ValueError("at least one of the sharpe, rsi and trend weights must be above 0")
        return self


class ScoringConfig(Strict):
    """Indicator windows and score shape (DESIGN §4). Windows count sessions (bars).

    Ranges: windows >= 2 sessions; ``trend_band`` and ``drawdown_threshold`` are fractions;
    ``risk_free_rate`` is an annual fraction in [-0.1, 0.5]; ``periods_per_year`` in [1, 366]
    (252 for daily bars).
    """

    lookback: int = Field(60, ge=2)
    rsi_period: int = Field(14, ge=2)
    rsi_window: int = Field(250, ge=15)
    sma_window: int = Field(20, ge=2)
    trend_band: Fraction = 0.10
    sharpe_scale: float = Field(2.5, gt=0, le=100)
    drawdown_threshold: Annotated[float, Field(ge=0, lt=1)] = 0.10
    risk_free_rate: Annotated[float, Field(ge=-0.1, le=0.5)] = 0.0
    periods_per_year: int = Field(252, ge=1, le=366)
    weights: ScoreWeightsConfig = ScoreWeightsConfig()
    rsi_fit: RsiFitConfig = RsiFitConfig()

    @model_validator(mode="after")
    def _rsi_window_holds_the_period(self) -> "ScoringConfig":
        if self.rsi_window <= self.rsi_period:
            raise ValueError(f"rsi_window ({self.rsi_window}) must be longer than rsi_period ({self.rsi_period})")
        return self


class EligibilityConfig(Strict):
    """Who may be scored: price and liquidity floors (dollars, 0 = off)."""

    min_price: Dollars0 = 5.0
    min_dollar_volume: Dollars0 = 5_000_000.0
    dollar_volume_window: Count = 20


class BucketsConfig(Strict):
    """Buckets by annualised volatility (fractions, CORE <= core < SPEC <= spec < ASYM) and the
    minimum score of a pick (points in [0, 100])."""

    core_max_volatility: float = Field(0.35, gt=0, le=10)
    spec_max_volatility: float = Field(0.60, gt=0, le=10)
    min_score: Points = 50.0

    @model_validator(mode="after")
    def _ordered(self) -> "BucketsConfig":
        if self.spec_max_volatility <= self.core_max_volatility:
            raise ValueError("spec_max_volatility must be above core_max_volatility")
        return self


class StrategiesConfig(Strict):
    """The four strategies (DESIGN §5): benchmark weights positive and summing to 1, counts >= 1."""

    benchmarks: dict[str, Fraction] = Field(default_factory=lambda: {"SPY": 0.6, "QQQ": 0.4})
    top_core: Count = 10
    top_spec: Count = 5
    top_asym: Count = 5
    weight_cap: Fraction = 0.20

    @model_validator(mode="after")
    def _benchmarks_sum_to_one(self) -> "StrategiesConfig":
        total = sum(self.benchmarks.values())
        if not self.benchmarks or abs(total - 1.0) > 1e-9:
            raise ValueError(f"benchmarks weights must sum to 1 (they sum to {total:g})")
        return self


class ValidationConfig(Strict):
    """Morning gate and strategy selection (DESIGN §6). Fractions, not percent.

    ``max_unpriced_fraction``: when more than this fraction of the picks has no pre-market
    price (or no price source answers at all), ``validate`` stops with exit 1 and leaves
    the plan unvalidated: a missing price is a data failure, not a verdict on the pick.
    """

    retention_threshold: Fraction = 0.85
    min_validation_rate: Fraction0 = 0.50
    min_names: Count = 5
    max_unpriced_fraction: Fraction0 = 0.2
    preference: list[Literal["ASYM", "SPEC", "TACTICAL"]] = Field(
        default_factory=lambda: list(_PREFERENCE), min_length=1
    )

    @model_validator(mode="after")
    def _preference_unique(self) -> "ValidationConfig":
        if len(set(self.preference)) != len(self.preference):
            raise ValueError("preference lists a strategy twice")
        return self


class ExecutionConfig(Strict):
    """Order sizing and safety (DESIGN §7). Money in dollars, fractions of equity.

    Pre-trade limits are relative to the account's equity so they fit any account:
    ``max_order_fraction`` (one order's dollars / equity) and ``max_run_turnover`` (the sum
    of all orders' dollars / equity; a full rotation from one book to another is at most
    2 x (1 - cash_buffer)).  ``max_order_notional`` and ``max_run_notional`` are optional
    absolute caps in dollars (``null`` = off).
    """

    max_wait_for_open_minutes: float = Field(45.0, ge=0, le=390)
    open_delay_seconds: float = Field(5.0, ge=0, le=600)
    sell_fill_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    poll_interval_seconds: float = Field(1.0, gt=0, le=60)
    cash_buffer: Annotated[float, Field(ge=0, lt=1)] = 0.02
    min_order_dollars: float = Field(10.0, ge=1)
    min_order_equity_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.001
    max_order_fraction: Fraction = 1.0
    max_run_turnover: float = Field(2.0, gt=0, le=4)
    max_order_notional: float | None = Field(None, gt=0)
    max_run_notional: float | None = Field(None, gt=0)
    keep: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _poll_within_timeout(self) -> "ExecutionConfig":
        if self.poll_interval_seconds > self.sell_fill_timeout_seconds:
            raise ValueError("poll_interval_seconds must not exceed sell_fill_timeout_seconds")
        return self


class SimulatedBrokerConfig(Strict):
    """The offline broker: a flat-file account that fills at the session's open."""

    starting_cash: float = Field(100_000.0, gt=0)
    account_file: str = Field("data/sim_account.json", min_length=1)


class AlpacaBrokerConfig(Strict):
    """alpaca-py settings. Keys and paper/live come from the environment (ALPACA_API_KEY,
    ALPACA_SECRET_KEY, ALPACA_PAPER, ALPACA_BASE_URL), never from this file."""

    timeout_seconds: float = Field(10.0, gt=0, le=300)         # HTTP read timeout of every request
    connect_timeout_seconds: float = Field(5.0, gt=0, le=300)
    read_attempts: int = Field(4, ge=1, le=20)                 # reads (GET) are retried on 429/5xx/network errors
    submit_attempts: int = Field(3, ge=1, le=10)               # resent only after a lookup found nothing
    retry_wait_seconds: float = Field(0.5, ge=0, le=60)        # first back-off; doubles, capped at 8 s


class BrokerConfig(Strict):
    """Which broker executes: ``simulated`` (offline default) or ``alpaca``."""

    kind: Literal["simulated", "alpaca"] = "simulated"
    simulated: SimulatedBrokerConfig = SimulatedBrokerConfig()
    alpaca: AlpacaBrokerConfig = AlpacaBrokerConfig()


class PolygonConfig(Strict):
    """Polygon (Massive) REST client settings."""

    requests_per_minute: float = Field(5.0, gt=0, le=1_000_000)
    timeout_seconds: float = Field(30.0, gt=0, le=600)
    max_retries: int = Field(5, ge=0, le=20)
    plan: Literal["free", "paid"] = "free"        # free: day D published on D+1 ET, no snapshot
    burst: int = Field(1, ge=1, le=1000)          # token-bucket size (1 = evenly spaced requests)
    backoff_seconds: float = Field(12.0, ge=0, le=600)    # first retry wait without Retry-After; doubles
    max_backoff_seconds: float = Field(120.0, ge=0, le=3600)
    tickers_max_age_days: int = Field(7, ge=0, le=365)    # refresh the cached ticker types this often
    give_up_after_seconds: float = Field(60.0, gt=0, le=3600)  # an unreachable host: stop retrying after this

    @model_validator(mode="after")
    def _backoff_ordered(self) -> "PolygonConfig":
        if self.max_backoff_seconds < self.backoff_seconds:
            raise ValueError("max_backoff_seconds must be at least backoff_seconds")
        return self


NotifyEvent = Literal["plan_ready", "validated", "orders_done", "failure", "kill_switch"]


class NotifyConfig(Strict):
    """Alerts through Apprise (DESIGN §1): ``urls`` (Apprise URLs: tgram://, discord://, slack://,
    mailto://, ntfy://, json:// ...; they may hold secrets, so they are never logged) and ``events``,
    which of plan_ready, validated, orders_done, failure, kill_switch to send.  ``timeout_seconds``
    bounds one notification; a failed one is logged and never fails or delays a run's orders."""

    urls: list[str] = Field(default_factory=list)
    events: list[NotifyEvent] = Field(default_factory=lambda: list(_EVENTS))
    timeout_seconds: float = Field(10.0, gt=0, le=120)


class LoggingConfig(Strict):
    """Rotating log file ``logs/pre_market_prep.log``."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_bytes: int = Field(5_000_000, ge=10_000)
    backups: int = Field(5, ge=0, le=100)


class CostsConfig(Strict):
    """Trading costs charged by the simulated broker (and so by the backtest), DESIGN §12.

    ``commission_per_order``: dollars per filled order (0: Alpaca charges no commission on US
    equities).  ``slippage_bps``: every fill is this many basis points worse than the open, in the
    direction of the trade (buys higher, sells lower); 5 bps is about half the quoted spread plus
    impact of a liquid large-cap at the open, a deliberately modest figure to raise for thinner names.
    """

    commission_per_order: Dollars0 = 0.0
    slippage_bps: float = Field(5.0, ge=0, le=1000)


class Config(Strict):
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
    costs: CostsConfig = CostsConfig()
    polygon: PolygonConfig = PolygonConfig()
    notify: NotifyConfig = NotifyConfig()
    logging: LoggingConfig = LoggingConfig()
    scanners: list[ScannerEntry] = Field(default_factory=list)   # DESIGN §10; see config_scanners.py
    regime: RegimeConfig = RegimeConfig()                         # DESIGN §11; see config_context.py
    events: EventsConfig = EventsConfig()
    levels: LevelsConfig = LevelsConfig()

    root: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _scanners(self) -> "Config":
        check_entries(self.scanners)
        return self

    def path(self, relative: str) -> Path:
        """Resolve a config path against the config file's folder."""
        p = Path(relative)
        return p if p.is_absolute() else self.root / p

    def public_dict(self) -> dict:
        """The config as plain data for a plan or an archive (it never holds a secret)."""
        return self.model_dump(mode="json")


def load_config(path: Path | str) -> Config:
    """Read and validate ``config.yaml``, and load ``.env`` beside it into the environment.

    Raises:
        ConfigError: the file is missing, is not a readable regular UTF-8 file, is not YAML, or holds
            an unknown key or a bad value.  (A FIFO is refused before it is opened: reading one blocks.)
    """
    import stat  # local, so this change stays inside load_config

    path = Path(path)
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            what = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            raise ConfigError(f"config file {path} is {what}; pass --config PATH of a config.yaml file.")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} not found; pass --config PATH or copy config.yaml there.") from exc
    except OSError as exc:  # PermissionError, NotADirectoryError, EIO, ...
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror or exc.__class__.__name__}); "
                          "check its permissions.") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not text (byte {exc.start} is not UTF-8); "
                          "it must be YAML.") from exc
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({exc.__class__.__name__}); fix its syntax.") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping of sections (paths:, scoring:, ...).")
    try:
        cfg = Config.model_validate({**raw, "root": path.resolve().parent})
    except ValidationError as exc:
        # from None: pydantic's own text repeats the input (an Apprise URL's token) into -v and the log
        raise ConfigError(format_validation_error(exc, path, raw)) from None
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
