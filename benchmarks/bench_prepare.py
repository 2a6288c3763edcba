"""`prep prepare` over the whole sample as one process (wall time, cold process each run).

Run by hand: .venv/bin/python benchmarks/bench_prepare.py [runs]
Target (issue 2): at most 3 s on a 2-core machine.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


def main(runs: int = 5) -> None:
    prep = Path(sys.executable).with_name("prep")
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.yaml"
        cfg.write_text(f"data:\n  sample_dir: {SAMPLE}\nuniverse:\n  constituents_file: {SAMPLE / 'constituents.csv'}\n")
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([str(prep), "--config", str(cfg), "--as-of", "2021-04-19T20:00", "prepare"],
                           check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
    print(f"prep prepare, whole sample (507 symbols), {runs} cold processes: "
          f"best {min(times):.2f} s, median {statistics.median(times):.2f} s, worst {max(times):.2f} s (target <= 3 s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
