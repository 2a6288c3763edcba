"""`prep scanners`, `prep scan NAME` and `prep scan-backtest NAME` on the real sample (DESIGN §10)."""

import datetime as dt
import json
import os

import pandas as pd
import pytest

from trading_system import sessions
from trading_system.config import load_config
from trading_system.prepare.scanners import ScanContext
from trading_system.prepare.scanners import record
from trading_system.prepare.scanners.runner import run_scanners
from trading_system.review.scanners import status

from conftest import ROOT, SAMPLE, Prep, write_config
from fakes import peek_scanners

D = dt.date
NIGHT = "2021-04-19T20:00"


@pytest.fixture(scope="module")
def splits() -> pd.DataFrame:
    sp = pd.read_csv(SAMPLE / "splits.csv")
    sp["date"] = pd.to_datetime(sp["date"]).dt.date
    return sp


def gap_finds(bars: pd.DataFrame, splits: pd.DataFrame, night: dt.date, top: int = 50) -> tuple[list[str], pd.Series]:
    """The gap rule with its defaults, by hand: |open / previous close - 1| >= 2 %, the previous close
    put on the night's share basis by a split between the two bars, volume >= 1M, close <= $500;
    largest gap first, ties by symbol, the first ``top``."""
    b = bars[bars["date"] <= night].sort_values(["symbol", "date"])
    two = b.groupby("symbol").tail(2)
    today = two[two["date"] == night].set_index("symbol")
    prev = two[two["date"] < night].groupby("symbol").tail(1).set_index("symbol").reindex(today.index)
    prev_close = prev["close"].astype(float).copy()
    for sp in splits.itertuples():
        if sp.symbol in today.index and pd.notna(prev.loc[sp.symbol, "date"]) and prev.loc[sp.symbol, "date"] < sp.date <= night:
            prev_close[sp.symbol] /= sp.ratio
    gap = today["open"] / prev_close - 1.0
    keep = (gap.abs() >= 0.02) & (today["volume"] >= 1_000_000) & (today["close"] <= 500)
    hits = gap[keep]
    return sorted(hits.index, key=lambda s: (-abs(hits[s]), s))[:top], gap


# --- prep scan ----------------------------------------------------------------------------------

def test_scan_json_is_the_gap_rule_of_that_night(prep, sample_bars, splits):
    r = prep("--as-of", NIGHT, "scan", "gap", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)  # stdout holds the JSON and nothing else
    assert list(out) == ["scanner", "session", "symbols", "metadata"]
    assert out["scanner"] == "gap" and out["session"] == "2021-04-19"
    expected, gap = gap_finds(sample_bars, splits, D(2021, 4, 19))
    assert expected and out["symbols"] == expected
    assert list(out["metadata"]) == expected
    for sym in expected:
        assert out["metadata"][sym]["gap"] == pytest.approx(gap[sym], abs=1e-6)


def test_scan_prints_the_finds_and_writes_nothing(prep):
    before = set(prep.folder.rglob("*"))
    r = prep("--as-of", NIGHT, "scan", "gap")
    assert r.exit_code == 0, r.output
    assert "session 2021-04-19" in r.output and "TXT" in r.output and "prev_close" in r.output
    # the log is every command's record; no state, stats, plan, universe or report is written
    new = {p for p in set(prep.folder.rglob("*")) - before if (prep.folder / "logs") not in (p, *p.parents)}
    assert new == set()
    assert not (prep.folder / "data").exists() and not (prep.folder / "pending_trades.json").exists()


def test_scan_unknown_broken_and_morning_scanners(tmp_path):
    write_config(tmp_path, "scanners:\n"
                           "  - {name: early, module: 'builtin:gap', phase: morning}\n"
                           "  - {name: bad, module: 'no_such_module_xyz:Thing', action: report}\n"
                           "  - {name: broken, module: 'fakes.peek_scanners:Broken', action: report}\n")
    prep = Prep(tmp_path)
    r = prep("--as-of", NIGHT, "scan", "nope")
    assert r.exit_code == 2 and "no scanner named 'nope'" in r.output and "Traceback" not in r.output
    r = prep("--as-of", NIGHT, "scan", "bad")
    assert r.exit_code == 2 and "cannot be imported" in r.output and len(r.output.strip().splitlines()) == 1
    r = prep("--as-of", NIGHT, "scan", "broken")
    assert r.exit_code == 1 and "failed both attempts" in r.output and "RuntimeError: boom" in r.output
    r = prep("--as-of", NIGHT, "scan", "early")
    assert r.exit_code == 0 and "runs in the morning on pre-market prices" in r.output
    assert not (tmp_path / "data").exists()


# --- prep scanners ------------------------------------------------------------------------------

def test_scanners_without_any_says_how_to_add_one(prep):
    r = prep("scanners")
    assert r.exit_code == 0 and r.output.count("\n") == 1 and "no scanners are configured" in r.output
    r = prep("scanners", "--enable", "gap")
    assert r.exit_code == 2 and "no scanner named 'gap'" in r.output


def test_scanners_table_and_enable_across_processes(tmp_path, sample_bars, forks):
    path = write_config(tmp_path, "scanners:\n"
                                  "  - {name: broken, module: 'fakes.peek_scanners:Broken', action: report}\n"
                                  "  - {name: gappers, module: 'builtin:gap'}\n"
                                  "  - {name: quiet, module: 'builtin:volume', enabled: false}\n")
    cfg = load_config(path)
    folder = record.scanners_dir(cfg.path(cfg.paths.data_dir))
    bars = sample_bars[sample_bars["symbol"].isin(["AAPL", "TXT", "MSFT"])
                       & sample_bars["date"].isin([D(2021, 4, 16), D(2021, 4, 19)])].astype({"volume": float})
    for night in ("2021-04-19T20:00", "2021-04-19T20:05", "2021-04-19T20:10"):  # three nightly runs
        ctx = ScanContext(session=D(2021, 4, 19), phase="evening", now=dt.datetime.fromisoformat(night + "-04:00"),
                          bars=bars)
        run_scanners(cfg.scanners, ctx, state_dir=folder, isolate=False)
    rows = {r.name: r for r in status(cfg).rows}
    assert rows["broken"].disabled and not rows["broken"].enabled and rows["broken"].failures == 3
    assert rows["broken"].last_error == "RuntimeError: boom" and rows["broken"].mean_ms is None
    assert rows["gappers"].enabled and rows["gappers"].runs == 3 and rows["gappers"].last_found == 1  # TXT
    assert rows["gappers"].mean_ms is not None and rows["gappers"].last_run.startswith("2021-04-19T20:10")
    assert not rows["quiet"].enabled and rows["quiet"].runs == 0 and rows["quiet"].last_run is None

    prep = Prep(tmp_path)
    r = prep("scanners")
    assert r.exit_code == 0, r.output
    assert "broken is disabled" in r.output and "RuntimeError: boom" in r.output and "no: config" in r.output
    # another process (a child of the fork server) re-enables it; this one sees it
    done = forks.run(["-m", "trading_system.cli", "--config", str(path), "scanners", "--enable", "broken"], ROOT,
                     dict(os.environ), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "scanner broken re-enabled (it was disabled after 3 failed runs in a row)" in done.stdout
    rows = {r.name: r for r in status(cfg).rows}
    assert rows["broken"].enabled and rows["broken"].failures == 0
    r = prep("scanners")
    assert "broken is disabled" not in r.output
    r = prep("scanners", "--enable", "quiet")
    assert r.exit_code == 0 and "was not disabled" in r.output and "enabled: false" in r.output
    r = prep("scanners", "--enable", "nope")
    assert r.exit_code == 2 and "no scanner named 'nope'" in r.output and "broken, gappers, quiet" in r.output


# --- prep scan-backtest -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def peek_run(tmp_path_factory):
    """A scan-backtest of the Recorder over the AAPL split (ex-date 2020-08-31), gap beside it."""
    folder = tmp_path_factory.mktemp("peek")
    write_config(folder, "scanners:\n"
                         "  - {name: peek, module: 'fakes.peek_scanners:Recorder', action: report}\n"
                         "  - {name: gappers, module: 'builtin:gap'}\n")
    peek_scanners.Recorder.seen.clear()
    r = Prep(folder)("scan-backtest", "peek", "--start", "2020-08-17", "--end", "2020-09-11")
    assert r.exit_code == 0, r.output
    seen = list(peek_scanners.Recorder.seen)
    summary = json.loads((folder / "reports" / "scan_backtest_peek_20200817_20200911.json").read_text())
    return folder, r.output, seen, summary


def test_no_context_holds_a_bar_or_a_split_after_its_night(peek_run):
    _, _, seen, _ = peek_run
    nights = sessions.sessions_between(D(2020, 8, 17), D(2020, 9, 11))
    assert [s[0] for s in seen] == nights  # one context a night, in order, and no other
    for night, phase, newest, close, rows in seen:
        assert phase == "backtest" and rows > 100_000  # the whole market's history
        assert newest == night  # a bar dated the night, none after it
        # AAPL 4-for-1, ex-date 2020-08-31: the raw close 459.63 of 2020-08-14 is divided only from then
        assert close == pytest.approx(459.63 if night < D(2020, 8, 31) else 459.63 / 4), night


def test_scan_backtest_figures_by_hand(peek_run, sample_bars, splits):
    folder, output, _, s = peek_run
    assert s["nights"] == 19 and s["nights_with_hits"] == 19 and s["hits_per_night"] == {"mean": 1.0, "max": 1}
    night = {n["session"]: n for n in s["per_night"]}
    raw = sample_bars[sample_bars["symbol"] == "AAPL"].set_index("date")
    # found on 2020-08-27: bought at the open of 2020-08-28 (pre-split: $504.05 raw, $126.0125 after)
    aapl = night["2020-08-27"]["returns"]["AAPL"]
    assert aapl["1"] == pytest.approx(raw.loc[D(2020, 8, 28), "close"] / raw.loc[D(2020, 8, 28), "open"] - 1, abs=1e-6)
    assert aapl["5"] == pytest.approx(120.88 / (504.05 / 4) - 1, abs=1e-6)  # the close of 2020-09-03
    assert aapl["20"] == pytest.approx(raw.loc[D(2020, 9, 25), "close"] / (504.05 / 4) - 1, abs=1e-6)
    # the universe's next-session mean: the constituents and the benchmarks that trade on 2020-08-28
    universe = set(pd.read_csv(SAMPLE / "constituents.csv")["symbol"]) | {"SPY", "QQQ"}
    day = sample_bars[(sample_bars["date"] == D(2020, 8, 28)) & sample_bars["symbol"].isin(universe)]
    assert night["2020-08-27"]["universe"]["1"] == pytest.approx((day["close"] / day["open"] - 1).mean(), abs=1e-6)
    # overlap: the nights the gap rule (by hand) found AAPL too
    window = sample_bars[(sample_bars["date"] >= D(2020, 8, 1)) & (sample_bars["date"] <= D(2020, 9, 11))]
    by_hand = sum("AAPL" in gap_finds(window, splits, D.fromisoformat(n))[0] for n in night)
    assert by_hand >= 1 and s["overlap"]["gappers"]["shared"] == by_hand
    assert s["overlap"]["gappers"]["share"] == pytest.approx(by_hand / 19, abs=1e-6)
    assert s["horizons"]["20"]["nights"] == 19 and s["horizons"]["1"]["finds_measured"] == 19
    png = (folder / "reports" / "scan_backtest_peek_20200817_20200911.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "19 nights, 19 with finds" in output and "overlap" in output and "gappers" in output


@pytest.mark.parametrize("args,message", [
    (["gap", "--start", "2021-04-20", "--end", "2021-04-01"], "is after --end"),
    (["nope", "--start", "2021-04-01", "--end", "2021-04-09"], "no scanner named 'nope'"),
    (["gap", "--start", "2018-04-02", "--end", "2018-04-09"], "the data covers 2019-01-02"),
])
def test_scan_backtest_bad_input_exits_2(prep, args, message):
    r = prep("scan-backtest", *args)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
    assert not (prep.folder / "reports").exists()


def test_scan_backtest_of_a_broken_scanner_stops_after_three_nights(tmp_path):
    write_config(tmp_path, "scanners:\n  - {name: broken, module: 'fakes.peek_scanners:Broken', action: report}\n")
    r = Prep(tmp_path)("scan-backtest", "broken", "--start", "2021-04-01", "--end", "2021-04-20")
    assert r.exit_code == 1 and "failed 3 nights in a row (2021-04-01 to 2021-04-06" in r.output
    assert "RuntimeError: boom" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "reports").exists()


def test_scan_backtest_forward_returns_stop_at_the_as_of(prep):
    r = prep("--as-of", "2021-04-01T20:00", "scan-backtest", "gap", "--start", "2021-03-29", "--end", "2021-03-31")
    assert r.exit_code == 0, r.output
    s = json.loads((prep.folder / "reports" / "scan_backtest_gap_20210329_20210331.json").read_text())
    assert s["forward_data_through"] == "2021-04-01"
    assert s["curve"]["session"][-1] == "2021-04-01" and s["horizons"]["1"]["nights"] == 3
    assert s["horizons"]["5"]["nights"] == 0 and s["horizons"]["5"]["finds_mean"] is None
    assert "count only for the horizons they have" in r.output
