"""Market-data sources behind one small protocol (DESIGN §3): ``MarketData`` and ``Quote`` (``base``);
the bar store, raw bars and splits on disk, split-adjusted on read (``store``); the offline sample
(``sample``), the in-memory source of backtests (``cached``) and Polygon grouped daily into a store
(``polygon_source``, over the HTTP client ``polygon`` and its limiter ``ratelimit``); Alpaca's latest
trades for the morning (``alpaca_data``); index closes for the regime (``index_bars``); earnings
report dates for the earnings gate (``earnings``).

May import: ``config``, ``errors``, ``sessions``, ``progress``, ``alpaca_http`` and ``state`` (atomic
writes).  Never imports a stage, ``broker``, ``review``, ``cli`` or ``present`` (``lint-imports`` checks it).
"""
