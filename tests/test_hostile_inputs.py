"""Hostile inputs through the real command line: each one is refused (or survived) the contracted way.

DESIGN §1 / §8: exit 0 done, 1 a run-time failure, 2 bad input; one plain sentence on stderr,
never a traceback, and no file the user had (config, plan, reports) is changed.

One row per hostile input.  To add a row: write a small ``setup(folder, plans)`` that breaks one
thing in a fresh workspace (``folder`` holds a working ``config.yaml`` over the bundled sample;
``plans`` are real plans made by the CLI, as JSON dicts you may edit), then append a ``Case`` with
the command's arguments, the exit code expected and a word the one-line message must contain.
Set ``subprocess=True`` where the in-process runner cannot tell (output written at interpreter
exit: ``fresh=True`` too, a fresh interpreter) or the run could hang (it is then bounded by a timeout:
a child of the fork server, fakes/prep_forkserver.py, killed at the timeout like any process).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import os
import random
import subprocess as sp
import sys
from pathlib import Path
from typing import Callable

import pytest

from conftest import SAMPLE, Prep
from fakes.alpaca_workspace import validated_plan  # noqa: F401  (session fixture: the real plan)

EVENING, MORNING, OPEN = "2021-04-19T20:00", "2021-04-20T09:00", "2021-04-20T09:31"
PLAN = "pending_trades.json"


def write_config(folder: Path, sample_dir: Path | str = SAMPLE, constituents: Path | str | None = None,
                 extra: str = "") -> Path:
    """``folder/config.yaml`` over ``sample_dir`` (default the bundled sample); ``extra`` YAML appended."""
    constituents = constituents or SAMPLE / "constituents.csv"
    path = folder / "config.yaml"
    path.write_text(f"data:\n  sample_dir: {sample_dir}\nuniverse:\n  constituents_file: {constituents}\n{extra}")
    return path


@pytest.fixture(scope="session")
def plans(validated_plan) -> dict[str, dict]:  # noqa: F811
    """``prepared`` (after ``prepare`` at 2021-04-19 20:00) and ``validated`` (after ``validate`` at
    2021-04-20 09:00): both written by the real CLI over the sample; deep-copy before editing."""
    return {"prepared": {**validated_plan, "validation_results": None}, "validated": validated_plan}


# --- what each row breaks ----------------------------------------------------------------------

def junk(seed: int, n: int = 512) -> bytes:
    """``n`` random bytes (seeded: the same junk every run; 0xff is never valid UTF-8)."""
    return random.Random(seed).randbytes(n) + b"\xff"


def config_random_bytes(folder, plans):
    (folder / "config.yaml").write_bytes(junk(1))


def config_is_a_directory(folder, plans):
    (folder / "config.yaml").unlink()
    (folder / "config.yaml").mkdir()


def log_dir_is_a_file(folder, plans):
    write_config(folder, extra="paths:\n  log_dir: not_a_folder\n")
    (folder / "not_a_folder").write_text("a file the user keeps here\n")


def log_on_a_full_disk(folder, plans):
    (folder / "logs").mkdir()
    (folder / "logs" / "pre_market_prep.log").symlink_to("/dev/full")  # every write fails with ENOSPC


def constituents_junk(folder, plans):
    (folder / "constituents.csv").write_bytes(junk(2))
    write_config(folder, constituents=folder / "constituents.csv")


def constituents_is_a_directory(folder, plans):
    (folder / "constituents").mkdir()
    write_config(folder, constituents=folder / "constituents")


def plan_is_a_directory(folder, plans):
    (folder / PLAN).mkdir()


def plan_is_a_fifo(folder, plans):
    os.mkfifo(folder / PLAN)


def backtest_out_is_a_file(folder, plans):
    (folder / "report.txt").write_text("the user's notes\n")


def splits_junk_row(folder, plans):
    sample = folder / "sample"
    sample.mkdir()
    for name in ("bars.parquet", "constituents.csv"):
        (sample / name).symlink_to(SAMPLE / name)
    text = (SAMPLE / "splits.csv").read_text()
    (sample / "splits.csv").write_text(text + "AAPL,not-a-date,4.0\n")
    write_config(folder, sample_dir=sample)


def plan_edit(stage: str, edit: Callable[[dict], None]) -> Callable:
    """A setup that writes the real ``stage`` plan (``prepared`` / ``validated``) after ``edit``."""
    def setup(folder, plans):
        plan = copy.deepcopy(plans[stage])
        edit(plan)
        (folder / PLAN).write_text(json.dumps(plan, indent=2))   # json.dumps writes NaN as NaN
    return setup


def _selected(plan: dict) -> dict:
    vr = plan["validation_results"]
    return vr["validated_strategies"][vr["selected_strategy"]]["validated_allocations"]


def nan_weight(plan):
    plan["strategies"]["TACTICAL"]["allocations"]["EXR"] = float("nan")


def negative_weight(plan):
    weights = _selected(plan)
    first, second = list(weights)[:2]
    weights[first], weights[second] = -0.05, weights[second] + weights[first] + 0.05   # still sums to 1


def weights_sum_to_5(plan):
    weights = _selected(plan)
    for s in weights:
        weights[s] *= 5


def missing_original_score(plan):
    del plan["strategies"]["TACTICAL"]["original_scores"]["EXR"]


def selected_without_entry(plan):
    vr = plan["validation_results"]
    del vr["validated_strategies"][vr["selected_strategy"]]


def bad_setting(yaml_text: str) -> Callable:
    """A setup whose config holds one out-of-range setting (issue 8 item 3)."""
    def setup(folder, plans):
        write_config(folder, extra=yaml_text)
    return setup


def alpaca_with_plan(folder, plans):
    """Broker alpaca and the real validated plan (the run must refuse before any request)."""
    write_config(folder, extra="broker:\n  kind: alpaca\n")
    (folder / PLAN).write_text(json.dumps(plans["validated"], indent=2))


def session_cut_to_100_names(folder, plans):
    """Real bars of the sample with 2021-04-19 cut to 100 symbols: an incomplete answer (item 5)."""
    import pandas as pd

    sample = folder / "sample"
    sample.mkdir()
    for name in ("splits.csv", "constituents.csv"):
        (sample / name).symlink_to(SAMPLE / name)
    bars = pd.read_parquet(SAMPLE / "bars.parquet")
    day = bars["date"] == dt.date(2021, 4, 19)
    keep = set(sorted(bars.loc[day, "symbol"])[:100])
    bars[~day | bars["symbol"].isin(keep)].to_parquet(sample / "bars.parquet", index=False)
    write_config(folder, sample_dir=sample)


def far_future() -> str:
    """A date past the calendar (built to two years past today), four new-years from now."""
    return f"{dt.date.today().year + 4}-01-02"


# --- the table -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Case:
    """One hostile input: break the workspace with ``setup``, run ``args``, expect ``exit_code`` and
    ``word`` in the one-line message on stderr."""

    name: str
    setup: Callable[[Path, dict], None]
    args: tuple[str, ...]
    exit_code: int
    word: str
    subprocess: bool = False
    env: tuple[tuple[str, str], ...] = ()   # extra environment (a subprocess row only)
    fresh: bool = False   # a subprocess row whose subject is the interpreter's exit: a fresh interpreter


CASES = [
    Case("config of random bytes", config_random_bytes, ("--as-of", EVENING, "prepare"), 2, "config.yaml"),
    Case("config is a directory", config_is_a_directory, ("--as-of", EVENING, "prepare"), 2, "folder"),
    Case("paths.log_dir is a file", log_dir_is_a_file, ("--as-of", EVENING, "prepare", "--dry-run"), 0, "log"),
    Case("log on a full disk", log_on_a_full_disk, ("--as-of", EVENING, "prepare"), 0, "log", subprocess=True,
         fresh=True),
    Case("constituents of junk", constituents_junk, ("--as-of", EVENING, "prepare"), 2, "constituents"),
    Case("constituents is a directory", constituents_is_a_directory, ("--as-of", EVENING, "prepare"), 2,
         "constituents"),
    Case("plan is a directory", plan_is_a_directory, ("--as-of", MORNING, "validate"), 2, PLAN),
    Case("plan is a FIFO", plan_is_a_fifo, ("--as-of", MORNING, "validate"), 2, PLAN, subprocess=True),
    Case("backtest --out is a file", backtest_out_is_a_file,
         ("--as-of", "2021-04-21T20:00", "backtest", "--start", "2021-04-19", "--end", "2021-04-20",
          "--out", "{folder}/report.txt"), 2, "--out"),
    Case("junk row in splits.csv", splits_junk_row, ("--as-of", EVENING, "prepare"), 2, "splits.csv"),
    Case("as-of 1990", plan_edit("validated", lambda p: None), ("--as-of", "1990-01-02", "prepare"), 2,
         "1999-01-05"),
    Case("as-of past the calendar", plan_edit("validated", lambda p: None), ("--as-of", far_future(), "validate"),
         2, "calendar"),
    Case("NaN weight", plan_edit("prepared", nan_weight), ("--as-of", MORNING, "validate"), 2,
         "strategies.TACTICAL.allocations.EXR"),
    Case("negative weight", plan_edit("validated", negative_weight), ("--as-of", OPEN, "execute"), 2,
         "validated_allocations"),
    Case("weights sum to 5", plan_edit("validated", weights_sum_to_5), ("--as-of", OPEN, "execute"), 2,
         "sum to 1"),
    Case("missing original_scores", plan_edit("prepared", missing_original_score), ("--as-of", MORNING, "validate"),
         2, "original_scores"),
    Case("selected_strategy without a validated entry", plan_edit("validated", selected_without_entry),
         ("--as-of", OPEN, "execute"), 2, "selected_strategy"),
    # Item 3: every setting finite and in range, refused at load naming key, value and range.
    Case("max_order_notional: nan", bad_setting("execution:\n  max_order_notional: nan\n"),
         ("--as-of", OPEN, "execute"), 2, "execution.max_order_notional"),
    Case("poll_interval_seconds: -1", bad_setting("execution:\n  poll_interval_seconds: -1\n"),
         ("--as-of", OPEN, "execute"), 2, "greater than 0"),
    Case("sell_fill_timeout_seconds: .nan", bad_setting("execution:\n  sell_fill_timeout_seconds: .nan\n"),
         ("--as-of", OPEN, "execute"), 2, "finite"),
    Case("min_order_dollars: -100", bad_setting("execution:\n  min_order_dollars: -100\n"),
         ("--as-of", OPEN, "execute"), 2, "execution.min_order_dollars"),
    Case("periods_per_year: 0", bad_setting("scoring:\n  periods_per_year: 0\n"),
         ("--as-of", EVENING, "prepare"), 2, "scoring.periods_per_year"),
    Case("negative scoring weight", bad_setting("scoring:\n  weights:\n    rsi: -30\n"),
         ("--as-of", EVENING, "prepare"), 2, "scoring.weights.rsi"),
    Case("top_core: -1", bad_setting("strategies:\n  top_core: -1\n"), ("--as-of", EVENING, "prepare"), 2,
         "strategies.top_core"),
    Case("NaN benchmark weight", bad_setting("strategies:\n  benchmarks: {SPY: .nan, QQQ: 0.4}\n"),
         ("--as-of", EVENING, "prepare"), 2, "strategies.benchmarks.SPY"),
    Case("retention_threshold: 85", bad_setting("validation:\n  retention_threshold: 85\n"),
         ("--as-of", MORNING, "validate"), 2, "not a percent"),
    # Item 1: the live endpoint without both switches, and live without --live.
    Case("live host without the switches", alpaca_with_plan, ("execute",), 2, "live (real-money) host",
         subprocess=True, env=(("ALPACA_API_KEY", "k"), ("ALPACA_SECRET_KEY", "s"),
                               ("ALPACA_BASE_URL", "https://api.alpaca.markets"))),
    Case("ALPACA_PAPER=false without --live", alpaca_with_plan, ("execute",), 2, "--live", subprocess=True,
         env=(("ALPACA_API_KEY", "k"), ("ALPACA_SECRET_KEY", "s"), ("ALPACA_PAPER", "false"))),
    # Item 5: a session with bars for too few of the universe.
    Case("session coverage under data.min_coverage", session_cut_to_100_names, ("--as-of", EVENING, "prepare"), 1,
         "data.min_coverage"),
    # Item 7: state never replaced without a word.
    Case("prepare over a validated plan", plan_edit("validated", lambda p: None),
         ("--as-of", "2021-04-20T06:00", "prepare"), 2, "already validated"),
    Case("prepare with an earlier as-of than the plan", plan_edit("prepared", lambda p: None),
         ("--as-of", "2021-04-16T20:00", "prepare"), 2, "later than"),
    Case("prepare during market hours", plan_edit("prepared", lambda p: None),
         ("--as-of", "2021-04-20T10:15", "prepare"), 2, "already trading"),
]


def user_files(folder: Path) -> dict[str, bytes]:
    """Every regular file the user has in ``folder`` (symlinks to the shared sample and FIFOs left out)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def run(folder: Path, case: Case, request) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``prep --config folder/config.yaml *case.args``."""
    args = [a.format(folder=folder) for a in case.args]
    if case.subprocess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "PREP_"))} | dict(case.env)
        cmd = ["-m", "trading_system.cli", "--config", str(folder / "config.yaml"), *args]
        if case.fresh:
            done = sp.run([sys.executable, *cmd], cwd=folder, env=env, capture_output=True, text=True, timeout=90)
        else:
            done = request.getfixturevalue("forks").run(cmd, folder, env, timeout=90)
        return done.returncode, done.stdout, done.stderr
    r = Prep(folder)(*args)
    return r.exit_code, r.stdout, r.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(tmp_path, plans, case, request):
    write_config(tmp_path)
    case.setup(tmp_path, plans)
    before = user_files(tmp_path)
    code, out, err = run(tmp_path, case, request)
    both = out + err
    assert code == case.exit_code, both
    assert "Traceback" not in both and "unexpected error" not in both and "Logging error" not in both, both
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {err!r}"
    assert case.word in lines[0], lines[0]
    after = user_files(tmp_path)
    assert {k: after.get(k) for k in before} == before, "a file the user had was changed"
