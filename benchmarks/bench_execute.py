"""A 20-order two-phase rebalance through alpaca-py against the loopback fake with 50 ms latency.

Reports the requests made (per route) and the wall time outside the fill waits (the time
the run itself costs; the fill waits depend on the market).  Run by hand:

    .venv/bin/python benchmarks/bench_execute.py [latency_ms] [fill_delay_s]

The plan is the validated plan of 2021-04-20 (real bars of data/sample) and prices are that
day's real opens; the starting account is synthetic: 4 positions outside the plan (full
exits), 3 plan names held at 1.6x their target (trims), 2 at target and 13 not held (buys).
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from conftest import Prep, write_config  # noqa: E402
from fakes.alpaca_server import ET, FakeAlpaca  # noqa: E402
from fakes.alpaca_workspace import EVENING, MORNING, sample_prices, weights_of  # noqa: E402

from trading_system.broker.alpaca import AlpacaBroker  # noqa: E402
from trading_system.config import ExecutionConfig  # noqa: E402
from trading_system.execute import rebalance as execution  # noqa: E402
from trading_system.execute.orders import default_guards  # noqa: E402
from trading_system.execute.rebalance import Journal, rebalance  # noqa: E402


def account(weights: dict[str, float], prices: dict[str, float], equity: float = 100_000.0):
    names = sorted(weights, key=lambda s: (-weights[s], s))
    investable = equity * 0.98
    positions = {s: round(1.6 * weights[s] * investable / prices[s], 9) for s in names[:3]}
    positions.update({s: round(weights[s] * investable / prices[s], 9) for s in names[3:5]})
    positions.update({s: 10.0 for s in ("AAPL", "MSFT", "KO", "PEP")})
    return round(equity - sum(q * prices[s] for s, q in positions.items()), 2), positions


def main(latency_ms: float = 50.0, fill_delay: float = 0.2) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_config(folder)
        prep = Prep(folder)
        for as_of, cmd in ((EVENING, "prepare"), (MORNING, "validate")):
            assert prep("--as-of", as_of, cmd).exit_code == 0
        weights = weights_of(prep.plan())
        prices = sample_prices()
        cash, positions = account(weights, prices)
        waited = []
        real_wait = execution.wait_for_fills

        def timed_wait(*a, **kw):  # measure the fill waits so they can be taken out
            t0 = time.perf_counter()
            try:
                return real_wait(*a, **kw)
            finally:
                waited.append(time.perf_counter() - t0)

        execution.wait_for_fills = timed_wait
        with FakeAlpaca(prices, cash=cash, positions=positions, fill_delay=fill_delay,
                        latency=latency_ms / 1000) as fake:
            broker = AlpacaBroker(fake.key, fake.secret, url_override=fake.url)
            cfg = ExecutionConfig(poll_interval_seconds=1.0, sell_fill_timeout_seconds=30)
            t0 = time.perf_counter()
            _, report = rebalance(weights, broker, cfg, "20210420-bench000", Journal(folder / "j.jsonl"),
                                  default_guards(cfg, folder / "KILL_SWITCH"), prices=prices,
                                  since=dt.datetime(2021, 4, 20, tzinfo=ET))
            wall = time.perf_counter() - t0
        execution.wait_for_fills = real_wait
    sells = sum(o.side == "sell" for o in report.orders)
    total = sum(fake.counts.values())
    print(f"two-phase rebalance, {len(report.orders)} orders ({sells} sells, {len(report.orders) - sells} buys), "
          f"{latency_ms:g} ms latency per request, fills {fill_delay:g} s after acceptance; "
          f"reached targets: {report.reached_targets}")
    print(f"requests: {total} in all: " + ", ".join(f"{k} {v}" for k, v in sorted(fake.counts.items())))
    print(f"wall time: {wall:.2f} s in all, {sum(waited):.2f} s in the two fill waits (polls included), "
          f"{wall - sum(waited):.2f} s outside them")


if __name__ == "__main__":
    main(*(float(x) for x in sys.argv[1:3]))
