"""Looking back: archived plans (``archives``: history and replay), the backtest and its report
(``backtest``, ``backtest_report``), the metrics (``metrics``) and ``status``.

May import the stages, ``state``, ``present``, ``marketdata`` and ``broker``; never ``cli``.
"""
