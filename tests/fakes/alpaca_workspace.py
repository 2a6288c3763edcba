"""Test helpers: a validated plan for 2021-04-20 made from the bundled real bars, and an
account at the fake Alpaca that needs a small, known rebalance to reach it.

Prices are the real as-traded opens of 2021-04-20 from data/sample.  The starting account
is synthetic (no real account is involved): every planned name is held at its target
except a few, so the rebalance is one full exit (AAPL, not in the plan), one trim (the
largest name, held at 1.5 times its target) and two buys (two names not held).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SAMPLE, Prep, once_per_run, write_config
from fakes.alpaca_server import FakeAlpaca, ET
from fakes.prep_forkserver import ForkServer, Forked

SESSION = dt.date(2021, 4, 20)
EVENING, MORNING = "2021-04-19T20:00", "2021-04-20T09:00"
EQUITY = 100_000.0
ROOT = Path(__file__).resolve().parents[2]

ALPACA_CONFIG = """
broker:
  kind: alpaca
  alpaca:
    timeout_seconds: 3
    connect_timeout_seconds: 2
    read_attempts: 3
    retry_wait_seconds: 0.05
execution:
  sell_fill_timeout_seconds: 3
  poll_interval_seconds: 0.05
  open_delay_seconds: 0.2
"""


def sample_prices() -> dict[str, float]:
    """Raw (as-traded) opens of 2021-04-20 for every symbol of data/sample, dollars (a fresh dict each
    call, read from disk once per process: every fake of a test session starts from the same prices)."""
    return dict(_sample_prices())


@functools.lru_cache(maxsize=1)
def _sample_prices() -> dict[str, float]:
    from trading_system.marketdata.store import BarStore

    bars = BarStore(SAMPLE).session_bars(SESSION)
    return {s: float(p) for s, p in bars["open"].items()}


@pytest.fixture(scope="session")
def validated_plan(tmp_path_factory, worker_id) -> dict:
    """pending_trades.json validated for 2021-04-20 (prepared and validated by the real CLI), made once
    per test run (conftest ``once_per_run``)."""
    def build() -> dict:
        folder = tmp_path_factory.mktemp("plan")
        write_config(folder)
        prep = Prep(folder)
        for as_of, cmd in ((EVENING, "prepare"), (MORNING, "validate")):
            r = prep("--as-of", as_of, cmd)
            assert r.exit_code == 0, r.output
        return prep.plan()

    return once_per_run(tmp_path_factory, worker_id, "validated_plan", build)


def weights_of(plan: dict) -> dict[str, float]:
    vr = plan["validation_results"]
    return vr["validated_strategies"][vr["selected_strategy"]]["validated_allocations"]


def starting_account(plan: dict, prices: dict[str, float], buffer: float = 0.02):
    """(cash, positions, special) for the fake: targets held except the trim, the two buys and AAPL."""
    weights = weights_of(plan)
    by_weight = sorted(weights, key=lambda s: (-weights[s], s))
    trim, buys = by_weight[0], by_weight[-2:]
    investable = EQUITY * (1 - buffer)
    positions = {s: round(w * investable / prices[s], 9) for s, w in weights.items() if s not in buys}
    positions[trim] = round(1.5 * positions[trim], 9)
    positions["AAPL"] = 10.0
    cash = round(EQUITY - sum(q * prices[s] for s, q in positions.items()), 2)
    assert cash > 0
    return cash, positions, {"trim": trim, "buys": buys, "close": "AAPL"}


def make_fake(plan: dict, **kw) -> FakeAlpaca:
    prices = sample_prices()
    cash, positions, _ = starting_account(plan, prices)
    kw.setdefault("fill_delay", 0.1)
    return FakeAlpaca(prices, cash=cash, positions=positions, **kw)


def alpaca_workspace(folder: Path, plan: dict, extra: str = "") -> Path:
    """A workspace whose config trades broker alpaca and holds the validated plan."""
    folder.mkdir(parents=True, exist_ok=True)
    write_config(folder, ALPACA_CONFIG + extra)
    (folder / "pending_trades.json").write_text(json.dumps(plan))
    return folder


def prep_env(fake: FakeAlpaca | None, **extra: str) -> dict[str, str]:
    """The environment of a `prep` subprocess: no inherited ALPACA_*/PREP_* settings, the fake's keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "PREP_"))}
    if fake is not None:
        env.update(fake.env())
    env.update(extra)
    return env


def run_prep(folder: Path, env: dict[str, str], *args: str, timeout: float = 120,
             forks: ForkServer | None = None) -> subprocess.CompletedProcess:
    """Run the real `prep` console entry point (``python -m trading_system.cli``) in a process of its own
    (bounded by ``timeout`` s): a fresh interpreter, or a child of the fork server ``forks`` if given
    (see fakes/prep_forkserver.py: the same entry point, without paying the imports)."""
    if forks is not None:
        return forks.run(["-m", "trading_system.cli", "--config", str(folder / "config.yaml"), *args], folder, env,
                         timeout=timeout)
    cmd = [sys.executable, "-m", "trading_system.cli", "--config", str(folder / "config.yaml"), *args]
    return subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)


def start_prep(folder: Path, env: dict[str, str], *args: str,
               forks: ForkServer | None = None) -> subprocess.Popen | Forked:
    """``run_prep`` without waiting: a Popen (or the fork server's ``Forked``, used the same way)."""
    if forks is not None:
        return forks.start(["-m", "trading_system.cli", "--config", str(folder / "config.yaml"), *args], folder, env)
    cmd = [sys.executable, "-m", "trading_system.cli", "--config", str(folder / "config.yaml"), *args]
    return subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def market_values(fake: FakeAlpaca) -> dict[str, float]:
    return {s: q * fake.prices[s] for s, q in fake.positions.items()}


__all__ = ["ET", "FakeAlpaca", "validated_plan"]
