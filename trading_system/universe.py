"""Which tickers the evening scan scores: constituents file + benchmarks + watchlist - exclude."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .config import Config
from .errors import ConfigError


def load_universe(cfg: Config) -> list[str]:
    """Sorted symbols to scan.

    Requires: ``universe.constituents_file`` (CSV with a ``symbol`` column).
    Sets: the strategies' benchmarks (SPY, QQQ) and the watchlist are always added, so
    BUY_HOLD's names are scored too; ``universe.exclude`` is removed last.

    Raises:
        ConfigError: the constituents file is missing or has no ``symbol`` column.
    """
    path: Path = cfg.path(cfg.universe.constituents_file)
    try:
        table = pd.read_csv(path, dtype=str)
    except FileNotFoundError as exc:
        raise ConfigError(f"constituents file {path} not found; fix universe.constituents_file in the config.") from exc
    if "symbol" not in table.columns:
        raise ConfigError(f"constituents file {path} has no 'symbol' column.")
    symbols = set(table["symbol"].dropna().str.strip().str.upper())
    symbols |= set(cfg.strategies.benchmarks) | {s.upper() for s in cfg.universe.watchlist}
    symbols -= {s.upper() for s in cfg.universe.exclude}
    return sorted(s for s in symbols if s)
