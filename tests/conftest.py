"""Shared fixtures: the bundled real bars, and a scratch workspace whose config points at them."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"

#: The modules that keep a worker longest (seconds of wall on a 2-core machine, most first).  ``make test``
#: (``--dist loadfile --no-loadscope-reorder``) hands whole modules to the workers in collection order, so
#: these are collected first and start first: the workers then finish about together.  Every other module
#: follows in its usual order.  Only the order changes, never what runs.
LONGEST_FIRST = ("test_polygon_source.py", "test_backtest_batch.py", "test_sweep.py", "test_notify.py",
                 "test_progress.py", "test_backtest.py", "test_state_safety.py", "test_levels.py",
                 "test_alpaca_cli.py", "test_rerun.py", "test_hostile_inputs.py", "test_regime.py",
                 "test_review.py", "test_scan_commands.py", "test_doctor.py", "test_cli.py", "test_alpaca_crash.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules of ``LONGEST_FIRST`` first, in that order; the rest after them (a stable sort)."""
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than the cores.  About a fifth of a worker's time is spent waiting
    (on the loopback fakes, on `prep` processes, on deadlines under test); the extra worker computes
    meanwhile."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores + 1


def once_per_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str, name: str, build):
    """``build()``, made once per test run and shared by every xdist worker (pytest-xdist's "run a fixture
    once" recipe: a pickle in the run's temporary root, under a file lock); for session fixtures whose
    value is data (a plan, a scan), never a live object."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent
    path = root / f"once_per_run_{name}.pickle"
    with FileLock(str(path) + ".lock"):
        if path.exists():
            return pickle.loads(path.read_bytes())
        value = build()
        path.write_bytes(pickle.dumps(value))
        return value


@pytest.fixture(scope="session")
def sample_bars() -> pd.DataFrame:
    """The raw real bars of data/sample (symbol, date, open, high, low, close, volume)."""
    return pd.read_parquet(SAMPLE / "bars.parquet")


@pytest.fixture(scope="session")
def sample_source():
    """The whole sample read once into a backtest's in-memory ``CachedSource`` (its caches are
    answers to reads, the same for every test: sharing it changes no result)."""
    from trading_system.marketdata.cached import CachedSource
    from trading_system.marketdata.store import BarStore

    return CachedSource.from_store(BarStore(SAMPLE))


@pytest.fixture(scope="session")
def worker_id(request) -> str:
    """pytest-xdist's worker id ("gw0", ...), or "master" when the tests run in one process (also
    with ``-p no:xdist``, where xdist's own fixture does not exist); read as xdist itself reads it."""
    workerinput = getattr(request.config, "workerinput", None)
    return workerinput["workerid"] if workerinput else "master"


@pytest.fixture(scope="session")
def whole_sample_scan(tmp_path_factory, worker_id) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(bars, scan): the whole sample as of the close of 2021-04-19, split-adjusted (prices before each
    ex-date divided by its ratio, volumes multiplied) and clamped to that session, and its scan with the
    default scoring, eligibility and bucket settings.  Built once per run (~3 s), whichever worker needs it
    first; read, never changed."""
    return once_per_run(tmp_path_factory, worker_id, "whole_sample_scan", _whole_sample_scan)


def _whole_sample_scan() -> tuple[pd.DataFrame, pd.DataFrame]:
    import datetime as dt

    from trading_system.config import BucketsConfig, EligibilityConfig, ScoringConfig
    from trading_system.prepare.scoring import score_universe

    sample_bars = pd.read_parquet(SAMPLE / "bars.parquet")
    session = dt.date(2021, 4, 19)
    bars = sample_bars[sample_bars["date"] <= session].copy()
    bars["volume"] = bars["volume"].astype(float)
    splits = pd.read_csv(SAMPLE / "splits.csv")
    splits["date"] = pd.to_datetime(splits["date"]).dt.date
    # Split by split, in the file's order, on plain arrays: each symbol's rows before the ex-date (the same
    # divisions as `bars.loc[before, ...] /= ratio` split by split, without pandas' indexing per split).
    days = pd.to_datetime(bars["date"]).to_numpy()
    prices = bars[PRICES].to_numpy(dtype=float, copy=True)
    volume = bars["volume"].to_numpy(dtype=float, copy=True)
    rows_of = bars.groupby("symbol").indices   # symbol -> row positions
    for sp in splits[splits["date"] <= session].itertuples():
        rows = rows_of.get(sp.symbol)
        if rows is None:
            continue
        before = rows[days[rows] < pd.Timestamp(sp.date).to_datetime64()]
        prices[before] /= sp.ratio
        volume[before] *= sp.ratio
    bars[PRICES] = prices
    bars["volume"] = volume
    return bars, score_universe(bars, session, ScoringConfig(), EligibilityConfig(), BucketsConfig())


PRICES = ["open", "high", "low", "close"]


def write_config(folder: Path, extra: str = "") -> Path:
    """A config.yaml in ``folder`` that reads the bundled sample; ``extra`` YAML is appended."""
    text = (f"data:\n  sample_dir: {SAMPLE}\n"
            f"universe:\n  constituents_file: {SAMPLE / 'constituents.csv'}\n") + extra
    path = folder / "config.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder with a config.yaml over the sample; state files land here."""
    write_config(tmp_path)
    return tmp_path


def cycled_night(cache: dict, root: Path, prep: "Prep", evening: str, morning: str) -> None:
    """The real nightly cycle (prepare D 20:00, validate D+1 09:00, execute D+1 09:31) of ``evening`` in a
    workspace under ``root``, run once per ``cache`` ((evening, morning) -> that workspace; a module keeps
    one); ``prep``'s empty workspace then gets a copy of its files (none of them names its folder)."""
    if (evening, morning) not in cache:
        folder = root / f"{evening}_{morning}"
        folder.mkdir()
        write_config(folder)
        once = Prep(folder)
        for as_of, cmd in ((f"{evening}T20:00", "prepare"), (f"{morning}T09:00", "validate"),
                           (f"{morning}T09:31", "execute")):
            r = once("--as-of", as_of, cmd)
            assert r.exit_code == 0, r.output
        cache[(evening, morning)] = folder
    shutil.copytree(cache[(evening, morning)], prep.folder, dirs_exist_ok=True)


class Prep:
    """Runs the real `prep` command line in-process (click's runner), in a workspace."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.runner = CliRunner()

    def __call__(self, *args: str):
        from trading_system.cli import main

        return self.runner.invoke(main, ["--config", str(self.folder / "config.yaml"), *args],
                                  catch_exceptions=False)

    def plan(self) -> dict:
        return json.loads((self.folder / "pending_trades.json").read_text())


@pytest.fixture
def prep(workspace: Path) -> Prep:
    return Prep(workspace)


@pytest.fixture(scope="session")
def forks():
    """The `prep` fork server (tests/fakes/prep_forkserver.py), one per test process, started on first use:
    real, separate `prep` processes for the tests whose subject is not the interpreter's start-up."""
    from fakes.prep_forkserver import ForkServer

    with ForkServer() as server:
        yield server


@pytest.fixture(scope="module")
def fake():
    """The loopback Polygon fake (tests/fakes/polygon_server.py), one per test module; each module
    resets its faults and requests in its own autouse fixture."""
    from fakes.polygon_server import PolygonFake

    with PolygonFake() as f:
        yield f


@pytest.fixture(scope="module")
def alpaca():
    """The loopback Alpaca market-data fake (tests/fakes/alpaca_data_server.py), one per test module
    (tests/test_doctor.py overrides it with the Trading API fake)."""
    from fakes.alpaca_data_server import AlpacaDataFake

    with AlpacaDataFake() as f:
        yield f


@pytest.fixture
def refused_url():
    """``http://127.0.0.1:PORT`` where PORT is bound for the test but never listens: a connection is
    refused at once, and no server of the run can take the port meanwhile (a port bound and closed
    again could be handed to another test's fake server by the time the code under test connects)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"
