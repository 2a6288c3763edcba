"""Time ``score_universe`` on the whole sample (506 symbols) as of 2021-04-19.

Loads data/sample/bars.parquet (raw), split-adjusts it with data/sample/splits.csv as
known on the session (plain pandas, outside the timing), clamps it to bars dated <= the
session, then times ``score_universe`` for every symbol: best of 5 and median, in ms.

Run: ``.venv/bin/python benchmarks/bench_scoring.py [REPEATS]``
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trading_system.config import BucketsConfig, EligibilityConfig, ScoringConfig  # noqa: E402
from trading_system.prepare.scoring import score_universe  # noqa: E402

SESSION = dt.date(2021, 4, 19)


def load_adjusted(session: dt.date) -> pd.DataFrame:
    """The sample's bars dated <= session, split-adjusted with the splits known on it."""
    bars = pd.read_parquet(ROOT / "data" / "sample" / "bars.parquet")
    bars = bars[bars["date"] <= session].reset_index(drop=True)
    bars["volume"] = bars["volume"].astype(float)
    splits = pd.read_csv(ROOT / "data" / "sample" / "splits.csv")
    splits["date"] = pd.to_datetime(splits["date"]).dt.date
    for sp in splits[splits["date"] <= session].itertuples():
        before = (bars["symbol"] == sp.symbol) & (bars["date"] < sp.date)
        if before.any():
            bars.loc[before, ["open", "high", "low", "close"]] /= sp.ratio
            bars.loc[before, "volume"] *= sp.ratio
    return bars


def main(repeats: int = 5) -> None:
    bars = load_adjusted(SESSION)
    scoring, eligibility, buckets = ScoringConfig(), EligibilityConfig(), BucketsConfig()
    score_universe(bars, SESSION, scoring, eligibility, buckets)          # warm-up (imports, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        scan = score_universe(bars, SESSION, scoring, eligibility, buckets)
        times.append(time.perf_counter() - start)
    print(f"score_universe: {len(bars):,} bars, {len(scan)} symbols, as of {SESSION}")
    print(f"  best of {repeats}: {min(times) * 1e3:.1f} ms   median: {statistics.median(times) * 1e3:.1f} ms")
    print(f"  eligible {int(scan['eligible'].sum())}, picks {int(scan['pick'].sum())} "
          f"(CORE {int((scan['pick'] & (scan['bucket'] == 'CORE')).sum())}, "
          f"SPEC {int((scan['pick'] & (scan['bucket'] == 'SPEC')).sum())}, "
          f"ASYM {int((scan['pick'] & (scan['bucket'] == 'ASYM')).sum())})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
