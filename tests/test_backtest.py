"""`prep backtest`: the cron path replayed session by session, without peeking."""

import datetime as dt
import json
from pathlib import Path

import pytest

from trading_system import sessions
from trading_system.review.backtest import BUY_HOLD, NO_GATE, SYSTEM, run_backtest
from trading_system.config import load_config
from trading_system.marketdata.cached import CachedSource
from trading_system.marketdata.store import BarStore

from conftest import SAMPLE, write_config

D = dt.date
GOLDEN = Path(__file__).parent / "golden" / "cycle_2021-04-20.json"


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    return load_config(write_config(tmp_path_factory.mktemp("bt")))


@pytest.fixture(scope="module")
def source():
    return CachedSource.from_store(BarStore(SAMPLE))


class Recording:
    """Wraps the backtest's source; records every read with the as-of instant it was made at."""

    def __init__(self, inner):
        self.inner, self.name = inner, inner.name
        self.as_of, self.stage = None, None
        self.reads, self.quotes = [], []

    def __getattr__(self, attr):  # the broker's store reads and the coverage checks pass through
        return getattr(self.inner, attr)

    def on_step(self, stage, as_of, done, total):
        self.stage, self.as_of = stage, as_of

    def bars(self, end, start=None, symbols=None, adjust_through=None):
        out = self.inner.bars(end, start, symbols, adjust_through)
        self.reads.append((self.stage, self.as_of, end, adjust_through, out))
        return out

    def premarket_prices(self, symbols, session):
        self.quotes.append((self.as_of, session))
        return self.inner.premarket_prices(symbols, session)


def test_no_bar_or_split_after_the_as_of_reaches_a_scan(cfg, source):
    rec = Recording(source)
    # 2020-08-26 -> 2020-09-02 spans the AAPL 4-for-1 split (ex-date 2020-08-31).
    result = run_backtest(cfg, D(2020, 8, 26), D(2020, 9, 2), source=rec, on_step=rec.on_step)
    assert [n.session for n in result.nights] == sessions.sessions_between(D(2020, 8, 26), D(2020, 9, 2))
    prepares = [r for r in rec.reads if r[0] == "prepare"]
    assert len(prepares) == len(result.nights)  # one scan a night, the last night's is not needed
    for stage, as_of, end, adjust, frame in rec.reads:
        closed = sessions.last_closed_session(as_of)
        assert frame["date"].max() <= closed, (stage, as_of)
        assert (adjust or end) <= as_of.date(), (stage, as_of)
        aapl = frame[(frame["symbol"] == "AAPL") & (frame["date"] == D(2020, 8, 28))]
        if len(aapl):  # raw 499.23; on the new basis only once the ex-date has come
            expected = 499.23 / 4 if as_of.date() >= D(2020, 8, 31) else 499.23
            assert aapl["close"].item() == pytest.approx(expected), (stage, as_of)
    scans = {as_of.date() for stage, as_of, *_ in rec.reads if stage == "prepare"}
    assert D(2020, 8, 28) in scans and D(2020, 8, 31) in scans
    assert all(session == as_of.date() for as_of, session in rec.quotes)


@pytest.fixture(scope="module")
def april(cfg, source, tmp_path_factory):
    work = tmp_path_factory.mktemp("april")
    return run_backtest(cfg, D(2021, 4, 16), D(2021, 4, 20), source=source, gate_off_twin=True, workdir=work), work


def test_each_night_is_the_cron_path(april):
    result, work = april
    golden = json.loads(GOLDEN.read_text())
    archived = [json.loads(p.read_text()) for p in sorted((work / "system" / "archived_trades").glob("*.json"))]
    assert [a["plan"]["target_session"] for a in archived] == ["2021-04-16", "2021-04-19", "2021-04-20"]
    last = archived[-1]["plan"]
    # the plan of 2021-04-19 20:00 is the one `prep prepare` writes (tests/golden), decided the same way
    assert last["plan_id"] == golden["plan_id"]
    assert last["validation_results"]["selected_strategy"] == golden["selected_strategy"]
    assert result.nights[-1].selected[SYSTEM] == golden["selected_strategy"]
    for name, st in golden["strategies"].items():
        assert {s: round(w, 6) for s, w in last["strategies"][name]["allocations"].items()} == st["allocations"]


def test_buy_hold_is_rebalanced_and_marked_from_real_bars(april, sample_bars):
    result, _ = april
    day = sample_bars[sample_bars.date == D(2021, 4, 16)].set_index("symbol")
    # first session: 100k, 2 % cash buffer, notional buys rounded down to cents, filled at the raw open
    spy = round(58_800.00 / day.loc["SPY", "open"], 9)
    qqq = round(39_200.00 / day.loc["QQQ", "open"], 9)
    expected = 2_000.00 + spy * day.loc["SPY", "close"] + qqq * day.loc["QQQ", "close"]
    assert result.equity[BUY_HOLD].iloc[0] == 100_000.0
    assert result.equity[BUY_HOLD].iloc[1] == pytest.approx(expected, abs=0.01)
    assert list(result.equity.columns) == [SYSTEM, NO_GATE, BUY_HOLD]
    assert list(result.equity.index) == [D(2021, 4, 15), D(2021, 4, 16), D(2021, 4, 19), D(2021, 4, 20)]


def test_gate_off_rejects_nothing_it_could_price(april):
    result, _ = april
    assert result.rejection_rate(NO_GATE) == 0.0
    assert all(n.rejected[NO_GATE] <= n.rejected[SYSTEM] for n in result.nights)


def test_cli_backtest_writes_summary_and_chart(prep):
    args = ["backtest", "--start", "2021-04-12", "--end", "2021-04-16", "--no-gate"]
    r = prep(*args)
    assert r.exit_code == 0, r.output
    assert "survivorship bias" in r.output and "BUY_HOLD" in r.output and "gate off" in r.output
    summary = json.loads((prep.folder / "reports" / "backtest_20210412_20210416.json").read_text())
    assert set(summary["figures"]) == {SYSTEM, NO_GATE, BUY_HOLD}
    assert summary["sessions"] == 5 and len(summary["equity"]["session"]) == 6
    for name, fig in summary["figures"].items():
        assert fig["end_equity"] == pytest.approx(summary["equity"][name][-1], abs=0.01)
        assert 0 <= fig["max_drawdown"] < 1
    assert sum(summary["selections"][SYSTEM].values()) == 5
    png = (prep.folder / "reports" / "backtest_20210412_20210416.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # the same bars named with --bars (splits.csv found beside them) give the same account
    r2 = prep(*args[:5], "--bars", str(SAMPLE / "bars.parquet"), "--out", str(prep.folder / "other"))
    assert r2.exit_code == 0, r2.output
    other = json.loads((prep.folder / "other" / "backtest_20210412_20210416.json").read_text())
    assert other["splits_file"] == str(SAMPLE / "splits.csv")
    assert other["figures"][SYSTEM]["end_equity"] == summary["figures"][SYSTEM]["end_equity"]


@pytest.mark.parametrize("args,message", [
    (["--start", "2021-04-20", "--end", "2021-04-01"], "is after --end"),
    (["--start", "2019-01-02", "--end", "2019-01-10"], "the data covers 2019-01-02 to 2021-04-21"),
    (["--start", "2021-04-01", "--end", "2021-05-10"], "the data covers"),
    (["--start", "2021-04-03", "--end", "2021-04-04"], "no trading session"),
    (["--start", "2021-04-01", "--end", "2021-04-09", "--bars", "missing.parquet"], "no such file"),
])
def test_bad_ranges_and_files_exit_2_with_one_sentence(prep, args, message):
    r = prep("backtest", *args)
    assert r.exit_code == 2
    assert message in r.output and "Traceback" not in r.output
    assert not (prep.folder / "reports").exists()


def test_bars_without_splits_beside_them_and_the_as_of_clamp(prep, tmp_path):
    lone = tmp_path / "lone" / "bars.parquet"
    lone.parent.mkdir()
    lone.write_bytes((SAMPLE / "bars.parquet").read_bytes())
    r = prep("backtest", "--start", "2021-04-01", "--end", "2021-04-09", "--bars", str(lone))
    assert r.exit_code == 2 and "expected" in r.output and "--splits" in r.output
    r = prep("--as-of", "2021-04-05T12:00", "backtest", "--start", "2021-04-01", "--end", "2021-04-09")
    assert r.exit_code == 2 and "after the last closed session 2021-04-01" in r.output
