"""The broker boundary (DESIGN §7): the ``Broker`` protocol and the value types that cross it
(``base``); Alpaca's Trading API over alpaca-py (``alpaca``, with the paper/live switches of
``alpaca_env``); the offline account in a flat file (``simulated``, filled at each session's open
from a ``BarReader``); and the dry run (``dryrun``: reads pass through, orders are recorded, never sent).

May import: ``config``, ``errors``, ``sessions``, ``vocabulary``, ``alpaca_http`` and ``state`` (atomic
writes).  Never imports a stage, ``review``, ``cli`` or ``present`` (``lint-imports`` checks it).
"""
