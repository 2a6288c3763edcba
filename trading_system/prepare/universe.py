"""Which tickers the evening scan scores: a chain set in config (DESIGN §2, issue 3).

1. generator: the constituents file, or the top ``universe.top_n`` symbols by the session's
   dollar volume (close x volume) from the source's whole-market bars (grouped daily);
2. filters: session close >= ``min_price``, close x volume >= ``min_dollar_volume`` (each off
   at 0), Polygon ticker type in ``types`` (only where the source has reference data), and
   the ``exclude`` list;
3. the watchlist and the strategies' benchmarks added (``exclude`` still wins: never scanned).

Each run saves the result under ``data/universe/universe_<session>.json`` with its source.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pandas as pd

from trading_system.config import Config
from trading_system.errors import ConfigError
from trading_system.marketdata.base import MarketData
from trading_system.state.atomic import write_json_atomic


@dataclasses.dataclass
class Universe:
    """The symbols to scan (sorted), what generated them, and what each step of the chain did."""

    symbols: list[str]
    session: dt.date | None
    source: str
    data_source: str | None
    steps: list[dict]

    def to_dict(self) -> dict:
        return {"session": str(self.session) if self.session else None, "source": self.source,
                "data_source": self.data_source, "count": len(self.symbols), "steps": self.steps,
                "symbols": self.symbols}


#: The last constituents file read: (path, mtime_ns, size) -> its symbols.  A backtest scans
#: hundreds of nights from one process; the file is parsed again only when it changes.
_CONSTITUENTS: dict[tuple[str, int, int], frozenset[str]] = {}


def _constituents(cfg: Config) -> set[str]:
    """The symbols of ``universe.constituents_file`` (a CSV with a ``symbol`` column), upper-cased.

    Raises:
        ConfigError: the file is missing, is not a regular readable file (a FIFO is refused before
            it is opened: reading one blocks), or is not a CSV with a ``symbol`` column.
    """
    import stat

    path: Path = cfg.path(cfg.universe.constituents_file)
    fix = "fix universe.constituents_file in the config."
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"constituents file {path} is not a regular file (a folder, a pipe or a device); {fix}")
        key = (str(path), st.st_mtime_ns, st.st_size)
        if key not in _CONSTITUENTS:
            table = pd.read_csv(path, dtype=str, encoding="utf-8")
            if "symbol" not in table.columns:
                raise ConfigError(f"constituents file {path} has no 'symbol' column; {fix}")
            _CONSTITUENTS.clear()
            _CONSTITUENTS[key] = frozenset(set(table["symbol"].dropna().str.strip().str.upper()) - {""})
    except FileNotFoundError as exc:
        raise ConfigError(f"constituents file {path} not found; {fix}") from exc
    except OSError as exc:  # PermissionError, EIO, ...
        raise ConfigError(f"constituents file {path} cannot be read ({exc.strerror or exc.__class__.__name__}); "
                          f"{fix}") from exc
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ConfigError(f"constituents file {path} is not a CSV of symbols ({exc.__class__.__name__}); "
                          f"{fix}") from exc
    return set(_CONSTITUENTS[key])


def _session_bars(source: MarketData | None, session: dt.date | None, why: str) -> pd.DataFrame:
    """Raw bars of ``session`` for every symbol the source holds (index symbol)."""
    if source is None or session is None:
        raise ConfigError(f"{why} needs market data; run it through 'prep universe' or 'prep prepare'.")
    return source.session_bars(session)


def build_universe(cfg: Config, source: MarketData | None = None, session: dt.date | None = None) -> Universe:
    """Run the universe chain of ``cfg.universe`` for ``session``.

    Requires: for the top-N generator and the price / dollar-volume filters, a ``source``
    whose bars of ``session`` are available (``ensure_session`` was called); for the type
    filter, a source with ``ticker_types()`` (Polygon), else the filter is skipped and noted.
    Sets: a ``Universe``; every step records how many symbols remain and which it removed.

    Raises:
        ConfigError: the constituents file is missing or has no ``symbol`` column.
    """
    u = cfg.universe
    steps: list[dict] = []
    day = None
    if u.generator == "constituents":
        symbols = _constituents(cfg)
        origin = f"constituents file {u.constituents_file}"
    else:
        day = _session_bars(source, session, "universe.generator: top_dollar_volume")
        dollar_volume = (day["close"] * day["volume"]).sort_values(ascending=False, kind="stable")
        symbols = set(dollar_volume.index[: u.top_n])
        origin = f"top {u.top_n} by dollar volume of session {session} ({source.name if source else '?'} grouped daily)"
    steps.append({"step": "generator", "detail": origin, "count": len(symbols)})

    def apply(name: str, keep: set[str]) -> None:
        nonlocal symbols
        removed = sorted(symbols - keep)
        symbols = symbols & keep
        steps.append({"step": name, "count": len(symbols), "removed": removed})

    if u.min_price > 0 or u.min_dollar_volume > 0:
        day = day if day is not None else _session_bars(source, session, "universe.min_price / min_dollar_volume")
        if u.min_price > 0:
            apply(f"close >= {u.min_price:g}", set(day.index[day["close"] >= u.min_price]))
        if u.min_dollar_volume > 0:
            apply(f"close x volume >= {u.min_dollar_volume:g}",
                  set(day.index[day["close"] * day["volume"] >= u.min_dollar_volume]))
    if u.types:
        table = source.ticker_types() if source is not None else None
        if table is None:
            steps.append({"step": f"type in {u.types}", "count": len(symbols),
                          "skipped": f"the {source.name if source else 'configured'} source has no "
                                     "ticker reference data"})
        else:
            apply(f"type in {u.types}", set(table.index[table.isin(u.types)]))
    exclude = {s.upper() for s in u.exclude}
    if exclude:
        apply("exclude", symbols - exclude)
    added = ({s.upper() for s in u.watchlist} | set(cfg.strategies.benchmarks)) - exclude
    steps.append({"step": "watchlist + benchmarks", "count": len(symbols | added), "added": sorted(added - symbols)})
    symbols |= added
    return Universe(symbols=sorted(symbols), session=session, source=origin,
                    data_source=source.name if source else None, steps=steps)


def save_universe(cfg: Config, universe: Universe, when: dt.datetime) -> Path:
    """Write ``data/universe/universe_<session>.json`` (atomic): symbols, source, the chain's steps."""
    name = f"universe_{universe.session or when.date()}.json"
    path = cfg.path(cfg.paths.data_dir) / "universe" / name
    write_json_atomic(path, {"created_at": when.isoformat(), **universe.to_dict()})
    return path


def run_universe(cfg: Config, clock) -> tuple[Universe, Path]:
    """``prep universe``: build and save the universe of the last closed session, without a plan.

    Raises:
        AsOfError / DataError: the session's bars are outside the data, missing or not published.
    """
    from trading_system import sessions
    from trading_system.runtime import make_source

    now = clock.now()
    session = sessions.last_closed_session(now)
    source = make_source(cfg, clock)
    source.ensure_session(session)
    universe = build_universe(cfg, source, session)
    return universe, save_universe(cfg, universe, now)
