"""prep: pre-market preparation for US equities (scan at 20:00 ET, validate and rebalance at 09:00 ET)."""

__version__ = "0.1.0"
