import datetime as dt

import pytest

from trading_system import sessions
from trading_system.errors import AsOfError

D = dt.date


def at(text: str) -> dt.datetime:
    return sessions.parse_as_of(text)


def test_friday_plan_targets_monday():
    assert sessions.next_session(D(2021, 4, 16)) == D(2021, 4, 19)


def test_holiday_is_skipped():
    # Good Friday 2021-04-02: the Thursday-evening plan targets Monday 2021-04-05.
    assert not sessions.is_session(D(2021, 4, 2))
    assert sessions.next_session(D(2021, 4, 1)) == D(2021, 4, 5)


def test_evening_scan_session_is_the_day_that_closed():
    assert sessions.last_closed_session(at("2021-04-19T20:00")) == D(2021, 4, 19)
    # Before the close the scan still sees the previous session only.
    assert sessions.last_closed_session(at("2021-04-19T15:59")) == D(2021, 4, 16)
    # A Saturday sees Friday.
    assert sessions.last_closed_session(at("2021-04-17T12:00")) == D(2021, 4, 16)


def test_early_close_and_open_times():
    close = sessions.session_close(D(2019, 11, 29))  # day after Thanksgiving closes at 13:00
    assert (close.hour, close.minute) == (13, 0)
    opens = sessions.session_open(D(2021, 4, 20))
    assert (opens.hour, opens.minute, str(opens.tzinfo)) == (9, 30, "America/New_York")
    assert sessions.last_closed_session(at("2019-11-29T14:00")) == D(2019, 11, 29)


def test_as_of_forms():
    assert at("2021-04-19T20:00") == at("2021-04-19 20:00")
    assert at("2021-04-19T20:00").utcoffset() == dt.timedelta(hours=-4)
    assert at("2021-04-20T00:00:00+00:00").hour == 20  # an explicit offset is converted to ET
    assert at("2021-04-19").time() == dt.time(23, 59, 59)
    with pytest.raises(AsOfError, match="ISO 8601"):
        at("19/04/2021")


def test_frozen_clock_jumps_instead_of_sleeping():
    clock = sessions.Clock(at("2021-04-20T09:00"))
    clock.sleep_until(at("2021-04-20T09:30:05"))
    assert clock.now() == at("2021-04-20T09:30:05")
