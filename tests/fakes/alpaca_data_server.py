"""A loopback fake of Alpaca's market-data latest-trades endpoint (``GET /v2/stocks/trades/latest``).

alpaca-py's ``StockHistoricalDataClient(url_override=...)`` talks to it over HTTP.  Body shape:
``{"trades": {"AAPL": {"t": RFC 3339, "x", "p", "s", "c", "i", "z"}}}``; keys checked from the
``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers (401 ``{"code":40110000,...}`` otherwise).
The price is the session's real opening print from data/sample, stamped 09:00 ET that day
(standing in for the pre-market trade, as the sample source does).

Knobs: ``stale``: symbols with no trade yet today, answered (as Alpaca does) with their last
trade, the previous session's real close stamped 15:59 ET that day; ``forbidden``: every
request answers 403 "subscription does not permit" (keys without the data subscription).
Faults (500, drop...) are injected as on the Polygon fake (``inject``).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from .polygon_server import ET, SAMPLE, LoopbackServer

SUBSCRIPTION = "subscription does not permit querying recent SIP data"


def _stamp(day: dt.date, hour: int, minute: int = 0) -> str:
    when = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ET).astimezone(dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AlpacaDataFake(LoopbackServer):
    """Latest trades for ``session`` (set by the test); symbols without a bar that day are left out."""

    def __init__(self, key: str = "alpaca-key", secret: str = "alpaca-secret"):
        super().__init__()
        self.key, self.secret = key, secret
        self._bars = pd.read_parquet(SAMPLE / "bars.parquet")
        self.session: dt.date | None = None
        self.stale: set[str] = set()
        self.forbidden = False

    def handle(self, h, path, query):
        if h.headers.get("APCA-API-KEY-ID") != self.key or h.headers.get("APCA-API-SECRET-KEY") != self.secret:
            return 401, {"code": 40110000, "message": "request is not authorized"}, {}
        if self.forbidden:
            return 403, {"message": SUBSCRIPTION}, {}
        if path != "/v2/stocks/trades/latest":
            return 404, {"code": 40410000, "message": "endpoint not found"}, {}
        wanted = [s for s in query.get("symbols", "").split(",") if s]
        if self.session is None:
            return 200, {"trades": {}}, {}
        fresh = [s for s in wanted if s not in self.stale]
        day = self._bars[(self._bars["date"] == self.session) & self._bars["symbol"].isin(fresh)]
        trades = {s: self._trade(_stamp(self.session, 9), o) for s, o in zip(day["symbol"], day["open"])}
        before = self._bars[(self._bars["date"] < self.session) & self._bars["symbol"].isin(self.stale & set(wanted))]
        for s, last in before.sort_values("date").groupby("symbol").tail(1).set_index("symbol").iterrows():
            trades[s] = self._trade(_stamp(last["date"], 15, 59), last["close"])
        return 200, {"trades": trades}, {}

    @staticmethod
    def _trade(stamp: str, price: float) -> dict:
        return {"t": stamp, "x": "V", "p": float(price), "s": 100, "c": ["@", "T"], "i": 52983525029461, "z": "C"}
