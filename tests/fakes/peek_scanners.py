"""User scanners for tests/test_scan_commands.py, loaded the way a user's are (``fakes.peek_scanners:Class``).

``Recorder`` writes down what every context it is given holds, so a test can prove that no
context ever held a bar after its night, nor a split announced after it; ``Broken`` always raises.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from trading_system.prepare.scanners import ScanContext, Scanner, ScanResult

#: A session before AAPL's 4-for-1 split (ex-date 2020-08-31): its raw close that day was $459.63.
BEFORE_SPLIT = dt.date(2020, 8, 14)


class Recorder(Scanner):
    """Finds AAPL every night it has a bar; records per context (session, phase, the newest bar's
    date, AAPL's close of 2020-08-14 as the context holds it or None, the number of bars)."""

    seen: list[tuple[dt.date, str, dt.date, float | None, int]] = []

    def scan(self, ctx: ScanContext) -> ScanResult:
        bars = ctx.bars
        dates = pd.to_datetime(pd.Series(bars["date"].unique()).astype(object))  # whatever the column's dtype
        newest = dates.max().date()
        eve = bars[(bars["symbol"] == "AAPL") & (bars["date"] == BEFORE_SPLIT)]
        close = float(eve["close"].iloc[0]) if len(eve) else None
        Recorder.seen.append((ctx.session, ctx.phase, newest, close, len(bars)))
        return ScanResult(symbols=["AAPL"] if "AAPL" in set(ctx.symbols) else [])


class Broken(Scanner):
    """Raises on every run (a scanner with a bug)."""

    def scan(self, ctx: ScanContext) -> ScanResult:
        raise RuntimeError("boom")
