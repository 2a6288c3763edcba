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


def far_future() -> str:
    """Past the calendar, which is built to two years past today."""
    return f"{dt.date.today().year + 4}-01-02"


@pytest.mark.parametrize("text", ["1990-01-02", "1999-01-04T09:00", far_future(), f"{far_future()}T09:00"])
def test_item9_as_of_outside_the_calendar_is_refused_at_parse_time(text):
    first, last = sessions.usable_range()
    with pytest.raises(AsOfError, match=f"from {first} to {last}") as info:
        at(text)
    assert str(first) == "1999-01-05"
    assert last > dt.date.today() + dt.timedelta(days=700)
    assert "DateOutOfBounds" not in str(info.value)


def test_item9_the_edges_of_the_usable_range_work():
    first, last = sessions.usable_range()
    assert sessions.last_closed_session(at(f"{first}T09:00")) == D(1999, 1, 4)
    evening = at(f"{last}T20:00")
    assert sessions.next_session(sessions.last_closed_session(evening)) > last


@pytest.mark.parametrize("call", [
    lambda d: sessions.is_session(d),
    lambda d: sessions.session_open(d),
    lambda d: sessions.session_close(d),
    lambda d: sessions.next_session(d),
    lambda d: sessions.previous_session(d),
    lambda d: sessions.sessions_between(d, D(2021, 4, 20)),
    lambda d: sessions.sessions_between(D(2021, 4, 20), d),
    lambda d: sessions.last_closed_session(dt.datetime.combine(d, dt.time(20), tzinfo=sessions.ET)),
], ids=["is_session", "session_open", "session_close", "next_session", "previous_session",
        "sessions_between_start", "sessions_between_end", "last_closed_session"])
@pytest.mark.parametrize("day", [D(1990, 1, 2), D(1999, 1, 1), dt.date.fromisoformat(far_future())],
                         ids=["1990", "1999-01-01", "future"])
def test_item9_session_functions_raise_as_of_error_out_of_the_calendar(call, day):
    if call(D(2021, 4, 20)) is None:  # the call works in range
        pytest.fail("no answer in range")
    with pytest.raises(AsOfError, match="outside the exchange calendar"):
        call(day)


def test_item9_calendar_ends_are_refused_where_no_neighbour_exists():
    cal = sessions.calendar()
    with pytest.raises(AsOfError):
        sessions.previous_session(cal.first_session.date())
    with pytest.raises(AsOfError):
        sessions.next_session(cal.last_session.date())
    assert sessions.is_session(cal.first_session.date())
