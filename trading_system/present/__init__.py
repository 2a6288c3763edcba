"""Everything printed or sent for a person: the command tables (``render``), the charts
(``charts``) and the alerts (``notify``).  The progress reporter (``trading_system.progress``)
sits at the top, beside logging, because the data layer reports through it.

May import what it presents (stage results, ``state``); nothing imports it but ``cli`` and ``review``.
"""
