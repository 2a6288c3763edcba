"""The broker's clock and calendar for the morning run (DESIGN §7 "Clock first").

A real account cannot be replayed, so with a broker that has a clock (Alpaca) the run's
"now" is the broker's (``GET /v2/clock``), advancing with this machine's monotonic clock,
and the session's open and close come from the broker's calendar (``GET /v2/calendar``,
early closes included).  ``--as-of`` is refused there.
"""

from __future__ import annotations

import datetime as dt
import time

from trading_system import sessions
from trading_system.errors import BadInputError, NothingToDo, RunFailure


class BrokerClock(sessions.Clock):
    """``now()`` = the broker's time when read + the monotonic time elapsed since (tz-aware ET)."""

    def __init__(self, broker_now: dt.datetime):
        super().__init__(None)
        self._anchor = broker_now.astimezone(sessions.ET)
        self._t0 = time.monotonic()

    def now(self) -> dt.datetime:
        return self._anchor + dt.timedelta(seconds=time.monotonic() - self._t0)

    def sleep_until(self, when: dt.datetime) -> None:
        """Block until the broker's time reaches ``when`` (checks every <= 30 s; ends by itself)."""
        while (left := (when - self.now()).total_seconds()) > 0:
            time.sleep(min(left, 30.0))


def has_clock(broker) -> bool:
    """Whether ``broker`` is a real account with its own clock and calendar."""
    return broker is not None and broker.has_clock


def broker_clock(clock: sessions.Clock, broker) -> BrokerClock:
    """The broker's clock; refuses a frozen (``--as-of``) clock.

    Raises:
        BadInputError: ``--as-of`` or ``PREP_AS_OF`` was given.
    """
    if clock.frozen:
        raise BadInputError("--as-of (or PREP_AS_OF) cannot replay a real broker account; "
                            "run 'prep execute' without it.")
    return BrokerClock(broker.market_clock().now)


def session_hours(broker, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
    """(open, close) of session ``day`` from the broker's calendar if it has one, else XNYS.

    Raises:
        NothingToDo: the broker's calendar has no session that day.
    """
    if not has_clock(broker):
        return None
    hours = broker.session_hours(day)
    if hours is None:
        raise NothingToDo(f"the broker's calendar has no session on {day}; nothing was sent and the plan is kept.")
    return hours


def confirm_open(broker) -> None:
    """After waiting for the open, ask the broker whether it really is open.

    Raises:
        RunFailure: the broker still reports the market closed (a delayed open).
    """
    if has_clock(broker):
        c = broker.market_clock()
        if not c.is_open:
            raise RunFailure(f"the broker reports the market still closed at {c.now:%H:%M:%S} ET "
                               f"(next open {c.next_open:%Y-%m-%d %H:%M} ET); nothing was sent and the plan is kept.")


def still_open(broker) -> bool:
    """Whether the market is open now by the broker's clock (True for a broker without one: the
    simulated broker fills at the open of its session).  One ``GET /v2/clock``."""
    return not has_clock(broker) or broker.market_clock().is_open
