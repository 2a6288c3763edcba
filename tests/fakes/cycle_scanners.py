"""Scanners for the end-to-end scanner tests (tests/test_scanner_cycle.py), as a user would write them.

``Broken`` raises on every night (a scanner with a bug); ``Everything`` finds every symbol of the
night, so a test can watch the runner's ``max_symbols`` cap and the universe grow.
"""

from trading_system.prepare.scanners import Scanner, ScanResult


class Broken(Scanner):
    """Always raises: the nightly run must go on without it."""

    def scan(self, ctx):
        raise RuntimeError("this scanner has a bug")


class Everything(Scanner):
    """Every symbol with a bar on the night, alphabetically."""

    def scan(self, ctx):
        return ScanResult(symbols=list(ctx.symbols))
