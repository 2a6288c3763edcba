"""Everything printed or sent for a person: the command tables (``render``), charts (``charts``),
progress lines and bars (``progress``) and alerts (``notify``).

May import what it presents (stage results, ``state``); nothing imports it but ``cli`` and ``review``.
"""
