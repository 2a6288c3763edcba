"""Scanners (DESIGN §10): rules that *discover* symbols in the nightly scan.

A scanner reads a :class:`ScanContext` (the session, the phase, the split-adjusted bars
clamped to the as-of instant, the morning's pre-market prices, its own criteria) and returns a
:class:`ScanResult`.  It never fetches data, which is why every scanner can be run as of any
night and backtested (``prep scan``, ``prep scan-backtest``).

``base`` the contract; ``settings`` the ``scanners:`` entries of config.yaml; ``builtin`` and
``compose`` the built-in rules; ``loader`` turns an entry into a scanner; ``runner`` runs them
under a timeout with retry, counts failures and disables a scanner after 3 failed runs
(``data/scanners/state.json``), and appends every run to ``data/scanners/stats.jsonl``.

May import: ``config``, ``settings_types``, ``errors``, ``sessions``, ``vocabulary``, ``state``
and ``prepare.panels`` / ``prepare.indicators``.  Never ``marketdata`` (a scanner does not
fetch), nor any later stage.
"""

from trading_system.prepare.scanners.base import ScanContext, Scanner, ScanResult

__all__ = ["ScanContext", "ScanResult", "Scanner"]
