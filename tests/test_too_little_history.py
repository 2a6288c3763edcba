"""Issue 9 item 7: a night where no symbol has the bars the scan needs is explained, not a plan
of zero picks (the bundled sample starts on 2019-01-02; the scan needs lookback + 1 = 61 bars)."""

from __future__ import annotations

import datetime as dt

from trading_system.pipeline import first_usable_night


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
    assert r.exit_code != 0 and "the first usable night is 2019-03-29" in " ".join(r.output.split())
    assert "did not beat BUY_HOLD" not in r.output
