"""The earnings gate of the evening (DESIGN §11): picks a report can move are removed before the
strategies are built.

A report *counts* when it can move the price between the scan's close and the end of the
target session: it applies to the target session (at any time of day), or to the scan session
with its time after the close or not given (a ``bmo`` report on the scan session is already in the
scan's close).  ``events.within_sessions`` = N widens the window to the N sessions after the
target.  A weekend or holiday report applies to the next session (the provider moves it).

Requires: the scan (index symbol, bool column ``pick``), the scan and target sessions, an
``EarningsProvider``.  Sets: nothing; returns the ``EventsRecord`` for the plan and the picks to
remove.  Pure apart from the provider's question.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from trading_system import sessions
from trading_system.config_context import EventsConfig
from trading_system.errors import DataError
from trading_system.marketdata.earnings import EarningsAnswer, EarningsProvider, Report
from trading_system.state.plan import EarningsEvent, EventsRecord

_WHEN = {"bmo": "before the open", "amc": "after the close", None: "time not given"}


def earnings_window(scan_session: dt.date, target: dt.date, within_sessions: int = 0) -> list[dt.date]:
    """The sessions whose reports the gate reads: [scan session, target + ``within_sessions`` sessions].

    Raises:
        AsOfError: a date outside the exchange calendar.
    """
    end = target
    for _ in range(within_sessions):
        end = sessions.next_session(end)
    return sessions.sessions_between(scan_session, end)


def counts(report: Report, scan_session: dt.date, window: list[dt.date]) -> bool:
    """Whether ``report`` can move the price after the scan's close and within the window: on a
    later session of the window (any time), or on the scan session unless before the open."""
    if report.session == scan_session:
        return report.time != "bmo"
    return scan_session < report.session <= window[-1]


def reason(report: Report, target: dt.date) -> str:
    """Why a pick leaves, one sentence: the report's date, its time of day and what it can move."""
    when = _WHEN.get(report.time, report.time)
    dated = (f"earnings report on {report.session}" if report.published == report.session else
             f"earnings report dated {report.published} ({report.published:%A}, so it applies to session "
             f"{report.session})")
    if report.session <= target:
        return f"{dated} ({when}): it can move the price before the target session ends"
    return (f"{dated} ({when}): it falls in the sessions events.within_sessions adds after the target "
            f"session {target}, so it can move the price while the position is held")


def _off(note: str, source: str | None = None) -> tuple[EventsRecord, set[str]]:
    return EventsRecord(status="off", source=source, note=note), set()


def _ask(provider: EarningsProvider, symbols: list[str], window: list[dt.date],
         cfg: EventsConfig) -> EarningsAnswer | EventsRecord:
    """The provider's answer, or an ``unavailable`` record when it fails and the gate is optional.

    Raises:
        DataError: the provider failed and ``cfg.required`` is true.
    """
    try:
        return provider.reports(symbols, window[0], window[-1])
    except DataError as exc:
        sentence = str(exc).rstrip(".")
        if cfg.required:
            raise DataError(f"The earnings gate is required (events.required) and cannot run: {sentence}.") from exc
        return EventsRecord(status="unavailable", source=provider.name, window=window,
                            note=f"No pick was checked for earnings (the gate is off tonight): {sentence}.")


def earnings_gate(scan: pd.DataFrame, scan_session: dt.date, target: dt.date, provider: EarningsProvider,
                  cfg: EventsConfig, universe: list[str]) -> tuple[EventsRecord, set[str]]:
    """The earnings gate: (the plan's ``EventsRecord``, the picks to remove).

    ``removed`` maps each pick with a report that counts (see ``counts``) to its reason (the
    earliest such report); ``unknown`` lists the scored names (``scan.index``) the provider does not
    cover: never treated as clear, never removed; ``events`` every report in the window for the
    universe and the scored names.  ``status``: ``off`` (``events.enabled`` false or provider
    ``none``), ``unavailable`` (the provider failed or is out of date: nothing removed, ``note``
    says why) or ``ok``.

    Raises:
        DataError: the provider failed and ``cfg.required`` is true (one sentence).
        AsOfError: a session outside the exchange calendar.
    """
    if not cfg.enabled:
        return _off("events.enabled is false: no pick was checked for earnings.")
    if cfg.provider == "none":
        return _off("events.provider is none: no pick was checked for earnings.", source=provider.name)
    window = earnings_window(scan_session, target, cfg.within_sessions)
    scored = [str(s) for s in scan.index.tolist()]
    symbols = sorted(set(universe).union(scored))
    answer = _ask(provider, symbols, window, cfg)
    if isinstance(answer, EventsRecord):
        return answer, set()
    picks = {s for s, pick in zip(scored, scan["pick"].to_numpy(dtype=bool).tolist()) if pick}
    removed: dict[str, str] = {}
    for report in answer.reports:  # sorted by session: the first that counts is the reason
        if report.symbol in picks and report.symbol not in removed and counts(report, scan_session, window):
            removed[report.symbol] = reason(report, target)
    unknown = sorted(set(scored) - answer.covered)
    note = (f"{len(unknown)} scored names have no earnings data from {answer.source} (listed in unknown): "
            "their reports are unknown, not absent." if unknown else None)
    events = [EarningsEvent(symbol=r.symbol, date=r.session, time=r.time, source=answer.source)
              for r in answer.reports]
    record = EventsRecord(status="ok", source=answer.source, window=window, removed=dict(sorted(removed.items())),
                          unknown=unknown, events=events, note=note)
    return record, set(removed)
