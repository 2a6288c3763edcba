"""The evening's discovery (DESIGN §10): the scanners run on the whole market's bars of the night,
and the finds of ``action: add`` scanners join the universe before it is scored.

The bars a scanner reads are those of every symbol the source holds (the sample's symbols, or
every ticker Polygon's grouped daily gave the store), over ``HISTORY_DAYS`` calendar days up to
the scan session, split-adjusted as of it: the same clamp as the scan, so a scanner can never
read a bar after the night.  Without scanners nothing changes: the universe's bars alone are read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd

from trading_system.config import Config
from trading_system.marketdata.base import MarketData
from trading_system.prepare.scanners.base import Phase, ScanContext
from trading_system.prepare.scanners.record import scanners_dir
from trading_system.prepare.scanners.runner import ScanOutcome, run_scanners

#: Calendar days of history read for the scan: enough for the 250-session RSI window.
HISTORY_DAYS = 400


@dataclasses.dataclass
class Discovery:
    """The night's bars to score (long frame, the universe and the added finds only), the scanner
    runs, and the symbols the ``add`` scanners put in the universe that it did not hold."""

    bars: pd.DataFrame
    outcome: ScanOutcome | None
    added: list[str]

    def universe(self, chain: list[str]) -> list[str]:
        """The night's universe: the chain's symbols and the added finds, sorted."""
        return sorted(set(chain) | set(self.added))

    @property
    def found_by(self) -> dict[str, list[str]]:
        """symbol -> the scanners that found it (every action), symbols sorted."""
        return self.outcome.found_by() if self.outcome is not None else {}


def history_start(session: dt.date) -> dt.date:
    """The first calendar day of the scan's history window for ``session``."""
    return session - dt.timedelta(days=HISTORY_DAYS)


def scan_context(cfg: Config, bars: pd.DataFrame, session: dt.date, now: dt.datetime, phase: Phase,
                 universe: list[str] | None = None, premarket: dict[str, float] | None = None) -> ScanContext:
    """The context every scanner of the night reads: ``bars`` (long, split-adjusted, dated <=
    ``session``), the universe and the watchlist as sets, the pre-market prices (morning)."""
    return ScanContext(session=session, phase=phase, now=now, bars=bars, premarket=dict(premarket or {}),
                       universe=frozenset(universe or []),
                       watchlist=frozenset(s.upper() for s in cfg.universe.watchlist))


def discover(cfg: Config, source: MarketData, session: dt.date, now: dt.datetime, universe: list[str],
             record: bool) -> Discovery:
    """Read the night's bars, run the evening scanners, add the ``add`` finds to ``universe``.

    ``record``: write the scanners' state and stats (False for a dry run).  A symbol in
    ``universe.exclude`` is never added.  Raises what ``source.bars`` raises (DataError, AsOfError).
    """
    evening = [e for e in cfg.scanners if e.enabled and e.phase == "evening"]
    if not evening:
        return Discovery(bars=source.bars(end=session, start=history_start(session), symbols=universe),
                         outcome=None, added=[])
    market = source.bars(end=session, start=history_start(session))
    ctx = scan_context(cfg, market, session, now, "evening", universe)
    state = scanners_dir(cfg.path(cfg.paths.data_dir)) if record else None
    outcome = run_scanners(cfg.scanners, ctx, state_dir=state)
    exclude = {s.upper() for s in cfg.universe.exclude}
    held = set(universe)
    added = sorted({s for s, names in outcome.found_by(("add",)).items()} - held - exclude)
    keep = held | set(added)
    bars = market[market["symbol"].isin(keep)].reset_index(drop=True)
    return Discovery(bars=bars, outcome=outcome, added=added)
