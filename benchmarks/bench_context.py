"""What the market context (DESIGN §11) adds to ``prep prepare`` over the sample, as of 2021-04-19 20:00.

Times ``run_prepare`` (dry run: nothing written) with the regime and the earnings gate on (the
defaults) and off (``regime.enabled`` / ``events.enabled`` false; the levels always run), best and
median of REPEATS, then each part alone: ``regime_for``, the earnings gate, ``pick_levels``.
Issue 12's budget: the context adds at most 0.2 s.

Run: ``.venv/bin/python benchmarks/bench_context.py [REPEATS]``
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trading_system.config import Config  # noqa: E402
from trading_system.marketdata.earnings import make_earnings  # noqa: E402
from trading_system.prepare.context.build import regime_for  # noqa: E402
from trading_system.prepare.context.events import earnings_gate  # noqa: E402
from trading_system.prepare.context.levels import pick_levels  # noqa: E402
from trading_system.prepare.run import run_prepare  # noqa: E402
from trading_system.runtime import make_source  # noqa: E402
from trading_system.sessions import Clock  # noqa: E402

AS_OF = "2021-04-19T20:00"
SCAN, TARGET = dt.date(2021, 4, 19), dt.date(2021, 4, 20)


def timed(fn, repeats: int) -> tuple[float, float]:
    """(best, median) wall time of ``fn()`` in ms."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return min(times), statistics.median(times)


def config(on: bool) -> Config:
    return Config.model_validate({"root": ROOT, "regime": {"enabled": on}, "events": {"enabled": on}})


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    clock = Clock.from_env(AS_OF)
    rows = []
    for label, on in (("prepare, context on", True), ("prepare, regime + events off", False)):
        cfg = config(on)
        source = make_source(cfg, clock)
        run_prepare(cfg, clock, dry_run=True, source=source)   # warm the store's caches
        rows.append((label, *timed(lambda c=cfg, s=source: run_prepare(c, clock, dry_run=True, source=s), repeats)))
    cfg = config(True)
    source = make_source(cfg, clock)
    result = run_prepare(cfg, clock, dry_run=True, source=source)
    scan, plan = result.scan, result.plan
    bars = source.bars(end=SCAN, start=SCAN - dt.timedelta(days=400), symbols=list(scan.index))
    allocations = {str(n): dict(s.allocations) for n, s in plan.strategies.items() if n != "BUY_HOLD"}
    picks = sorted({s for w in allocations.values() for s in w})
    rows.append(("  regime_for", *timed(lambda: regime_for(cfg, source, SCAN), repeats)))
    rows.append(("  earnings gate (csv)", *timed(
        lambda: earnings_gate(scan, SCAN, TARGET, make_earnings(cfg), cfg.events, list(scan.index)), repeats)))
    rows.append((f"  pick_levels ({len(picks)} picks)", *timed(lambda: pick_levels(bars, picks, allocations, cfg.levels),
                                                               repeats)))
    print(f"{'what':<34}{'best ms':>10}{'median ms':>11}")
    for label, best, median in rows:
        print(f"{label:<34}{best:>10.1f}{median:>11.1f}")
    print(f"context adds (median): {rows[0][2] - rows[1][2]:.1f} ms to prepare (levels run in both)")


if __name__ == "__main__":
    main()
