"""`prep sweep`: a grid of settings, one backtest per combination, on a local pool or a real Dask cluster.

Real sample bars over four sessions (2020-06-01..04), a 2 x 2 grid of the gate's
threshold and the weight cap: 4 trials.  The local sweep runs once per module; the Dask sweep must give
the same trials, the resumed sweep runs only what is missing, and the holdout ranks on the sessions up
to its date only.
"""

import datetime as dt
import io
import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from rich.console import Console

from trading_system.config import load_config
from trading_system.errors import BadInputError, RunFailure
from trading_system.review import sweep_engines
from trading_system.review.sweep_report import sweep_command
from trading_system.sessions import Clock

from conftest import write_config

D = dt.date
START, END, HOLDOUT = D(2020, 6, 1), D(2020, 6, 4), D(2020, 6, 2)
CLOCK = Clock(dt.datetime(2021, 4, 21, 12, 0, tzinfo=dt.timezone.utc))
GRID = "validation.retention_threshold: [0.75, 0.95]\nstrategies.weight_cap: [0.1, 0.2]\n"
#: What two runs of one trial must share (``seconds`` and ``worker`` say when and where it ran).
RESULT_FIELDS = ("key", "status", "settings", "start", "end", "risk_free_rate", "figures", "selections", "equity")


@pytest.fixture(scope="module")
def shared(tmp_path_factory, worker_id):
    """A folder every xdist worker of this run shares (pytest-xdist's "run a fixture once" recipe), with
    its lock: the module's sweep runs once, not once per worker."""
    root = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    with FileLock(str(root / "sweep_shared.lock")):
        (root / "sweep_shared").mkdir(exist_ok=True)
        if not (root / "sweep_shared" / "config.yaml").exists():
            write_config(root / "sweep_shared")
    return root / "sweep_shared", FileLock(str(root / "sweep_shared.lock"))


@pytest.fixture(scope="module")
def cfg(shared):
    return load_config(shared[0] / "config.yaml")


def run(cfg, out: Path, grid: str = GRID, jobs: int | None = 2, scheduler=None, max_trials=500, holdout=None,
        start=START, end=END):
    """``prep sweep`` as the CLI calls it; returns (report, printed text)."""
    out.mkdir(parents=True, exist_ok=True)
    grid_file = out / "grid.yaml"
    grid_file.write_text(grid)
    console = Console(width=200, record=True, file=io.StringIO())
    report = sweep_command(cfg, CLOCK, console, str(grid_file), start, end, jobs, scheduler, max_trials, holdout,
                           str(out), None, None)
    return report, console.export_text()


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def result(record: dict) -> dict:
    return {k: record[k] for k in RESULT_FIELDS}


@pytest.fixture(scope="module")
def local(cfg, shared):
    """(report, printed text, trials.jsonl records, trials run) of the 4-trial sweep on the local pool.

    The worker that comes second finds the trials done: its own run reads them (it runs none) and it
    takes the text and the count of the first run, which really ran them."""
    folder, lock = shared
    first = folder / "local_first_run.json"
    with lock:
        report, text = run(cfg, folder / "local")
        if first.exists():
            facts = json.loads(first.read_text())
        else:
            facts = {"text": text, "ran": report.ran}
            first.write_text(json.dumps(facts))
    return report, facts["text"], lines(report.trials_file), facts["ran"]


# ---------------------------------------------------------------------------------------- the local pool


def test_local_pool_runs_every_trial_ranks_by_sharpe_buy_hold_first(local):
    report, text, records, ran = local
    assert report.total == ran == 4 and not report.failed
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    grid = {(s["validation.retention_threshold"], s["strategies.weight_cap"]) for s in (r["settings"] for r in records)}
    assert grid == {(0.75, 0.1), (0.75, 0.2), (0.95, 0.1), (0.95, 0.2)}
    assert len({r["key"] for r in records}) == 4
    # two worker processes shared the four trials, none of them the test's own
    assert len({r["worker"] for r in records}) == 2
    sharpes = [row.figures["sharpe"] for row in report.rows]
    assert sharpes == sorted(sharpes, reverse=True)
    assert len(set(sharpes)) > 1, "the grid's settings should change the result on these sessions"
    # without a holdout the ranked Sharpe is the backtest's own figure over the whole run
    by_key = {r["key"]: r for r in records}
    for row in report.rows:
        assert row.figures["sharpe"] == pytest.approx(by_key[row.key]["figures"]["system"]["sharpe"], rel=1e-12)
        assert row.figures["turnover"] == by_key[row.key]["figures"]["system"]["turnover"]
        assert row.figures["costs"] == by_key[row.key]["figures"]["system"]["costs"] > 0   # net of real costs
    summary = json.loads(report.json_file.read_text())
    assert summary["table"][0]["key"] == "BUY_HOLD"
    assert [t["key"] for t in summary["table"][1:]] == [row.key for row in report.rows]
    printed = [m[1] for m in (re.match(r"^\s+(BUY_HOLD|\d)\s+(\(benchmarks\)|0\.\d+)\s", ln) for ln in text.splitlines()) if m]
    assert printed == ["BUY_HOLD", "1", "2", "3", "4"]
    assert "4 trials ran: the best of 4 is biased upwards" in text
    assert report.png_file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and report.png_file.stat().st_size > 5000
    assert report.heat_keys[0] and report.heat_keys[1]  # two varying keys: a 2 x 2 map


# ---------------------------------------------------------------------------------------- Dask


def test_a_dask_cluster_gives_the_same_trials(cfg, local, tmp_path):
    distributed = pytest.importorskip("distributed")
    import dask

    _, _, expected, _ = local
    # Worker processes started by multiprocessing's forkserver, as Dask's own test suite starts them: one
    # interpreter imports Dask and pandas for both, instead of each spawned worker importing them anew.
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                     dashboard_address=None) as cluster:
        report, text = run(cfg, tmp_path, jobs=None, scheduler=cluster.scheduler_address)
    assert report.ran == 4 and "Dask cluster at tcp://127.0.0.1" in report.engine
    got = lines(report.trials_file)
    assert {r["key"] for r in got} == {r["key"] for r in expected}
    assert sorted(map(result, got), key=lambda r: r["key"]) == sorted(map(result, expected), key=lambda r: r["key"])
    assert all(r["worker"].split(":")[1] not in {w.split(":")[1] for w in (e["worker"] for e in expected)}
               for r in got)


# ---------------------------------------------------------------------------------------- resume


def test_a_stopped_sweep_runs_only_the_missing_trials(cfg, local, tmp_path):
    report0, _, records, _ = local
    folder = tmp_path / "sweeps" / report0.sweep_id
    folder.mkdir(parents=True)
    text = report0.trials_file.read_text().splitlines(keepends=True)
    # what a sweep killed during its third write leaves: two whole lines and the start of a third
    (folder / "trials.jsonl").write_text(text[0] + text[1] + text[2][: len(text[2]) // 2])
    report, printed = run(cfg, tmp_path, jobs=1)   # one pool worker: what is resumed does not depend on how many
    assert report.sweep_id == report0.sweep_id
    assert (report.ran, report.reused, report.total) == (2, 2, 4)
    after = (folder / "trials.jsonl").read_text().splitlines()
    assert after[:2] == [text[0].rstrip("\n"), text[1].rstrip("\n")]        # never rewritten
    new = [json.loads(ln) for ln in after[3:]]
    assert len(after) == 5 and len(new) == 2                                # the torn line stays, skipped
    assert {r["key"] for r in new} == {r["key"] for r in records[2:]}
    assert sorted(map(result, new), key=lambda r: r["key"]) == sorted(map(result, records[2:]), key=lambda r: r["key"])
    assert "2 run now, 2 from trials.jsonl" in printed and "1 line(s) cut short by a stopped run skipped" in printed
    # and a third run has nothing left to do
    assert run(cfg, tmp_path)[0].ran == 0


#: The sweep the test kills.  Its trials take ~0.05 s each, less than the test needs to see a line and kill:
#: once its second line is fsynced the sweep pauses (its pool worker goes on), so the kill lands with two
#: trials on disk and two not (as ``fakes/crash_prep.py`` stops `prep` at a journal line).
KILLED_SWEEP = """
import datetime as dt, sys, time
from rich.console import Console
from trading_system.config import load_config
from trading_system.review import sweep
from trading_system.review.sweep_report import sweep_command
from trading_system.sessions import Clock
append = sweep.TrialStore.append
def append_then_pause(self, record):
    append(self, record)
    if len(self.path.read_text().splitlines()) == 2:
        time.sleep(60)
sweep.TrialStore.append = append_then_pause
cfg_path, out = sys.argv[1], sys.argv[2]
sweep_command(load_config(cfg_path), Clock(dt.datetime(2021, 4, 21, 12, tzinfo=dt.timezone.utc)), Console(),
              out + "/grid.yaml", dt.date(2020, 6, 1), dt.date(2020, 6, 4), 1, None, 500, None, out, None, None)
"""


def _until(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.05)
    return found


@pytest.mark.slow
def test_a_sweep_killed_mid_run_resumes_with_the_missing_trials(cfg, shared, local, tmp_path, forks):
    """A real `kill -9` of a sweep (one job; a process of its own, a child of the fork server) once two
    trials are on disk: their lines survive, its pool worker does not outlive it, and the rerun runs only
    the trials without a line."""
    _, _, records, _ = local
    (tmp_path / "grid.yaml").write_text(GRID)
    script = tmp_path / "killed_sweep.py"
    script.write_text(KILLED_SWEEP)
    proc = forks.start([script, shared[0] / "config.yaml", tmp_path], tmp_path, dict(os.environ))
    try:
        trials = _until(lambda: next(tmp_path.glob("sweeps/*/trials.jsonl"), None), 60, "trials.jsonl")
        _until(lambda: len(trials.read_text().splitlines()) >= 2, 60, "two finished trials")
    finally:
        proc.kill()
        proc.wait(timeout=10)
    kept = lines(trials)
    assert 2 <= len(kept) < 4 and all(r["status"] == "ok" for r in kept)
    worker = int(kept[0]["worker"].split(":")[1])
    _until(lambda: not Path(f"/proc/{worker}").exists(), 10, "the pool worker to leave with its sweep")
    report, _ = run(cfg, tmp_path, jobs=1)
    assert (report.ran, report.reused) == (4 - len(kept), len(kept))
    assert sorted(map(result, lines(trials)), key=lambda r: r["key"]) == sorted(map(result, records),
                                                                               key=lambda r: r["key"])


# ---------------------------------------------------------------------------------------- holdout


def _sharpe(values: np.ndarray) -> float:
    r = values[1:] / values[:-1] - 1.0
    return float(r.mean() / r.std(ddof=1) * math.sqrt(252))


def _figures(values: np.ndarray, first: D, last: D) -> dict:
    r = values[1:] / values[:-1] - 1.0
    return {"total_return": values[-1] / values[0] - 1.0, "sharpe": _sharpe(values),
            "volatility": float(r.std(ddof=1) * math.sqrt(252)),
            "max_drawdown": float(np.max(1.0 - values / np.maximum.accumulate(values))),
            "cagr": (values[-1] / values[0]) ** (365.25 / (last - first).days) - 1.0, "end_equity": values[-1]}


def test_the_holdout_ranks_on_sessions_up_to_its_date_and_measures_the_best_after_it(cfg, local, tmp_path):
    report0, _, records, _ = local
    folder = tmp_path / "sweeps" / report0.sweep_id
    folder.mkdir(parents=True)
    # the worst trial (on the whole run) made rich after the holdout: the ranking must not see it
    worst = min(records, key=lambda r: r["figures"]["system"]["sharpe"])
    tampered = json.loads(json.dumps(worst))
    eq = tampered["equity"]
    after = [i for i, d in enumerate(eq["session"]) if D.fromisoformat(d) > HOLDOUT]
    for n, i in enumerate(after, 1):
        eq["system"][i] = eq["system"][after[0] - 1] * (1.5 ** n)
    (folder / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records if r is not worst)
                                         + json.dumps(tampered) + "\n")
    report, text = run(cfg, tmp_path, holdout=HOLDOUT)
    assert report.ran == 0 and report.holdout == HOLDOUT    # the holdout is not in the trials' keys
    by_key = {r["key"]: r for r in [*records, tampered]}
    by_key[worst["key"]] = tampered
    expected_in = {}
    for key, rec in by_key.items():
        days = [D.fromisoformat(d) for d in rec["equity"]["session"]]
        values = np.array(rec["equity"]["system"])
        n = sum(d <= HOLDOUT for d in days)
        expected_in[key] = _sharpe(values[:n])
    assert [row.key for row in report.rows] == sorted(expected_in, key=lambda k: (-expected_in[k], k))  # ties: by key
    for row in report.rows:
        assert row.figures["sharpe"] == pytest.approx(expected_in[row.key], rel=1e-9)
    best = by_key[report.rows[0].key]
    days = [D.fromisoformat(d) for d in best["equity"]["session"]]
    last_in = max(i for i, d in enumerate(days) if d <= HOLDOUT)
    for account, row in (("system", report.rows[0]), ("BUY_HOLD", report.buy_hold)):
        values = np.array(best["equity"][account][last_in:])
        expected = _figures(values, days[last_in], days[-1])
        assert len(values) == 3   # the mark of 06-02, then 06-03 and 06-04
        for name, value in expected.items():
            assert row.out_of_sample[name] == pytest.approx(value, rel=1e-9), (account, name)
        # the costs paid before and after the holdout add up to the whole run's
        whole = best["figures"][account]["costs"]
        assert row.figures["costs"] + row.out_of_sample["costs"] == pytest.approx(whole, rel=1e-9)
        assert 0 < row.out_of_sample["costs"] < whole
    assert f"held out, the sessions after {HOLDOUT}" in text
    assert json.loads(report.json_file.read_text())["ranked_on"] == f"sessions up to {HOLDOUT}"


# ---------------------------------------------------------------------------------------- refused before any trial


@pytest.mark.parametrize("grid, kw, needle", [
    ("validation.retention: [0.8]\n", {}, "grid key 'validation.retention' is not a config path: validation has no key 'retention'"),
    ("validation.retention_threshold: [0.8, 1.5]\n", {}, "the value 1.5 is refused: Input should be less than or equal to 1"),
    ("regime.enabled: [true, maybe]\n", {}, "'regime.enabled': the value 'maybe' is refused: Input should be a valid boolean"),
    ("strategies.top_core: [2.5]\n", {}, "the value 2.5 is refused: Input should be a valid integer"),
    ("", {}, "is empty"),
    ("validation.retention_threshold: 0.8\n", {}, "'validation.retention_threshold' must be a list of values"),
    ("validation.retention_threshold: []\n", {}, "has an empty list"),
    ("validation.retention_threshold: [0.8, 0.8]\n", {}, "lists 0.8 twice"),
    ("- 0.8\n", {}, "must map config paths to lists"),
    ("paths.plan: [x.json]\n", {}, "paths cannot be swept"),
    ("regime: [true]\n", {}, "names a whole section"),
    ("regime.risk_on_vix: [20, 28]\nregime.risk_off_vix: [25, 35]\n", {},
     "the grid's combination regime.risk_on_vix=28, regime.risk_off_vix=25 is refused"),
    ("validation.retention_threshold: [0.75, 0.85, 0.95]\nstrategies.weight_cap: [0.1, 0.2]\n", {"max_trials": 5},
     "the grid makes 6 combinations, more than --max-trials 5"),
    (GRID, {"holdout": D(2020, 6, 3)}, "--holdout 2020-06-03 leaves 3 session(s) to rank on and 1 after it"),
    (GRID, {"jobs": None, "scheduler": "http://localhost:8786"}, "is not a Dask scheduler address"),
    (GRID, {"scheduler": "tcp://127.0.0.1:8786"}, "--jobs sizes the local pool"),
    (GRID, {"start": D(2020, 6, 4), "end": D(2020, 6, 1)}, "--start 2020-06-04 is after --end 2020-06-01"),
])
def test_bad_input_is_one_sentence_exit_2_before_any_trial(cfg, tmp_path, grid, kw, needle):
    with pytest.raises(BadInputError) as caught:
        run(cfg, tmp_path, grid=grid, **kw)
    message = str(caught.value)
    assert needle in message
    assert caught.value.exit_code == 2
    assert "\n" not in message and message.endswith(".")
    assert not (tmp_path / "sweeps").exists()


def test_an_unreachable_scheduler_is_exit_1_before_any_trial(cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_engines, "CONNECT_SECONDS", 1.0)
    with pytest.raises(RunFailure) as caught:
        run(cfg, tmp_path, jobs=None, scheduler="tcp://127.0.0.1:1")
    assert caught.value.exit_code == 1
    assert str(caught.value).startswith("the Dask scheduler at tcp://127.0.0.1:1 cannot be reached")
    assert not (tmp_path / "sweeps").exists()


def test_a_failed_trial_is_recorded_and_the_sweep_goes_on(cfg, local, tmp_path):
    """One trial's universe file does not exist: its backtest raises in the worker; it is a failed line
    with its error, the other trial (done already by the module's sweep: same config, same key) is
    ranked, and the next run tries the failed one again."""
    report0, _, _, _ = local
    folder = tmp_path / "sweeps" / report0.sweep_id
    folder.mkdir(parents=True)
    shutil.copy(report0.trials_file, folder / "trials.jsonl")
    good = cfg.universe.constituents_file
    grid = ("validation.retention_threshold: [0.75]\nstrategies.weight_cap: [0.1]\n"
            f"universe.constituents_file: [{good}, {tmp_path / 'missing.csv'}]\n")
    report, text = run(cfg, tmp_path, grid=grid)
    assert report.sweep_id == report0.sweep_id
    assert (report.ran, report.reused) == (1, 1) and len(report.rows) == 1 and len(report.failed) == 1
    assert report.rows[0].settings["universe.constituents_file"] == good
    failed = [r for r in lines(report.trials_file) if r["status"] == "failed"]
    assert len(failed) == 1 and "missing.csv" in failed[0]["error"]
    assert failed[0]["settings"]["universe.constituents_file"] == str(tmp_path / "missing.csv")
    assert "1 failed (run again next time)" in text and "failed validation.retention_threshold=0.75" in text
    again, _ = run(cfg, tmp_path, grid=grid)
    assert (again.ran, again.reused) == (1, 1)
