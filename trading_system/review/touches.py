"""``prep replay``: which of each pick's price levels the sessions after the scan touched first (DESIGN §11).

A plan written with the market context records each pick's levels (``context.levels``: entry,
invalidation, 1R and 2R targets, dollars per share on the scan session's split basis).  Over the
1, 5 and 20 sessions after the scan (the target session is the first, as for the forward returns)
``prepare.context.levels.first_touch`` says what each pick touched first.  A plan without levels
(written before the context existed, ``context`` absent or null) has no touches: ``None``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd

from trading_system import sessions
from trading_system.config import Config
from trading_system.marketdata.base import MarketData
from trading_system.prepare.context.levels import first_touch
from trading_system.runtime import make_source
from trading_system.state.plan import PickLevels, Plan

TARGETS = ("target_1r", "target_2r")


@dataclasses.dataclass
class Touches:
    """What each pick with levels touched first.

    ``levels``: pick -> its levels as the plan recorded them; ``first``: pick -> horizon ->
    ``(what, session)`` as ``first_touch`` gives it; ``undecided``: horizon -> why a ``neither``
    there is not final yet (the horizon runs past the data or the as-of instant).
    """

    horizons: tuple[int, ...]
    levels: dict[str, PickLevels]
    first: dict[str, dict[int, tuple[str, dt.date | None]]]
    undecided: dict[int, str]

    def counts(self, h: int) -> dict[str, int]:
        """Over horizon ``h``: how many picks touched a target first, the invalidation first, neither."""
        whats = [per[h][0] for per in self.first.values()]
        targets = sum(w in TARGETS for w in whats)
        invalidations = whats.count("invalidation")
        return {"target": targets, "invalidation": invalidations, "neither": len(whats) - targets - invalidations}


def scan_basis_bars(source: MarketData, symbols: list[str], scan: dt.date, end: dt.date,
                    adjust_through: dt.date) -> pd.DataFrame:
    """The bars of ``symbols`` dated in (``scan``, ``end``], on the split basis of the scan session.

    A source adjusts for the splits known on its ``adjust_through`` and leaves later bars as traded,
    so bars read through the scan session would jump at a split inside the horizon (AAPL's 4-for-1
    on 2020-08-31 would fall under every level).  They are read adjusted through ``adjust_through``
    (the last closed session, every split known) and multiplied back by each symbol's factor: its
    scan-session close as traded / that close adjusted through ``adjust_through`` (exactly 1 when no
    split came; 1 as well for a symbol without a bar on the scan session).
    """
    if not symbols or end <= scan:
        return pd.DataFrame(columns=["symbol", "date", "open", "high", "low", "close", "volume"])
    bars = source.bars(end=end, start=scan, symbols=symbols, adjust_through=adjust_through)
    raw = source.bars(end=scan, start=scan, symbols=symbols, adjust_through=scan)
    on_scan = bars[bars["date"] == scan].set_index("symbol")["close"]
    factor = (raw.set_index("symbol")["close"] / on_scan).reindex(bars["symbol"]).fillna(1.0).to_numpy()
    later = (bars["date"] > scan).to_numpy()
    out = bars.loc[later].copy()
    for col in ("open", "high", "low", "close"):
        out[col] = out[col].to_numpy() * factor[later]
    out["volume"] = out["volume"].to_numpy() / factor[later]
    return out.reset_index(drop=True)


def level_touches(cfg: Config, clock: sessions.Clock, plan: Plan, undecided: dict[int, str],
                  horizons: tuple[int, ...]) -> Touches | None:
    """What each pick of ``plan`` touched first over ``horizons`` sessions, or None when the plan has
    no levels.  ``undecided``: horizon -> why it is not complete (``Forward.missing`` of the replay).

    Raises: what ``source.bars`` raises (DataError, AsOfError).
    """
    levels = dict(plan.context.levels) if plan.context is not None else {}
    if not levels:
        return None
    last_closed = sessions.last_closed_session(clock.now())
    horizon = max(horizons)
    expected = sessions.sessions_between(plan.target_session,
                                         plan.target_session + dt.timedelta(days=horizon * 2 + 14))[:horizon]
    end = min(last_closed, expected[-1])
    bars = scan_basis_bars(make_source(cfg, clock), sorted(levels), plan.scan_session, end, last_closed)
    return Touches(horizons, levels, first_touch(bars, levels, horizons), dict(undecided))
