"""The backtest's batch engine decides exactly as the nightly (cron) engine (issue 13, DESIGN §12).

Real bars of data/sample over 2020-02-03 -> 2020-04-30 (62 sessions): the COVID crash (RISK_ON to
RISK_OFF), ODFL's 3-for-2 split (ex 2020-03-25) and RTX's 1.589 split (ex 2020-04-03) inside it,
earnings reports removing picks on many nights.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd
import pytest

from trading_system import sessions
from trading_system.config import load_config
from trading_system.errors import BadInputError
from trading_system.prepare.discovery import history_start
from trading_system.prepare.run import plan_strategies
from trading_system.prepare.scan_batch import CHUNK, NightlyScans, RescoreJob
from trading_system.prepare.scoring import score_universe
from trading_system.prepare.universe import build_universe
from trading_system.review.backtest import run_backtest
from trading_system.review.backtest_result import BUY_HOLD, NO_EVENTS, NO_GATE, NO_REGIME, SYSTEM
from trading_system.validate.run import morning_scores

from conftest import write_config

D = dt.date
START, END = D(2020, 2, 3), D(2020, 4, 30)


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    return load_config(write_config(tmp_path_factory.mktemp("batch")))


@pytest.fixture(scope="module")
def both(cfg, sample_source):
    """(nightly, batch, batch with 2 worker processes): the same backtest with every twin."""
    twins = {"gate_off_twin": True, "regime_off_twin": True, "events_off_twin": True}
    nightly = run_backtest(cfg, START, END, source=sample_source, engine="nightly", **twins)
    batch = run_backtest(cfg, START, END, source=sample_source, engine="batch", **twins)
    workers = run_backtest(cfg, START, END, source=sample_source, engine="batch", workers=2, **twins)
    return nightly, batch, workers


def test_each_nights_scan_is_score_universe_to_the_bit(cfg, sample_source):
    nights = [sessions.previous_session(START), *sessions.sessions_between(START, END)]
    assert len(nights) > CHUNK  # two chunks; splits become known mid-chunk
    universes = {n: build_universe(cfg, sample_source, n).symbols for n in nights}
    batch = NightlyScans(sample_source, nights, universes, cfg)
    for night in nights:
        bars = sample_source.bars(end=night, start=history_start(night), symbols=universes[night])
        expected = score_universe(bars, night, cfg.scoring, cfg.eligibility, cfg.buckets)
        got = batch.night(night)
        pd.testing.assert_frame_equal(got.frame, expected, check_exact=True)
        assert got.have_bar == set(bars.loc[bars["date"] == night, "symbol"])
        assert got.first_bar == bars["date"].min()
    # the splits are in: ODFL's closes before 2020-03-25 are on the old basis until the ex-date
    before, after = D(2020, 3, 24), D(2020, 3, 25)
    assert batch.night(after).frame.loc["ODFL", "close"] == pytest.approx(
        sample_source.bars(end=after, symbols=["ODFL"])["close"].iloc[-1])
    assert batch.night(before).frame.loc["ODFL", "close"] > 1.3 * batch.night(after).frame.loc["ODFL", "close"]


def test_each_mornings_rescore_is_morning_scores_to_the_bit(cfg, sample_source):
    """The picks of each night's strategies re-scored at the next open: all mornings in one pass
    (``NightlyScans.rescore``) against ``morning_scores`` (what ``prep validate`` runs), night by night."""
    nights = sessions.sessions_between(START, END)
    universes = {n: build_universe(cfg, sample_source, n).symbols for n in nights}
    batch = NightlyScans(sample_source, nights, universes, cfg)
    jobs, expected = [], []
    for night in nights[:-1]:
        day = sessions.next_session(night)
        _, strategies = plan_strategies(cfg, batch.night(night).frame.copy(), night, day)
        morning = morning_scores(cfg, sample_source, strategies, day, night)
        jobs.append(RescoreJob(night, day, {s: q.price for s, q in morning.quotes.items()}))
        expected.append(morning.scores)
    got = batch.rescore(jobs)
    assert got == expected
    assert sum(map(len, expected)) > 10 * len(jobs)   # about a dozen picks a night, scored


def test_a_one_symbol_universe_is_scored_as_the_nightly_scan_scores_it(tmp_path, sample_source):
    """numpy sums a one-column panel pairwise and a wide one row by row; ``panel_metrics`` gives a lone
    column a neighbour so both agree (here the universe is SPY, the only benchmark, and nothing else)."""
    (tmp_path / "one.csv").write_text("symbol\nSPY\n")
    cfg = load_config(write_config(tmp_path, extra=f"  constituents_file: {tmp_path / 'one.csv'}\n"
                                                   "strategies:\n  benchmarks: {SPY: 1.0}\n"))
    nights = sessions.sessions_between(D(2020, 2, 3), D(2020, 3, 31))
    universes = {n: build_universe(cfg, sample_source, n).symbols for n in nights}
    assert set(map(tuple, universes.values())) == {("SPY",)}
    batch = NightlyScans(sample_source, nights, universes, cfg)
    for night in nights:
        bars = sample_source.bars(end=night, start=history_start(night), symbols=["SPY"])
        expected = score_universe(bars, night, cfg.scoring, cfg.eligibility, cfg.buckets)
        pd.testing.assert_frame_equal(batch.night(night).frame, expected, check_exact=True)


@pytest.mark.parametrize("which", [1, 2], ids=["in-process", "2 workers"])
def test_every_decision_order_and_mark_is_the_nightly_engines(both, which):
    nightly, batch = both[0], both[which]
    assert nightly.engine == "nightly" and batch.engine == "batch"
    assert len(batch.nights) == len(nightly.nights) == 62
    for n, b in zip(nightly.nights, batch.nights):
        for field in dataclasses.fields(n):  # plan id, selections, counts, regime, removals, every order
            assert getattr(b, field.name) == getattr(n, field.name), (n.session, field.name)
    pd.testing.assert_frame_equal(batch.equity, nightly.equity, check_exact=True)
    pd.testing.assert_frame_equal(batch.gross, nightly.gross, check_exact=True)
    assert batch.figures == nightly.figures


def test_the_window_exercises_what_it_claims(both):
    """The comparison above bites: regimes change, gates act, twins differ, orders fill."""
    nightly = both[0]
    assert {n.regime for n in nightly.nights} >= {"RISK_ON", "NEUTRAL", "RISK_OFF"}
    assert sum(bool(n.earnings_removed) for n in nightly.nights) >= 10
    assert len({n.plan_id for n in nightly.nights}) == 62
    assert len({n.selected[SYSTEM] for n in nightly.nights}) >= 3  # the gate chose several strategies
    assert any(n.selected[NO_REGIME] != n.selected[SYSTEM] for n in nightly.nights)
    assert any(n.rejected[NO_GATE] < n.rejected[SYSTEM] for n in nightly.nights)
    for name in (SYSTEM, NO_GATE, NO_REGIME, NO_EVENTS, BUY_HOLD):
        assert sum(len(n.orders[name]) for n in nightly.nights) > 62, name
        assert nightly.equity[name].nunique() > 50, name
    symbols = {line[2] for n in nightly.nights for lines in n.orders.values() for line in lines}
    assert symbols & {"ODFL", "RTX"}  # a split name was traded inside the window


def test_scanners_fall_back_to_the_nightly_engine(tmp_path, sample_source):
    cfg = load_config(write_config(tmp_path, extra="scanners:\n  - name: gappers\n    module: builtin:gap\n"))
    result = run_backtest(cfg, D(2021, 4, 19), D(2021, 4, 20), source=sample_source)
    assert result.engine.startswith("nightly (scanners are configured")
    assert len(result.nights) == 2


def test_a_failing_night_on_a_worker_is_raised_in_its_turn(cfg, sample_source):
    """The sample's bars start on 2019-01-02: the scans of January 2019 have too little history, so the
    worker's TooLittleHistory comes back whole (its first usable night) and is raised before any session."""
    from trading_system.prepare.run import TooLittleHistory

    with pytest.raises(TooLittleHistory) as caught:
        run_backtest(cfg, D(2019, 1, 7), D(2019, 3, 29), source=sample_source, workers=2)
    assert caught.value.first_usable == D(2019, 3, 29)   # the 61st session from 2019-01-02
    with pytest.raises(TooLittleHistory) as same:
        run_backtest(cfg, D(2019, 1, 7), D(2019, 3, 29), source=sample_source, workers=0)
    assert (str(same.value), same.value.first_usable) == (str(caught.value), caught.value.first_usable)


def test_an_unknown_engine_is_refused(cfg, sample_source):
    with pytest.raises(BadInputError, match="unknown backtest engine 'fast'"):
        run_backtest(cfg, START, END, source=sample_source, engine="fast")


def test_a_lost_worker_stops_the_backtest_with_one_sentence(cfg, sample_source, monkeypatch):
    """A worker process killed mid-run (SIGKILL, as the OOM killer would): the backtest stops with a
    RunFailure naming the nights it was computing, and no worker is left behind.

    The worker kills itself while it computes a chunk (the source's read of 2019-09-03's bars), never
    while it sends one: a process killed halfway through writing its results to the pool's pipe leaves
    the pool reading the rest forever (CPython's ``ProcessPoolExecutor``), a case no code here can see."""
    import multiprocessing
    import os
    import signal

    from trading_system.errors import RunFailure

    main, read_here, read = os.getpid(), [], sample_source.adjusted

    def adjusted(through):
        if os.getpid() != main and through >= D(2019, 9, 3):   # in a worker, a few chunks in
            os.kill(os.getpid(), signal.SIGKILL)
        if os.getpid() == main and through >= D(2019, 9, 3):
            read_here.append(through)   # the chunk must be lost, not quietly computed here instead
        return read(through)

    monkeypatch.setattr(sample_source, "adjusted", adjusted)
    with pytest.raises(RunFailure, match=r"the worker process computing the evenings of .* was lost"):
        run_backtest(cfg, D(2019, 6, 3), D(2020, 12, 31), source=sample_source, workers=2)
    assert not read_here and not multiprocessing.active_children()
