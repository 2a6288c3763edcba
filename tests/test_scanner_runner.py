"""The scanner runner (DESIGN §10): every scanner in a forked child under its timeout, one retry,
what it returns checked and capped, disable after 3 failed runs in a row across cron runs
(separate processes sharing data/scanners), re-enable, and one stats line per scanner run.

The misbehaving scanners live in tests/fakes/user_scanners.py, loaded as a user's module would be
(``user_scanners:Raises``) with tests/fakes on the path.  The nights are real: 2019-04-18 of eight
S&P 500 names from data/sample, on which the built-in gap finds URI, SNA and HON.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from trading_system.prepare.scanners import ScanContext
from trading_system.prepare.scanners.record import read_state, read_stats, set_enabled
from trading_system.prepare.scanners.runner import run_entry, run_scanners
from trading_system.prepare.scanners.settings import ScannerEntry

ROOT = Path(__file__).resolve().parents[1]
FAKES = Path(__file__).resolve().parent / "fakes"
SESSION = dt.date(2019, 4, 18)
NAMES = ["AMGN", "GPC", "HON", "ISRG", "KO", "MRK", "SNA", "URI"]
GAPPERS = ScannerEntry(name="gappers", module="builtin:gap")


@pytest.fixture(scope="module")
def bars(sample_bars) -> pd.DataFrame:
    """25 sessions of the eight names up to 2019-04-18 (no split of theirs falls in them, so the
    raw bars are the split-adjusted ones)."""
    rows = sample_bars[sample_bars["symbol"].isin(NAMES) & (sample_bars["date"] <= SESSION)]
    first = sorted(rows["date"].unique())[-25]
    out = rows[rows["date"] >= first].sort_values(["symbol", "date"]).reset_index(drop=True)
    return out.assign(volume=out["volume"].astype(float))


@pytest.fixture
def ctx(bars) -> ScanContext:
    return ScanContext(session=SESSION, phase="evening",
                       now=dt.datetime(2019, 4, 18, 20, tzinfo=ZoneInfo("America/New_York")), bars=bars)


@pytest.fixture(autouse=True)
def user_module_on_path(monkeypatch):
    """tests/fakes on sys.path, as a user's scanner folder on PYTHONPATH (forked children inherit it)."""
    monkeypatch.syspath_prepend(str(FAKES))


def entry(name: str, cls: str, **kw) -> ScannerEntry:
    return ScannerEntry(name=name, module=f"user_scanners:{cls}", **kw)


def test_a_scanner_that_raises_is_retried_once_then_recorded_and_the_run_goes_on(ctx):
    out = run_scanners([entry("broken", "Raises"), GAPPERS], ctx)
    broken, gappers = out.runs
    assert (broken.failed, broken.attempts, broken.symbols) == (True, 2, [])
    assert broken.error == "RuntimeError: the vendor feed is down"
    assert out.lines == ["scanner broken failed (attempt 1 of 2): RuntimeError: the vendor feed is down",
                         "scanner broken failed (attempt 2 of 2): RuntimeError: the vendor feed is down"]
    assert (gappers.failed, gappers.attempts, gappers.symbols) == (False, 1, ["URI", "SNA", "HON"])
    assert out.found_by() == {"HON": ["gappers"], "SNA": ["gappers"], "URI": ["gappers"]}


def test_a_scanner_that_fails_once_is_saved_by_its_retry(ctx, tmp_path):
    run, notes = run_entry(entry("flaky", "FailsOnce", params={"marker": str(tmp_path / "marker")}), [], ctx)
    assert (run.failed, run.attempts, run.symbols) == (False, 2, NAMES)
    assert notes == ["scanner flaky failed (attempt 1 of 2): ValueError: first attempt fails"]


def test_a_scanner_that_hangs_is_killed_at_its_timeout(ctx):
    start = time.monotonic()
    run, notes = run_entry(entry("sleepy", "Hangs", timeout_seconds=0.5), [], ctx)
    elapsed = time.monotonic() - start
    assert (run.failed, run.attempts, run.error) == (True, 2, "timed out after 0.5 s")
    assert notes[-1] == "scanner sleepy failed (attempt 2 of 2): timed out after 0.5 s"
    assert elapsed < 5, f"two 0.5 s attempts took {elapsed:.1f} s"


def test_a_scanner_whose_process_dies_is_noticed(ctx):
    run, notes = run_entry(entry("dies", "Dies"), [], ctx)
    assert (run.failed, run.attempts) == (True, 2)
    assert run.error == "its process died without an answer (exit code 3)"
    assert len(notes) == 2


def test_what_a_scanner_returns_is_checked_floored_and_capped(ctx):
    # 10,000 values: the 8 names twice, 7 that are not tickers, 9,977 tickers with no bar that night
    run, notes = run_entry(entry("flood", "Floods", params={"bad": 7}, min_price=100, max_symbols=3), [], ctx)
    assert not run.failed
    # $100 floor: KO ($47.48) and MRK ($73.19) go; then the first 3 of the scanner's order
    assert run.symbols == ["AMGN", "GPC", "HON"] and run.capped_from == 6
    assert run.metadata == {"AMGN": {"rank": 0}, "GPC": {"rank": 1}, "HON": {"rank": 2}}
    assert notes == [
        "scanner flood returned 7 value(s) that are not tickers (e.g. 42, None, 'aapl'); they were dropped",
        "scanner flood returned 9977 symbol(s) with no bar on 2019-04-18 (e.g. ZZAAA, ZZAAB, ZZAAC); "
        "they were dropped",
        "scanner flood found 6 symbols; kept its top 3 (max_symbols)",
    ]
    assert run.summary()["found"] == 3


def test_a_declined_night_is_skipped_not_failed(ctx):
    run, notes = run_entry(entry("shy", "Declines"), [], ctx)
    assert (run.skipped, run.failed, run.symbols, notes) == (True, False, [], [])


def test_a_result_that_is_not_a_scanresult_is_a_failure(ctx):
    run, _ = run_entry(entry("listy", "ReturnsList"), [], ctx)
    assert run.error == "TypeError: scan() returned list, not a ScanResult"


def test_a_module_that_will_not_load_is_a_failed_run_without_retry(ctx):
    run, notes = run_entry(ScannerEntry(name="gone", module="no_such_scanners_module:Thing"), [], ctx)
    assert (run.failed, run.attempts) == (True, 0)
    assert notes == [run.error] and "cannot be imported" in run.error


def test_in_process_runs_record_a_failure_too(ctx):
    out = run_scanners([entry("broken", "Raises"), GAPPERS], ctx, isolate=False)
    assert [r.error for r in out.runs] == ["RuntimeError: the vendor feed is down", None]
    assert out.runs[1].symbols == ["URI", "SNA", "HON"]


def test_only_enabled_scanners_of_the_phase_run(ctx, tmp_path):
    entries = [GAPPERS, ScannerEntry(name="off", module="builtin:volume", enabled=False),
               ScannerEntry(name="morning", module="builtin:gap", phase="morning")]
    out = run_scanners(entries, ctx, state_dir=tmp_path)
    assert [r.name for r in out.runs] == ["gappers"]
    assert [line["name"] for line in read_stats(tmp_path)] == ["gappers"]


def test_a_morning_veto_says_why(bars, sample_bars):
    # 09:00 on 2019-04-22 (after Good Friday): the pre-market price stands in as that session's open
    opens = sample_bars[sample_bars["date"] == dt.date(2019, 4, 22)].set_index("symbol")["open"]
    morning = ScanContext(session=SESSION, phase="morning", bars=bars,
                          now=dt.datetime(2019, 4, 22, 9, tzinfo=ZoneInfo("America/New_York")),
                          premarket={s: float(opens[s]) for s in NAMES})
    evening_gap = ScannerEntry(name="gappers", module="builtin:gap")          # not this phase
    vetoes = ScannerEntry(name="pm_gap", module="builtin:gap", phase="morning", max_price=1000)
    out = run_scanners([evening_gap, vetoes], morning)
    # ISRG: 499.90 against its 528.06 close (-5.3 %); every other name within 0.6 %
    assert [(r.name, r.action, r.symbols) for r in out.runs] == [("pm_gap", "veto", ["ISRG"])]
    assert out.reasons("veto") == {"ISRG": "pm_gap (gap -0.05333, price 499.9, prev_close 528.1, volume 2.437e+06)"}
    assert out.found_by(("add",)) == {}
    # the default $500 ceiling reads the last close ($528.06), so by default ISRG is not a find
    default = run_scanners([ScannerEntry(name="pm_gap", module="builtin:gap", phase="morning")], morning)
    assert default.runs[0].symbols == []


# --- disable after 3 failed runs, across processes ---------------------------------------------

CRON_RUN = """
import datetime as dt, json, sys
from pathlib import Path
from zoneinfo import ZoneInfo
import pandas as pd
from trading_system.prepare.scanners import ScanContext
from trading_system.prepare.scanners.runner import run_scanners
from trading_system.prepare.scanners.settings import ScannerEntry

bars = pd.read_parquet(sys.argv[1])
session = dt.date(2019, 4, 18)
now = dt.datetime(2019, 4, 18, 20, int(sys.argv[3]), tzinfo=ZoneInfo("America/New_York"))
ctx = ScanContext(session=session, phase="evening", now=now, bars=bars)
entries = [ScannerEntry(name="broken", module="user_scanners:Raises"),
           ScannerEntry(name="gappers", module="builtin:gap")]
out = run_scanners(entries, ctx, state_dir=Path(sys.argv[2]))
print(json.dumps({"lines": out.lines, "runs": [r.summary() for r in out.runs]}))
"""


def cron_run(forks, script: Path, bars_file: Path, state_dir: Path, minute: int) -> dict:
    """One nightly run (``script``: CRON_RUN) in its own Python process, sharing ``state_dir``: a child of
    the fork server (fakes/prep_forkserver.py), with tests/fakes on its PYTHONPATH as a user's folder."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FAKES), str(ROOT)])}
    done = forks.run([script, bars_file, state_dir, minute], ROOT, env, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_three_failed_runs_in_separate_processes_disable_a_scanner_until_enabled(bars, ctx, tmp_path, forks):
    bars_file = tmp_path / "bars.parquet"
    bars.to_parquet(bars_file)
    state_dir = tmp_path / "data" / "scanners"
    script = tmp_path / "cron_run.py"
    script.write_text(CRON_RUN)

    for minute in (1, 2, 3):                       # DESIGN §10: disabled after 3 failed runs in a row
        out = cron_run(forks, script, bars_file, state_dir, minute)
        assert [(r["name"], r["attempts"], r["error"]) for r in out["runs"]] == [
            ("broken", 2, "RuntimeError: the vendor feed is down"), ("gappers", 1, None)]
        assert read_state(state_dir)["broken"]["consecutive_failures"] == minute
        assert read_state(state_dir)["gappers"]["consecutive_failures"] == 0
    assert out["lines"][-1] == ("scanner broken failed 3 runs in a row and is now disabled; "
                                "'prep scanners --enable broken' turns it back on")
    state = read_state(state_dir)["broken"]
    assert (state["disabled"], state["last_error"], state["last_run"]) == (
        True, "RuntimeError: the vendor feed is down", "2019-04-18T20:03:00-04:00")
    assert json.loads((state_dir / "state.json").read_text())["scanners"]["broken"]["disabled"] is True

    fourth = cron_run(forks, script, bars_file, state_dir, 4)
    broken, gappers = fourth["runs"]
    assert (broken["disabled"], broken["attempts"], broken["symbols"]) == (True, 0, [])
    assert gappers["symbols"] == ["URI", "SNA", "HON"]
    assert fourth["lines"] == ["scanner broken is disabled after 3 failed runs in a row (last: RuntimeError: the "
                               "vendor feed is down); 'prep scanners --enable broken' turns it back on"]

    # one stats line per scanner that ran: 2 a night for three nights, then gappers alone
    stats = read_stats(state_dir)
    assert [(s["name"], s["error"]) for s in stats] == [
        ("broken", "RuntimeError: the vendor feed is down"), ("gappers", None)] * 3 + [("gappers", None)]
    assert [s["time"][11:16] for s in stats] == ["20:01", "20:01", "20:02", "20:02", "20:03", "20:03", "20:04"]
    assert all(s["session"] == "2019-04-18" and s["phase"] == "evening" for s in stats)
    assert stats[1]["found"] == 3 and stats[1]["symbols"] == ["URI", "SNA", "HON"]
    assert len((state_dir / "stats.jsonl").read_text().splitlines()) == 7

    # prep scanners --enable broken: it runs again, and one more failure does not disable it
    record = set_enabled(state_dir, "broken")
    assert (record["disabled"], record["consecutive_failures"]) == (False, 0)
    again = run_scanners([entry("broken", "Raises"), GAPPERS], ctx, state_dir=state_dir)
    assert [(r.name, r.disabled, r.attempts) for r in again.runs] == [("broken", False, 2), ("gappers", False, 1)]
    state = read_state(state_dir)["broken"]
    assert (state["disabled"], state["consecutive_failures"]) == (False, 1)
    assert len(read_stats(state_dir)) == 9


def test_a_success_resets_the_failure_count(ctx, tmp_path):
    marker = tmp_path / "marker"
    failing = entry("flaky", "Raises")
    run_scanners([failing], ctx, state_dir=tmp_path)
    run_scanners([failing], ctx, state_dir=tmp_path)
    assert read_state(tmp_path)["flaky"]["consecutive_failures"] == 2
    marker.write_text("already failed once")           # FailsOnce now works at its first attempt
    run_scanners([entry("flaky", "FailsOnce", params={"marker": str(marker)})], ctx, state_dir=tmp_path)
    state = read_state(tmp_path)["flaky"]
    assert (state["consecutive_failures"], state["disabled"]) == (0, False)
