"""`prep backtest`: the cron path replayed session by session, without peeking."""

import collections
import datetime as dt
import json
from pathlib import Path

import pytest

from trading_system import sessions
from trading_system.review.backtest import (
    BUY_HOLD,
    NO_EVENTS,
    NO_GATE,
    NO_REGIME,
    SYSTEM,
    regime_off_plan,
    run_backtest,
    scratch_config,
)
from trading_system.config import load_config

from conftest import SAMPLE, write_config

D = dt.date
GOLDEN = Path(__file__).parent / "golden" / "cycle_2021-04-20.json"


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    return load_config(write_config(tmp_path_factory.mktemp("bt")))


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


def test_no_bar_or_split_after_the_as_of_reaches_a_scan(cfg, sample_source):
    rec = Recording(sample_source)
    # 2020-08-26 -> 2020-09-02 spans the AAPL 4-for-1 split (ex-date 2020-08-31).
    result = run_backtest(cfg, D(2020, 8, 26), D(2020, 9, 2), source=rec, on_step=rec.on_step, engine="nightly")
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
def april(cfg, sample_source, tmp_path_factory):
    work = tmp_path_factory.mktemp("april")
    return (run_backtest(cfg, D(2021, 4, 16), D(2021, 4, 20), source=sample_source, gate_off_twin=True, workdir=work,
                         engine="nightly"), work)


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
    # made 5 bps worse (the default costs.slippage_bps; no commission)
    spy = round(58_800.00 / (day.loc["SPY", "open"] * 1.0005), 9)
    qqq = round(39_200.00 / (day.loc["QQQ", "open"] * 1.0005), 9)
    expected = 2_000.00 + spy * day.loc["SPY", "close"] + qqq * day.loc["QQQ", "close"]
    paid = 58_800.00 - spy * day.loc["SPY", "open"] + 39_200.00 - qqq * day.loc["QQQ", "open"]
    assert result.figures[BUY_HOLD]["slippage"] >= paid - 0.01   # the first session's buys, and later rebalances
    assert result.figures[BUY_HOLD]["gross_end_equity"] == pytest.approx(
        result.figures[BUY_HOLD]["end_equity"] + result.figures[BUY_HOLD]["costs"])
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


# --- the regime and the earnings gate, each switched off beside the system (issue 12 item 6) ---------

def _archived(folder: Path) -> list[dict]:
    """The plans archived in one account's workspace, oldest first."""
    return [json.loads(p.read_text())["plan"] for p in sorted((folder / "archived_trades").glob("*.json"))]


def _state(plan: dict) -> str:
    regime = plan["context"]["regime"]
    return regime["state"] if regime["status"] == "ok" else regime["status"]


@pytest.fixture(scope="module")
def covid(cfg, sample_source, tmp_path_factory):
    """The start of the COVID crash in the sample: RISK_ON, then NEUTRAL, then mostly RISK_OFF (the
    regime of 2020-02-27 on), with earnings reports removing picks on several nights."""
    work = tmp_path_factory.mktemp("covid")
    result = run_backtest(cfg, D(2020, 2, 24), D(2020, 3, 9), source=sample_source, regime_off_twin=True,
                          events_off_twin=True, workdir=work, engine="nightly")
    return result, work


def test_twins_lines_and_regime_nights_read_from_the_plans(covid, cfg):
    from rich.console import Console

    from trading_system.review.backtest_report import render, summary

    result, work = covid
    assert list(result.equity.columns) == [SYSTEM, NO_REGIME, NO_EVENTS, BUY_HOLD]
    console = Console(record=True, width=220)
    render(console, result, cfg, None, None)
    text = console.export_text()
    for label, name in (("system (gate on)", SYSTEM), ("system, regime off", NO_REGIME),
                        ("system, earnings gate off", NO_EVENTS), ("BUY_HOLD (SPY/QQQ)", BUY_HOLD)):
        row = next(line for line in text.splitlines() if label in line and "$" in line)
        assert f"${result.figures[name]['end_equity']:,.2f}" in row, row
    assert "the regime helped" in text or "the regime did not help" in text
    assert "the earnings gate helped" in text or "the earnings gate did not help" in text
    # the nights per regime state, read independently from the system's archived plans
    plans = _archived(work / "system")
    assert [p["target_session"] for p in plans] == [str(n.session) for n in result.nights]
    counted = collections.Counter(_state(p) for p in plans)
    doc = summary(result, cfg, None, None)
    assert {k: v for k, v in doc["regime_nights"].items() if v} == dict(counted)
    assert set(doc["regime_nights"]) >= {"RISK_ON", "NEUTRAL", "RISK_OFF", "unavailable"}
    assert counted["RISK_ON"] and counted["NEUTRAL"] and counted["RISK_OFF"] >= 4
    assert sum(counted.values()) == len(result.nights) == 11
    assert f"RISK_OFF {counted['RISK_OFF']}" in text
    assert set(doc["gates"]) == {NO_REGIME, NO_EVENTS} and set(doc["figures"]) == {SYSTEM, NO_REGIME, NO_EVENTS,
                                                                                    BUY_HOLD}
    # the earnings gate's removals, read from the same plans
    removed = [sorted(p["context"]["events"]["removed"]) for p in plans]
    assert removed == [n.earnings_removed for n in result.nights] and any(removed)
    assert doc["earnings_removed"] == {"picks": sum(map(len, removed)), "nights": sum(map(bool, removed))}


def test_the_twins_plans_have_their_switch_off_and_trade_accordingly(covid):
    result, work = covid
    no_regime, no_events = _archived(work / "no_regime"), _archived(work / "no_events")
    assert len(no_regime) == len(no_events) == len(result.nights)
    assert {p["context"]["regime"]["status"] for p in no_regime} == {"off"}
    assert {p["context"]["events"]["status"] for p in no_events} == {"off"}
    assert all(p["config"]["regime"]["enabled"] is False for p in no_regime)
    for night in result.nights:
        assert night.exposure[NO_REGIME] == 1.0
        if night.regime == "RISK_OFF":   # the system trades the benchmarks at half exposure; the twin does not
            assert night.selected[SYSTEM] == BUY_HOLD and night.exposure[SYSTEM] == 0.5
    assert any(n.regime == "RISK_OFF" and n.selected[NO_REGIME] != BUY_HOLD for n in result.nights)
    # the regime-off twin trades the system's scan: the same plans but for the regime
    system = _archived(work / "system")
    assert [p["plan_id"] for p in no_regime] == [p["plan_id"] for p in system]
    assert [p["context"]["events"] for p in no_regime] == [p["context"]["events"] for p in system]


def test_regime_off_plan_is_the_plan_prepare_writes_with_the_regime_off(cfg, sample_source, tmp_path):
    from trading_system.prepare.run import run_prepare

    clock = sessions.Clock(dt.datetime(2020, 3, 9, 20, 0, tzinfo=sessions.ET))
    gate = cfg.validation.retention_threshold
    system = run_prepare(scratch_config(cfg, tmp_path / "s", gate), clock, dry_run=True, source=sample_source).plan
    twin_cfg = scratch_config(cfg, tmp_path / "r", gate, regime_off=True)
    twin = run_prepare(twin_cfg, clock, dry_run=True, source=sample_source).plan
    assert system.context.regime.state == "RISK_OFF" and twin.context.regime.status == "off"
    assert regime_off_plan(system, twin_cfg, sample_source).model_dump() == twin.model_dump()


def test_the_twins_colours_are_their_own(covid):
    from trading_system.present.charts import ACCOUNT_COLOURS, _SPARE, equity_figure

    fig = equity_figure(covid[0].equity, "accounts")
    seen = {line.get_label(): line.get_color() for ax in fig.axes for line in ax.get_lines()}
    assert seen == {name: ACCOUNT_COLOURS[name] for name in (SYSTEM, NO_REGIME, NO_EVENTS, BUY_HOLD)}
    assert len(set(ACCOUNT_COLOURS.values())) == len(ACCOUNT_COLOURS)
    assert not set(_SPARE) & set(ACCOUNT_COLOURS.values())


def test_bars_find_earnings_beside_them(cfg, tmp_path):
    from trading_system.review.backtest_report import bars_events, earnings_source

    assert bars_events(cfg, None) is cfg
    assert bars_events(cfg, str(tmp_path / "bars.parquet")) is cfg   # no earnings.csv there: as configured
    (tmp_path / "earnings.csv").write_text("symbol,date\nAAPL,2020-04-30\n")
    used = bars_events(cfg.model_copy(update={"events": cfg.events.model_copy(update={"provider": "polygon"})}),
                       str(tmp_path / "bars.parquet"))
    assert used.events.provider == "csv" and earnings_source(used) == str(tmp_path / "earnings.csv")
    off = cfg.model_copy(update={"events": cfg.events.model_copy(update={"provider": "none"})})
    assert bars_events(off, str(tmp_path / "bars.parquet")) is off


def test_cli_backtest_with_every_twin(prep):
    r = prep("backtest", "--start", "2020-03-10", "--end", "2020-03-12", "--no-gate", "--no-regime", "--no-events",
             "--bars", str(SAMPLE / "bars.parquet"))
    assert r.exit_code == 0, r.output
    for label in ("system, gate off", "system, regime off", "system, earnings gate off", "RISK_OFF 3"):
        assert label in r.output
    doc = json.loads((prep.folder / "reports" / "backtest_20200310_20200312.json").read_text())
    assert set(doc["figures"]) == {SYSTEM, NO_GATE, NO_REGIME, NO_EVENTS, BUY_HOLD}
    assert set(doc["gates"]) == {NO_GATE, NO_REGIME, NO_EVENTS}
    assert doc["regime_nights"] == {"RISK_ON": 0, "NEUTRAL": 0, "RISK_OFF": 3, "unavailable": 0}
    assert doc["earnings"] == str((SAMPLE / "earnings.csv").absolute())
    assert doc["index_bars"] == str(SAMPLE / "market_context.parquet")
    assert [n["regime"] for n in doc["nights"]] == ["RISK_OFF"] * 3
