"""Market sessions from the XNYS calendar (``exchange_calendars``), and the as-of clock.

A *session* is a trading day, named by its date (``datetime.date``).  All wall-clock
times here are tz-aware; naive inputs are America/New_York.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from zoneinfo import ZoneInfo

import pandas as pd

from trading_system.errors import AsOfError

ET = ZoneInfo("America/New_York")


@functools.lru_cache(maxsize=1)
def calendar():
    """The XNYS calendar from 1999 to two years past today (built once per process)."""
    import warnings

    import exchange_calendars as xcals

    # exchange_calendars 4.x reads Series.values, which pandas 3.1 deprecates; harmless here.
    warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
    end = pd.Timestamp.today().normalize() + pd.Timedelta(days=730)
    return xcals.get_calendar("XNYS", start="1999-01-04", end=end)


def usable_range() -> tuple[dt.date, dt.date]:
    """(first, last) dates an as-of instant may fall on: every session function then stays in the calendar.

    The calendar runs from its first session to its last; a run on date D may ask for the session
    before D (the morning's last closed session) and the one after the session it scans (the plan's
    target), so the usable span is one session in from each end: the calendar's second session to
    its last but one.
    """
    sessions = calendar().sessions
    return sessions[1].date(), sessions[-2].date()


def _outside(d: dt.date) -> AsOfError:
    first, last = usable_range()
    return AsOfError(f"{d} is outside the exchange calendar this tool knows; use a date from {first} to {last}.")


def _check(d: dt.date, low: pd.Timestamp | None = None, high: pd.Timestamp | None = None) -> pd.Timestamp:
    """``d`` as a Timestamp, when ``low <= d <= high`` (default: the calendar's first and last session).

    Raises:
        AsOfError: ``d`` is outside that span (``exchange_calendars`` would raise ``DateOutOfBounds``).
    """
    cal, ts = calendar(), _ts(d)
    if not (cal.first_session if low is None else low) <= ts <= (cal.last_session if high is None else high):
        raise _outside(d)
    return ts


def parse_as_of(text: str | None) -> dt.datetime | None:
    """Parse ``--as-of`` / ``PREP_AS_OF``: ISO 8601 date or date-time; naive means ET.

    A bare date means the end of that day (23:59:59 ET).  The date must lie in ``usable_range()``
    (checked here, at parse time, so a run never starts on a date the calendar cannot place).

    Raises:
        AsOfError: the text is not an ISO 8601 date or date-time, or its date is outside the calendar.
    """
    if text is None or not str(text).strip():
        return None
    text = str(text).strip()
    try:
        if len(text) == 10:
            value = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(23, 59, 59))
        else:
            value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise AsOfError(
            f"--as-of '{text}' is not an ISO 8601 date or date-time; use e.g. 2021-04-19T20:00."
        ) from exc
    value = value.replace(tzinfo=ET) if value.tzinfo is None else value.astimezone(ET)
    first, last = usable_range()
    if not first <= value.date() <= last:
        raise AsOfError(f"--as-of {text} is outside the exchange calendar this tool knows; "
                        f"use a date from {first} to {last}.")
    return value


class Clock:
    """Now, in ET. With an as-of instant the clock is frozen there and ``sleep_until`` jumps.

    This is the only place the pipeline asks for the time, so any run can be replayed.
    """

    def __init__(self, as_of: dt.datetime | None = None):
        self._as_of = as_of

    @classmethod
    def from_env(cls, as_of_text: str | None) -> "Clock":
        """A clock from ``--as-of`` text, else ``PREP_AS_OF``, else the wall clock."""
        return cls(parse_as_of(as_of_text if as_of_text else os.environ.get("PREP_AS_OF")))

    @property
    def frozen(self) -> bool:
        """True when replaying at a fixed as-of instant."""
        return self._as_of is not None

    def now(self) -> dt.datetime:
        """The current instant (tz-aware, ET)."""
        return self._as_of if self._as_of is not None else dt.datetime.now(ET)

    def sleep_until(self, when: dt.datetime) -> None:
        """Block until ``when`` (a frozen clock moves there instead of sleeping)."""
        if self._as_of is not None:
            self._as_of = max(self._as_of, when.astimezone(ET))
            return
        import time

        while (left := (when - dt.datetime.now(ET)).total_seconds()) > 0:
            time.sleep(min(left, 30.0))


def _ts(d: dt.date) -> pd.Timestamp:
    return pd.Timestamp(d)


#: Every function below raises ``AsOfError`` for a date outside the calendar (never the library's
#: ``DateOutOfBounds``, and never a false "not a session"): a date there is an input to refuse.

@functools.lru_cache(maxsize=4096)  # a pure function of the date; a backtest asks again and again
def is_session(d: dt.date) -> bool:
    """Whether the exchange trades on date ``d``.

    Raises:
        AsOfError: ``d`` is outside the calendar.
    """
    return bool(calendar().is_session(_check(d)))


@functools.lru_cache(maxsize=4096)  # a pure function of the date; a backtest asks again and again
def session_open(d: dt.date) -> dt.datetime:
    """The regular-hours open of session ``d`` (tz-aware ET).

    Raises:
        AsOfError: ``d`` is outside the calendar.
    """
    return calendar().session_open(_check(d)).tz_convert(ET).to_pydatetime()


@functools.lru_cache(maxsize=4096)  # a pure function of the date; a backtest asks again and again
def session_close(d: dt.date) -> dt.datetime:
    """The regular-hours close of session ``d`` (tz-aware ET; early closes included).

    Raises:
        AsOfError: ``d`` is outside the calendar.
    """
    return calendar().session_close(_check(d)).tz_convert(ET).to_pydatetime()


@functools.lru_cache(maxsize=4096)  # a pure function of the date; a backtest asks again and again
def next_session(d: dt.date) -> dt.date:
    """The first session strictly after date ``d`` (Friday -> Monday, holidays skipped).

    Raises:
        AsOfError: there is no session after ``d`` in the calendar (or ``d`` is before it).
    """
    cal = calendar()
    ts = _check(d, high=cal.last_session - pd.Timedelta(days=1))
    return cal.date_to_session(ts + pd.Timedelta(days=1), direction="next").date()


@functools.lru_cache(maxsize=4096)  # a pure function of the date; a backtest asks again and again
def previous_session(d: dt.date) -> dt.date:
    """The last session strictly before date ``d``.

    Raises:
        AsOfError: there is no session before ``d`` in the calendar (or ``d`` is after it).
    """
    cal = calendar()
    ts = _check(d, low=cal.first_session + pd.Timedelta(days=1))
    return cal.date_to_session(ts - pd.Timedelta(days=1), direction="previous").date()


def last_closed_session(now: dt.datetime) -> dt.date:
    """The latest session whose close is at or before ``now``: the evening scan's session.

    Raises:
        AsOfError: ``now`` is outside the calendar.
    """
    today = now.astimezone(ET).date()
    if is_session(today) and session_close(today) <= now:
        return today
    return previous_session(today)


def sessions_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every session in [start, end], oldest first (a new list: the caller may change it).

    Raises:
        AsOfError: ``start`` or ``end`` is outside the calendar.
    """
    return list(_sessions_between(start, end))


@functools.lru_cache(maxsize=4096)  # a pure function of the dates; the earnings gate asks every night
def _sessions_between(start: dt.date, end: dt.date) -> tuple[dt.date, ...]:
    lo, hi = _check(start), _check(end)
    return tuple(ts.date() for ts in calendar().sessions_in_range(lo, hi))
