"""A loopback fake of Alpaca's market-data latest-trades endpoint (``GET /v2/stocks/trades/latest``).

alpaca-py's ``StockHistoricalDataClient(url_override=...)`` talks to it over HTTP.  Body shape:
``{"trades": {"AAPL": {"t": RFC 3339, "x", "p", "s", "c", "i", "z"}}}``; keys checked from the
``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers (401 ``{"code":40110000,...}`` otherwise).
The price is the session's real opening print from data/sample, stamped 09:00 ET that day
(standing in for the pre-market trade, as the sample source does).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from .polygon_server import ET, SAMPLE, LoopbackServer


class AlpacaDataFake(LoopbackServer):
    """Latest trades for ``session`` (set by the test); symbols without a bar that day are left out."""

    def __init__(self, key: str = "alpaca-key", secret: str = "alpaca-secret"):
        super().__init__()
        self.key, self.secret = key, secret
        self._bars = pd.read_parquet(SAMPLE / "bars.parquet")
        self.session: dt.date | None = None

    def handle(self, h, path, query):
        if h.headers.get("APCA-API-KEY-ID") != self.key or h.headers.get("APCA-API-SECRET-KEY") != self.secret:
            return 401, {"code": 40110000, "message": "request is not authorized"}, {}
        if path != "/v2/stocks/trades/latest":
            return 404, {"code": 40410000, "message": "endpoint not found"}, {}
        wanted = [s for s in query.get("symbols", "").split(",") if s]
        day = self._bars[(self._bars["date"] == self.session) & self._bars["symbol"].isin(wanted)]
        stamp = dt.datetime.combine(self.session, dt.time(9), tzinfo=ET).astimezone(dt.timezone.utc) \
            if self.session else None
        trades = {s: {"t": stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "x": "V", "p": float(o), "s": 100,
                      "c": ["@", "T"], "i": 52983525029461, "z": "C"}
                  for s, o in zip(day["symbol"], day["open"])}
        return 200, {"trades": trades}, {}
