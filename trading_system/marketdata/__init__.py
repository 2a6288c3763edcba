"""Market-data sources behind one small protocol (DESIGN §3)."""
