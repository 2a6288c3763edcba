"""The evening's market context for the plan (DESIGN §11): the regime from the indices (or their ETF
proxies), the earnings gate over the scored names, and each pick's levels once the strategies exist.

A context input that is missing (no index bars that night, a provider down, a malformed earnings
file) leaves its gate ``unavailable`` with one line saying why, and the night goes on, unless the
gate's ``required: true`` (then ``DataError``: exit 1 and no plan).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import pandas as pd

from trading_system.config import Config
from trading_system.errors import DataError
from trading_system.marketdata.base import MarketData, NotEntitledError
from trading_system.prepare.context.regime import INDEX_PROXIES, VIX, assess, regime_windows
from trading_system.state.plan import ContextRecord, EventsRecord, Plan, RegimeRecord
from trading_system.vocabulary import StrategyName

log = logging.getLogger(__name__)

#: Calendar days of index history read: the 252-session high and VIX percentile, and the EMA's seed.
REGIME_DAYS = 550


def _proxy_closes(source: MarketData, session: dt.date) -> dict[str, pd.Series]:
    """SPY, QQQ and IWM closes (split-adjusted, dated <= ``session``) from the bar source, over the
    scan's own ``HISTORY_DAYS`` (about 276 sessions: the 252-session high, the SMA and the realised
    volatility's percentile fit), so a cold Polygon store fetches no session the scan does not."""
    from trading_system.prepare.discovery import HISTORY_DAYS

    bars = source.bars(end=session, start=session - dt.timedelta(days=HISTORY_DAYS),
                       symbols=sorted(INDEX_PROXIES.values()))
    return {str(s): g.set_index("date")["close"].astype(float) for s, g in bars.groupby("symbol", sort=True)}


def regime_for(cfg: Config, source: MarketData, session: dt.date) -> RegimeRecord:
    """The regime of ``session``: from the index bars when the source has them, else the ETF proxies
    (SPY, QQQ, IWM; SPY's realised volatility for the VIX), with the source said in the record.

    Raises:
        DataError: the regime is unavailable and ``regime.required`` is true.
    """
    return checked_regime(cfg, session, regimes_for(cfg, source, [session])[0])


def regimes_for(cfg: Config, source: MarketData, nights: list[dt.date]) -> list[RegimeRecord]:
    """The regime record of each of ``nights`` (sorted), as :func:`regime_for` makes it one night at a
    time, before its ``regime.required`` check (:func:`checked_regime`): the index closes are read
    once for all of them and each night's figures come from its own ``REGIME_DAYS`` window
    (``regime.assess``).  A night whose window lacks the trend index or the VIX uses the proxies."""
    rc = cfg.regime
    if not rc.enabled:
        return [RegimeRecord(status="off", note="regime.enabled is false") for _ in nights]
    wanted = [*INDEX_PROXIES, VIX]
    why: list[str | None]
    try:
        closes = source.index_closes(wanted, nights[0] - dt.timedelta(days=REGIME_DAYS), nights[-1])
        missing = [_lacks(closes.get(t), nights) for t in (rc.trend_index, VIX)]
        why = [f"the {source.name} data has no {rc.trend_index} / {VIX} bars" if any(m[j] for m in missing) else None
               for j in range(len(nights))]
    except NotEntitledError:
        why = ["the key is not entitled to Polygon's indices"] * len(nights)
    except DataError as exc:
        why = [f"the index bars could not be read ({exc})"] * len(nights)
    on_indices = [n for n, w in zip(nights, why) if w is None]
    found = dict(zip(on_indices, assess(closes, on_indices, rc, proxies=False, days=REGIME_DAYS,
                                        source=f"indices {', '.join(wanted)} ({source.name})"))) if on_indices else {}
    return [found[n] if w is None else _proxy_regime(cfg, source, n, w) for n, w in zip(nights, why)]


def _lacks(series: pd.Series | None, nights: list[dt.date]) -> list[bool]:
    """Per night: whether ``series`` has no close in its ``REGIME_DAYS`` window."""
    if series is None or series.empty:
        return [True] * len(nights)
    start, end = regime_windows(series.index, nights, REGIME_DAYS)
    return (end <= start).tolist()


def _proxy_regime(cfg: Config, source: MarketData, session: dt.date, why_proxies: str) -> RegimeRecord:
    """The regime of ``session`` from the ETF proxies, the source saying why (``why_proxies``)."""
    rc = cfg.regime
    source_text = (f"ETF proxies SPY, QQQ, IWM, and SPY's {rc.proxy_volatility_window}-session realised "
                   f"volatility for the VIX ({why_proxies})")
    try:
        return assess(_proxy_closes(source, session), [session], rc, proxies=True, source=source_text)[0]
    except DataError as exc:  # its own words speak of the scan's session, not of this gate
        log.warning("regime: the ETF proxies' bars could not be read: %s", exc)
        return RegimeRecord(status="unavailable", source=source_text,
                            note=f"the ETF proxies' bars could not be read ({exc.__class__.__name__}; "
                                 "details in the log)")


def checked_regime(cfg: Config, session: dt.date, record: RegimeRecord) -> RegimeRecord:
    """``record``, the regime of ``session``, once ``regime.required`` has been honoured.

    Raises:
        DataError: the regime is unavailable and ``regime.required`` is true.
    """
    if record.status == "unavailable":
        if cfg.regime.required:
            raise DataError(f"the market regime is unavailable for session {session} ({record.note}) and "
                            "regime.required is true, so no plan was written.")
        log.warning("regime unavailable for %s: %s", session, record.note)
    return record


def regime_line(record: RegimeRecord) -> str:
    """One line for the prepare summary: the state, the deciding figures and the effect."""
    if record.status != "ok":
        return f"regime: {record.status} ({record.note})"
    effect = ("trades as planned" if record.exposure == 1.0 and record.strategy is None
              else f"{record.strategy + ' only, ' if record.strategy else ''}exposure {record.exposure:.0%}")
    return f"regime: {record.state} ({'; '.join(record.reasons)}): {effect}"


def evening_context(cfg: Config, source: MarketData, scan: pd.DataFrame, scan_session: dt.date,
                    target: dt.date, universe: list[str], regime: RegimeRecord | None = None) -> ContextRecord:
    """The regime and the earnings gate of the night (levels come later, see :func:`with_levels`).

    Requires: ``scan`` as ``score_universe`` returns it (index symbol, ``pick``).  ``regime``: the
    night's record from :func:`regimes_for` when it was computed ahead with other nights (the
    backtest's batch engine); by default it is computed here (:func:`regime_for`).
    Sets: ``scan["pick"]`` False (in place) for each pick the earnings gate removes, before the
    strategies are built; the record says why.

    Raises:
        DataError: a gate with ``required: true`` is unavailable.
    """
    from trading_system.marketdata.earnings import make_earnings
    from trading_system.prepare.context.events import earnings_gate

    regime = (regime_for(cfg, source, scan_session) if regime is None
              else checked_regime(cfg, scan_session, regime))
    # The provider reads its file or asks Polygon on its first question, inside the gate, which turns
    # an unanswered question into ``unavailable`` (or a DataError when events.required).
    events, removed = earnings_gate(scan, scan_session, target, make_earnings(cfg), cfg.events, universe)
    if removed:  # every removed name is a pick, so in the index
        scan["pick"] = scan["pick"].to_numpy(dtype=bool) & ~scan.index.isin(sorted(removed))
    if events.status == "unavailable":
        log.warning("earnings gate unavailable for %s: %s", target, events.note)
    return ContextRecord(regime=regime, events=events)


def with_levels(context: ContextRecord, bars: pd.DataFrame, plan: Plan, cfg: Config) -> ContextRecord:
    """``context`` with the levels of every name of a contestant strategy (BUY_HOLD's benchmarks are
    not picks), ``account_risk`` per strategy holding it."""
    from trading_system.prepare.context.levels import pick_levels

    allocations = {str(n): dict(s.allocations) for n, s in plan.strategies.items() if n != StrategyName.BUY_HOLD}
    picks = sorted({sym for weights in allocations.values() for sym in weights})
    return context.model_copy(update={"levels": pick_levels(bars, picks, allocations, cfg.levels)})


#: Sessions after the target whose reports ``prep context`` lists (a trading week ahead).
CONTEXT_SESSIONS_AHEAD = 4


@dataclasses.dataclass
class ContextReport:
    """``prep context``: the regime of the last closed session and the universe's earnings reports
    from it through ``CONTEXT_SESSIONS_AHEAD`` sessions after the next one."""

    session: dt.date
    target: dt.date
    regime: RegimeRecord
    events: EventsRecord
    universe_size: int

    def to_json(self) -> dict:
        """``{"session", "target", "regime": {"state", "inputs", "source", ...}, "events": [...], ...}``."""
        return {"session": str(self.session), "target": str(self.target),
                "regime": self.regime.model_dump(mode="json"),
                "events": [e.model_dump(mode="json") for e in self.events.events],
                "events_source": self.events.source, "events_status": self.events.status,
                "events_note": self.events.note, "uncovered": self.events.unknown}


def context_report(cfg: Config, clock) -> ContextReport:
    """The market context as of ``clock`` without writing anything (``prep context``).

    Raises:
        AsOfError / DataError: the session's bars are outside the data or missing; a gate with
            ``required: true`` is unavailable.
    """
    from trading_system import sessions
    from trading_system.marketdata.earnings import make_earnings
    from trading_system.prepare.context.events import earnings_gate
    from trading_system.prepare.universe import build_universe
    from trading_system.runtime import make_source

    session = sessions.last_closed_session(clock.now())
    target = sessions.next_session(session)
    source = make_source(cfg, clock)
    source.ensure_session(session)
    universe = build_universe(cfg, source, session).symbols
    regime = regime_for(cfg, source, session)
    names = pd.DataFrame({"pick": False}, index=pd.Index(universe, name="symbol"))   # nothing is removed here
    ahead = cfg.events.model_copy(update={"within_sessions": max(cfg.events.within_sessions, CONTEXT_SESSIONS_AHEAD)})
    events, _ = earnings_gate(names, session, target, make_earnings(cfg), ahead, universe)
    return ContextReport(session=session, target=target, regime=regime, events=events, universe_size=len(universe))
