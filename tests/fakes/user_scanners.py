"""A user's scanner module, as a user would write one beside config.yaml (``module: user_scanners:BigRange``).

Tests put tests/fakes on ``sys.path`` (and on ``PYTHONPATH`` for a subprocess) so that it imports
by its bare name, as a user's file on PYTHONPATH does.  Besides one honest scanner (``BigRange``),
it holds the misbehaving ones the runner must survive: one that raises, one that hangs, one that
kills its process, one that floods, one that fails once and then works, one that declines the night,
and a class that is not a Scanner at all.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from trading_system.prepare.scanners import ScanContext, Scanner, ScanResult


class BigRange(Scanner):
    """(high - low) / previous close >= ``params['min_range']`` (default 0.05) on the session.

    No ``Params`` model: the entry's params arrive as a plain dict. Ranked by the range, largest
    first. Metadata: ``range`` (fraction)."""

    def scan(self, ctx: ScanContext) -> ScanResult:
        last = ctx.last()
        size = (last["high"] - last["low"]) / last["prev_close"]
        hits = size[size >= float(self.params.get("min_range", 0.05))].sort_values(ascending=False, kind="stable")
        return ScanResult(symbols=[str(s) for s in hits.index],
                          metadata={str(s): {"range": round(float(v), 6)} for s, v in hits.items()})


class Raises(Scanner):
    """Every scan raises."""

    def scan(self, ctx: ScanContext) -> ScanResult:
        raise RuntimeError("the vendor feed is down")


class Hangs(Scanner):
    """Every scan sleeps a minute (the runner's timeout must kill it)."""

    def scan(self, ctx: ScanContext) -> ScanResult:
        time.sleep(60)
        return ScanResult(symbols=[])


class Dies(Scanner):
    """Every scan ends its process at once, without an answer."""

    def scan(self, ctx: ScanContext) -> ScanResult:
        os._exit(3)


class FailsOnce(Scanner):
    """Raises on its first attempt, then finds every symbol of the night.

    ``params['marker']``: a file path; its existence is the memory between attempts (each
    attempt runs in its own forked process, so a class attribute would not survive)."""

    def scan(self, ctx: ScanContext) -> ScanResult:
        marker = Path(self.params["marker"])
        if not marker.exists():
            marker.write_text("failed once")
            raise ValueError("first attempt fails")
        return ScanResult(symbols=list(ctx.symbols))


class Floods(Scanner):
    """Returns 10,000 values: the night's symbols (each twice), ``params['bad']`` values that are
    not tickers, then well-formed tickers with no bar on the night up to 10,000."""

    def scan(self, ctx: ScanContext) -> ScanResult:
        known = [str(s) for s in ctx.symbols]
        bad: list = [42, None, "aapl", "TOOLONG", "BRK/B"]
        bad += [f"not a ticker {i}" for i in range(int(self.params["bad"]) - len(bad))]
        values = known + known + bad
        values += [_ticker(i) for i in range(10_000 - len(values))]
        return ScanResult(symbols=values, metadata={s: {"rank": i} for i, s in enumerate(known)})


def _ticker(i: int) -> str:
    """A well-formed ticker ``ZZ`` + three letters (no S&P 500 name starts with ZZ)."""
    a, rest = divmod(i, 26 * 26)
    b, c = divmod(rest, 26)
    return "ZZ" + chr(65 + a % 26) + chr(65 + b) + chr(65 + c)


class Declines(Scanner):
    """``setup`` declines every night (a scanner whose data is not there)."""

    def setup(self, ctx: ScanContext) -> bool:
        return False

    def scan(self, ctx: ScanContext) -> ScanResult:
        raise AssertionError("scan must not run after setup declined")


class ReturnsList(Scanner):
    """``scan`` returns a bare list instead of a ScanResult."""

    def scan(self, ctx: ScanContext):
        return list(ctx.symbols)


class NotAScanner:
    """Has a ``scan`` but does not subclass Scanner."""

    def scan(self, ctx):
        return ScanResult(symbols=[])


#: Not a class at all.
not_a_class = 1.0
