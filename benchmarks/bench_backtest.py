"""`prep backtest` 2019-04-01 -> 2021-04-20 over the whole sample, as one cold process.

Runs the system, the same system with the gate off (--no-gate) and BUY_HOLD, and prints
the wall time and the backtest's own table.
Run by hand: .venv/bin/python benchmarks/bench_backtest.py [--bars FILE] [--no-regime] [--no-events]
[--engine nightly] (the extra flags are passed to ``prep backtest``: ``--no-regime`` / ``--no-events`` add
the system with the regime / the earnings gate off; the earnings-off twin scans its own evening, a second
scan a night; ``--engine nightly`` times the cron path night by night instead of the batch engine).
Target (issue 5): at most 60 s on a 2-core machine (aim for 20 s); issue 13: at most 6 s.
Prints the wall time and the CPU time (user + system) of the process: on a shared machine the CPU
time is the steadier figure.
Measured: 52.2 s before the per-night speed-ups, 31.4 s after (same table to the cent).
With the market context (issue 12) and --no-regime --no-events: 290 s wall (518 sessions, five
accounts, a shared 2-core machine under load ~3), most of it in prepare's pick levels
(``levels._pick_panels`` converting the whole Arrow ``date`` column to Python dates each night).
Issue 13 (2-core machine): --engine nightly 43.3 s; the batch engine 9.1-9.5 s with --workers 0,
7.8-8.3 s with --workers 2 (the default there; 6.6 s at best).  After the batched regime, the numpy
medians and the leaner start (no HTTP client imported, no first night before the fork, matplotlib
imported while the workers compute): 5.1-5.9 s with the default 2 workers (median 5.7 s over 5 runs,
8.2-9.5 s CPU), 8.0-9.2 s with --workers 0 (the shared 2-core machine varies by +-20 % from minute to minute).
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


def main(extra: list[str]) -> None:
    prep = Path(sys.executable).with_name("prep")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.yaml"
        cfg.write_text(f"data:\n  sample_dir: {SAMPLE}\nuniverse:\n  constituents_file: {SAMPLE / 'constituents.csv'}\n")
        cmd = [str(prep), "--config", str(cfg), "backtest", "--start", "2019-04-01", "--end", "2021-04-20",
               "--no-gate", *extra]
        t0, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        run = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(run.stdout, end="")
    if run.returncode:
        print(run.stderr, end="", file=sys.stderr)
        sys.exit(run.returncode)
    print(f"prep backtest 2019-04-01 -> 2021-04-20 --no-gate {' '.join(extra)}: {wall:.1f} s wall, {cpu:.1f} s CPU, "
          "one cold process (target <= 6 s)")


if __name__ == "__main__":
    main(sys.argv[1:])
