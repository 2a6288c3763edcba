"""Time each built-in scanner over the sample (506 real symbols) and over a 5,000-symbol panel, as of
2021-04-19 with the scan's 400 calendar days of history.

The 5,000-symbol panel is made of REPLICAS of the sample's real symbols (each real bar sequence
copied under new ticker names, e.g. RAAAA, RAAAB ...): real prices and volumes, not 5,000 real
companies.  Printed per scanner: the panel build (once per night, shared by every scanner; timed
apart), ``scan`` in-process (best and median of REPEATS) and a whole forked run as the nightly
runner does it (load, fork, scan, floors, answer through a pipe).  DESIGN §10's budget: one
scanner over 5,000 symbols in under 0.5 s.

Run: ``.venv/bin/python benchmarks/bench_scanners.py [REPEATS]``
"""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
import string
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_scoring import load_adjusted  # noqa: E402

from trading_system.config_scanners import ScannerEntry  # noqa: E402
from trading_system.prepare.discovery import HISTORY_DAYS  # noqa: E402
from trading_system.prepare.scanners.base import ScanContext  # noqa: E402
from trading_system.prepare.scanners.builtin import BUILTINS  # noqa: E402
from trading_system.prepare.scanners.loader import bind  # noqa: E402
from trading_system.prepare.scanners.runner import run_entry  # noqa: E402

SESSION = dt.date(2021, 4, 19)
NOW = dt.datetime(2021, 4, 19, 20, 0)


def replicas(bars: pd.DataFrame, n_symbols: int) -> pd.DataFrame:
    """``n_symbols`` columns of real bars: the sample's symbols copied under new 5-letter names."""
    real = sorted(bars["symbol"].unique())
    names = ("R" + "".join(t) for t in itertools.product(string.ascii_uppercase, repeat=4))
    groups = dict(tuple(bars.groupby("symbol", sort=True)))
    frames = []
    for i, name in zip(range(n_symbols), names):
        frame = groups[real[i % len(real)]].copy()
        frame["symbol"] = name
        frames.append(frame)
    return pd.concat(frames, ignore_index=True).sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)


def timed(fn, repeats: int) -> tuple[float, float]:
    """(best, median) wall time of ``fn()`` in ms."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return min(times), statistics.median(times)


def bench(label: str, bars: pd.DataFrame, repeats: int) -> None:
    t0 = time.perf_counter()
    ctx = ScanContext(session=SESSION, phase="evening", now=NOW, bars=bars)
    _ = ctx.panel
    build = (time.perf_counter() - t0) * 1000
    print(f"\n{label}: {bars['symbol'].nunique():,} symbols, {len(bars):,} bars; panel build {build:.1f} ms (once a night)")
    print(f"{'scanner':<20}{'finds':>7}{'scan best ms':>14}{'median ms':>11}{'forked run ms':>15}")
    for name in BUILTINS:
        entry = ScannerEntry(name=name, module=f"builtin:{name}", max_symbols=5000)
        bound = bind(entry, [entry])
        finds = len(bound.run(ctx)[0].symbols)
        best, median = timed(lambda b=bound: b.run(ctx), repeats)
        t0 = time.perf_counter()
        run_entry(entry, [entry], ctx)
        forked = (time.perf_counter() - t0) * 1000
        print(f"{name:<20}{finds:>7}{best:>14.1f}{median:>11.1f}{forked:>15.1f}")


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    bars = load_adjusted(SESSION)
    bars = bars[bars["date"] >= SESSION - dt.timedelta(days=HISTORY_DAYS)].reset_index(drop=True)
    bench("sample (real symbols)", bars, repeats)
    bench("5,000-symbol panel (replicas of real symbols, renamed)", replicas(bars, 5000), repeats)


if __name__ == "__main__":
    main()
