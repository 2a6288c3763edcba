"""Issue 9 items 7 and 8: a night where no symbol has the bars the scan needs is explained, not a plan
of zero picks (the bundled sample starts on 2019-01-02; the scan needs lookback + 1 = 61 bars)."""

from __future__ import annotations

import datetime as dt

from trading_system.prepare.run import first_usable_night


def test_first_usable_night_counts_sessions_not_days():
    # 2019-01-02 is the sample's first session; the 61st session from it is 2019-03-29.
    assert first_usable_night(dt.date(2019, 1, 2), 60) == dt.date(2019, 3, 29)
    assert first_usable_night(dt.date(2019, 1, 2), 2) == dt.date(2019, 1, 4)


def test_prepare_with_too_little_history_says_why_and_writes_nothing(prep):
    r = prep("--as-of", "2019-01-03T20:00", "prepare")
    assert r.exit_code == 1, r.output
    words = " ".join(r.output.split())
    assert "no symbol has the 61 bars the scan needs" in words
    assert "the bars start on 2019-01-02" in words and "the first usable night is 2019-03-29" in words
    assert not (prep.folder / "pending_trades.json").exists()
    assert prep("--as-of", "2019-03-28T20:00", "prepare").exit_code == 1
    assert prep("--as-of", "2019-03-29T20:00", "prepare").exit_code == 0


def test_backtest_refuses_a_start_before_the_first_usable_night(prep, tmp_path):
    r = prep("--as-of", "2021-04-21T20:00", "backtest", "--start", "2019-01-03", "--end", "2019-04-10",
             "--out", str(tmp_path / "reports"))
    words = " ".join(r.output.split())
    assert r.exit_code == 2 and "--start 2019-01-03 is before the first usable night 2019-03-29" in words
    assert "did not beat BUY_HOLD" not in r.output


def test_a_second_execute_names_the_archive_of_the_first(prep):
    """Issue 9 item 8: the second execute of the morning says the plan was executed, and where."""
    for as_of, cmd in (("2021-04-19T20:00", "prepare"), ("2021-04-20T09:00", "validate"),
                       ("2021-04-20T09:31", "execute")):
        assert prep("--as-of", as_of, cmd).exit_code == 0
    r = prep("--as-of", "2021-04-20T09:40", "execute")
    words = " ".join(r.output.split())
    assert r.exit_code == 0 and "the plan for session 2021-04-20 was already executed" in words
    assert "archived_trades/pending_trades_20210420_093100.json" in "".join(r.output.split())
