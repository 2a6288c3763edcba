"""Time ``prep sweep`` over a grid on the local process pool and on a 2-worker Dask ``LocalCluster``.

Default: examples/sweep.yaml (12 trials) over 2019-04-01 -> 2021-04-20 with ``--jobs 2``, then the
same grid on a real LocalCluster (2 worker processes, 1 thread each, loopback), each in a fresh
output folder so nothing is resumed.  Issue 13's target: <= 60 s for the 12-trial sweep.
Measured (2-core machine): local pool 40.3 s, LocalCluster 62.0 s; after the batch engine's speed-ups
of the next session (batched regime, numpy medians): 27.6 s and 39.5 s.

Run: ``.venv/bin/python benchmarks/bench_sweep.py [GRID] [START] [END]``
(e.g. ``benchmarks/bench_sweep.py examples/sweep.yaml 2021-01-04 2021-04-20`` for a short one).
"""

from __future__ import annotations

import datetime as dt
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from trading_system.config import load_config  # noqa: E402
from trading_system.review.sweep_report import sweep_command  # noqa: E402
from trading_system.sessions import Clock  # noqa: E402


def run(grid: Path, start: dt.date, end: dt.date, jobs: int | None, scheduler: str | None) -> float:
    """Wall seconds of one sweep into a fresh folder (its printout kept in memory, its last lines shown)."""
    cfg = load_config(ROOT / "config.yaml")
    out = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as folder:
        t0 = time.perf_counter()
        sweep_command(cfg, Clock(), Console(file=out, width=120), str(grid), start, end, jobs, scheduler, 500,
                      None, folder, None, None)
        seconds = time.perf_counter() - t0
    print("\n".join(out.getvalue().splitlines()[-6:]))
    return seconds


def main() -> None:
    grid = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "examples" / "sweep.yaml"
    start = dt.date.fromisoformat(sys.argv[2]) if len(sys.argv) > 2 else dt.date(2019, 4, 1)
    end = dt.date.fromisoformat(sys.argv[3]) if len(sys.argv) > 3 else dt.date(2021, 4, 20)
    local = run(grid, start, end, 2, None)
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        dask_seconds = run(grid, start, end, None, cluster.scheduler_address)
    print(f"{grid.name} {start} -> {end}: local pool --jobs 2 {local:.1f} s; LocalCluster 2 workers "
          f"{dask_seconds:.1f} s (target <= 60 s for 12 trials over 2019-04 -> 2021-04)")


if __name__ == "__main__":
    main()
