"""The rebalance (DESIGN §7): order planning and the pre-trade guards (``orders``), the two-phase
rebalance with its journal (``rebalance``), and the broker's clock and calendar (``market_clock``).

May import: ``config``, ``errors``, ``sessions``, ``broker``, ``state``.  Never imports ``cli`` or ``present``.
"""
