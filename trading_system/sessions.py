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

from .errors import AsOfError

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


def parse_as_of(text: str | None) -> dt.datetime | None:
    """Parse ``--as-of`` / ``PREP_AS_OF``: ISO 8601 date or date-time; naive means ET.

    A bare date means the end of that day (23:59:59 ET).

    Raises:
        AsOfError: the text is not an ISO 8601 date or date-time.
    """
    if text is None or not str(text).strip():
        return None
    text = str(text).strip()
    try:
        if len(text) == 10:
            d = dt.date.fromisoformat(text)
            return dt.datetime.combine(d, dt.time(23, 59, 59), tzinfo=ET)
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise AsOfError(
            f"--as-of '{text}' is not an ISO 8601 date or date-time; use e.g. 2021-04-19T20:00."
        ) from exc
    return value.replace(tzinfo=ET) if value.tzinfo is None else value.astimezone(ET)


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


@functools.lru_cache(maxsize=4096)  # a pure function of the date; a backtest asks again and again
def is_session(d: dt.date) -> bool:
    """Whether the exchange trades on date ``d``."""
    cal = calendar()
    ts = _ts(d)
    if ts < cal.first_session or ts > cal.last_session:
        return False
    return bool(cal.is_session(ts))


@functools.lru_cache(maxsize=4096)  # a pure function of the date; a backtest asks again and again
def session_open(d: dt.date) -> dt.datetime:
    """The regular-hours open of session ``d`` (tz-aware ET)."""
    return calendar().session_open(_ts(d)).tz_convert(ET).to_pydatetime()


@functools.lru_cache(maxsize=4096)  # a pure function of the date; a backtest asks again and again
def session_close(d: dt.date) -> dt.datetime:
    """The regular-hours close of session ``d`` (tz-aware ET; early closes included)."""
    return calendar().session_close(_ts(d)).tz_convert(ET).to_pydatetime()


@functools.lru_cache(maxsize=4096)  # a pure function of the date; a backtest asks again and again
def next_session(d: dt.date) -> dt.date:
    """The first session strictly after date ``d`` (Friday -> Monday, holidays skipped)."""
    cal = calendar()
    return cal.date_to_session(_ts(d) + pd.Timedelta(days=1), direction="next").date()


@functools.lru_cache(maxsize=4096)  # a pure function of the date; a backtest asks again and again
def previous_session(d: dt.date) -> dt.date:
    """The last session strictly before date ``d``."""
    cal = calendar()
    return cal.date_to_session(_ts(d) - pd.Timedelta(days=1), direction="previous").date()


def last_closed_session(now: dt.datetime) -> dt.date:
    """The latest session whose close is at or before ``now``: the evening scan's session."""
    today = now.astimezone(ET).date()
    if is_session(today) and session_close(today) <= now:
        return today
    return previous_session(today)


def sessions_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every session in [start, end], oldest first."""
    return [ts.date() for ts in calendar().sessions_in_range(_ts(start), _ts(end))]
