"""Requests and wall time of `prep prepare` on the Polygon source, against the loopback fake.

Run by hand: .venv/bin/python benchmarks/bench_polygon.py [--quick]

The fake (tests/fakes/polygon_server.py) answers every request after 50 ms of latency.
Each `prep prepare` is the real command line in a fresh process, on a paid-plan config with
a generous requests_per_minute so the limiter does not dominate; the free plan's wall time
(5 requests a minute, evenly spaced) is given by calculation.

1. 507 symbols (the sample): cold (empty store: every session of the 400-calendar-day window
   the scan reads, 276 sessions for 2021-04-19, covering the 250-session RSI window) and warm
   (store filled on 2021-04-16, one new session), beside a per-ticker baseline: one aggregates
   request per symbol over the same window, on the same fake.
2. 5,060 symbols: the fake adds 9 SYNTHETIC replicas of every real symbol (real bars under
   made-up names such as AAPL_syn3) so the market is as wide as the real one; the universe is
   the top 5,000 by dollar volume.  Cold grouped-daily run vs one request per symbol
   (--quick estimates the per-ticker wall time from 500 requests instead of making all 5,060).
Targets (issue 3): cold <= sessions needed + 5 requests; warm <= 3; >= 50x fewer than per-ticker at 5,000.
A per-ticker scan makes one request per symbol whether the night is cold or warm, so the 50x is met
by every nightly (warm) run; a cold fill needs one request per session, so its ratio cannot exceed
symbols / sessions (5,060 / 276 = 18.3x), whatever the client does.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakes.polygon_server import SAMPLE, PolygonFake  # noqa: E402

from trading_system import sessions  # noqa: E402
from trading_system.config import PolygonConfig  # noqa: E402
from trading_system.marketdata.polygon import PolygonClient  # noqa: E402
from trading_system.prepare.discovery import HISTORY_DAYS  # noqa: E402

LATENCY = 0.050
FREE_SPACING = 60 / 5  # seconds between requests on the free plan (burst 1)


def prepare(fake: PolygonFake, folder: Path, as_of: str, universe: str = "") -> tuple[int, float]:
    """Run `prep prepare` once; (requests the fake answered, wall seconds)."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "config.yaml"
    cfg.write_text(f"data:\n  source: polygon\n  store_dir: {folder / 'store'}\n"
                   f"universe:\n  constituents_file: {SAMPLE / 'constituents.csv'}\n{universe}"
                   "polygon:\n  plan: paid\n  requests_per_minute: 600000\n")
    env = {**os.environ, "POLYGON_API_KEY": fake.key, "POLYGON_BASE_URL": fake.url}
    before = len(fake.requests)
    t0 = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("prep")), "--config", str(cfg), "--as-of", as_of, "prepare"],
                   check=True, stdout=subprocess.DEVNULL, env=env)
    return len(fake.requests) - before, time.perf_counter() - t0


def per_ticker(fake: PolygonFake, symbols: list[str], start: dt.date, end: dt.date) -> tuple[int, float]:
    """The baseline: one aggregates request per symbol over [start, end]; (requests, wall seconds)."""
    client = PolygonClient(fake.key, PolygonConfig(requests_per_minute=600000), base_url=fake.url)
    t0 = time.perf_counter()
    for s in symbols:
        client.aggregates(s, start, end)
    return client.requests_made, time.perf_counter() - t0


def free(requests: int) -> str:
    minutes = max(requests - 1, 0) * FREE_SPACING / 60
    return f"{minutes / 60:.1f} h" if minutes >= 90 else f"{minutes:.1f} min"


def main(quick: bool) -> None:
    scan = dt.date(2021, 4, 19)
    start = scan - dt.timedelta(days=HISTORY_DAYS)
    needed = len(sessions.sessions_between(start, scan))
    print(f"fake latency {LATENCY * 1000:.0f} ms/request; sessions needed for --as-of {scan} 20:00: {needed} "
          f"(the {HISTORY_DAYS}-calendar-day window the scan reads; RSI needs the last 250 bars of each symbol)")
    rows = []
    with PolygonFake() as fake, tempfile.TemporaryDirectory() as tmp:
        fake.latency = LATENCY
        cold_req, cold_s = prepare(fake, Path(tmp) / "cold", "2021-04-19T20:00")
        prepare(fake, Path(tmp) / "warm", "2021-04-16T20:00")
        warm_req, warm_s = prepare(fake, Path(tmp) / "warm", "2021-04-19T20:00")
        symbols = sorted(set(fake.raw["symbol"]))
        base_req, base_s = per_ticker(fake, symbols, start, scan)
    rows += [(f"cold prepare, {len(symbols)} symbols", cold_req, cold_s, f"<= {needed + 5}"),
             ("warm prepare (one new session)", warm_req, warm_s, "<= 3"),
             (f"per-ticker baseline, {len(symbols)} symbols", base_req, base_s, "")]
    with PolygonFake(replicas=9) as fake, tempfile.TemporaryDirectory() as tmp:
        fake.latency = LATENCY
        wide = sorted(set(fake.raw["symbol"]))
        top = "  generator: top_dollar_volume\n  top_n: 5000\n"
        big_req, big_s = prepare(fake, Path(tmp) / "wide", "2021-04-19T20:00", top)
        prepare(fake, Path(tmp) / "wide-warm", "2021-04-16T20:00", top)
        bigw_req, bigw_s = prepare(fake, Path(tmp) / "wide-warm", "2021-04-19T20:00", top)
        if quick:
            n, s = per_ticker(fake, wide[:500], start, scan)
            wide_req, wide_s, note = len(wide), s * len(wide) / n, "(estimated from 500)"
        else:
            wide_req, wide_s = per_ticker(fake, wide, start, scan)
            note = ""
    rows += [(f"cold prepare, {len(wide)} symbols (9 synthetic replicas each)", big_req, big_s,
              f"{wide_req / big_req:.1f}x fewer than per-ticker (at most {len(wide) / needed:.1f}x: "
              f"{needed} sessions)"),
             (f"warm prepare, {len(wide)} symbols (one new session)", bigw_req, bigw_s,
              f"<= 3; >= 50x fewer than per-ticker ({wide_req / bigw_req:.0f}x)"),
             (f"per-ticker baseline, {len(wide)} symbols {note}", wide_req, wide_s, "")]
    print(f"{'run':<62} {'requests':>8} {'wall':>9} {'free plan (5/min)':>18}  target")
    for name, req, secs, target in rows:
        print(f"{name:<62} {req:>8} {secs:>8.1f}s {free(req):>18}  {target}")


if __name__ == "__main__":
    main("--quick" in sys.argv[1:])
