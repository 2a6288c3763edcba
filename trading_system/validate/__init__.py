"""The morning gate (DESIGN §6): retention of each pick, renormalised weights, the validation
rate and the choice of strategy (``gate``).

May import: ``config``, ``errors``, ``vocabulary``, ``state``.  Never imports ``cli`` or ``present``.
"""
