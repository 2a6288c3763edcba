"""The evening stage (DESIGN §4-5): which names are scanned (``universe``), the indicators and the
composite score (``indicators``, ``scoring``), and the four candidate strategies (``strategies``).

May import: ``config``, ``errors``, ``sessions``, ``vocabulary``, ``marketdata``, ``state``.
Never imports ``cli``, ``present``, ``broker``, ``validate``, ``execute`` or ``review``.
"""
