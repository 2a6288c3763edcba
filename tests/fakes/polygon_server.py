"""A loopback fake of Polygon's REST API, served from the real bars of data/sample.

Shapes follow API-NOTES Part A: grouped daily (``T``, o/h/l/c/v, ``t`` epoch ms at 16:00 ET,
``results`` left out when empty), per-ticker aggregates (``t`` at 00:00 ET), splits and
tickers with ``next_url`` pagination, the stocks snapshot, and the error bodies
(``{"status":"ERROR","error":...}`` for 401/429, ``{"status":"NOT_AUTHORIZED","message":...}``
for 403).  Bars are raw unless the request omits ``adjusted=false`` (Polygon's default is
adjusted, so a client that forgets it gets split-adjusted prices and the tests notice).

Reference data is derived, not fetched: ticker types are CS for the constituents file and
ETF for SPY/QQQ; snapshot prices are each session's real opening print standing in for the
09:00 pre-market trade (as the sample source does).  ``replicas=k`` adds k synthetic copies of
every symbol (``AAPL_syn1``...), real bars under made-up names, for the 5,000-symbol benchmark only.

Context data (DESIGN §11): index aggregates for ``I:SPX``, ``I:NDX``, ``I:RUT``, ``I:VIX`` (and the
ETFs IWM and DIA, per-ticker aggregates only) from data/sample/market_context.parquet, in the
indices shape (o/h/l/c/t, no volume); Benzinga earnings (``/benzinga/v1/earnings``) built from
data/sample/earnings.csv: ``ticker`` and ``date`` only (the sample has no time of day; a test may
set ``earnings_times``), filters ``date`` / ``date.gte`` / ``date.lte`` / ``ticker`` /
``ticker.any_of``, ``limit`` (default 100, max 50,000) and ``next_url`` pages.

Faults are injected per endpoint (``inject``): 429 with or without Retry-After, 500, a handler
that sleeps past the client's timeout (bounded), a dropped connection, and "empty": HTTP 200
"OK, 0 results" with no ``results`` (a holiday's answer) for a session that traded, N times or
``always``.  ``latency`` delays
every answer.  Every request is logged in ``requests`` (path, query, status).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import socket
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from trading_system.marketdata.store import split_adjust

ET = ZoneInfo("America/New_York")
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
BEFORE_EOD = "Attempted to request today's data before end of day. Please upgrade your plan at https://polygon.io/pricing"
NOT_ENTITLED = "You are not entitled to this data. Please upgrade your plan at https://polygon.io/pricing"
TIMEFRAME = "Your plan doesn't include this data timeframe. Please upgrade your plan at https://polygon.io/pricing"
RATE_LIMITED = ("You've exceeded the maximum requests per minute, please wait or upgrade your subscription to "
                "continue. https://polygon.io/pricing")


def _ms(day: dt.date, hour: int) -> int:
    return int(dt.datetime.combine(day, dt.time(hour), tzinfo=ET).timestamp() * 1000)


class LoopbackServer:
    """A ThreadingHTTPServer on 127.0.0.1:0 in a daemon thread; ``handle(handler)`` answers."""

    def __init__(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16               # headers and body leave in one write (no delayed-ACK stall)
            disable_nagle_algorithm = True

            def do_GET(self):  # noqa: N802 (http.server's name)
                owner._dispatch(self)

            def log_message(self, *args):  # keep test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.lock = threading.Lock()
        self.requests: list[tuple[str, dict, int]] = []
        self.faults: list[dict] = []
        self.latency = 0.0
        self.timeout_sleep = 1.0  # seconds a "timeout" fault holds the answer (bounded)
        # polled every 50 ms (not the default 0.5 s): ``shutdown`` returns that soon, at teardown and in tests
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def inject(self, kind: str, match: str = "", times: int = 1, retry_after: str | None = None,
               always: bool = False) -> None:
        """Queue ``times`` faults of ``kind`` (429, 500, timeout, drop, empty) for paths containing ``match``;
        ``always``: one fault that answers every such request until ``faults`` is cleared."""
        with self.lock:
            self.faults.extend({"kind": kind, "match": match, "retry_after": retry_after, "always": always}
                               for _ in range(1 if always else times))

    def count(self, match: str = "", status: int | None = None) -> int:
        """Requests whose path contains ``match`` (and answered ``status``, if given)."""
        with self.lock:
            return sum(1 for p, _, s in self.requests if match in p and (status is None or s == status))

    def _take_fault(self, path: str) -> dict | None:
        with self.lock:
            for i, f in enumerate(self.faults):
                if f["match"] in path:
                    return f if f.get("always") else self.faults.pop(i)
        return None

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(h.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        if self.latency:
            time.sleep(self.latency)
        fault = self._take_fault(parts.path)
        status, body, headers = 0, None, {}
        if fault and fault["kind"] == "drop":
            self._log(parts.path, query, 0)
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault and fault["kind"] == "timeout":
            self._log(parts.path, query, 0)
            time.sleep(self.timeout_sleep)
            h.close_connection = True
            return
        if fault and fault["kind"] == "429":
            status, body = 429, {"status": "ERROR", "request_id": uuid.uuid4().hex, "error": RATE_LIMITED}
            if fault["retry_after"] is not None:
                headers["Retry-After"] = fault["retry_after"]
        elif fault and fault["kind"] == "500":
            status, body = 500, {"status": "ERROR", "request_id": uuid.uuid4().hex, "error": "Internal Server Error"}
        elif fault and fault["kind"] == "empty":  # a holiday's answer (A2) for a session that traded
            status, body = 200, {"adjusted": query.get("adjusted", "true") != "false", "queryCount": 0,
                                 "resultsCount": 0, "status": "OK", "request_id": uuid.uuid4().hex}
        else:
            status, body, headers = self.handle(h, parts.path, query)
        self._log(parts.path, query, status)
        data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _log(self, path: str, query: dict, status: int) -> None:
        with self.lock:
            self.requests.append((path, query, status))

    def handle(self, h, path: str, query: dict) -> tuple[int, object, dict]:  # pragma: no cover
        raise NotImplementedError


def _tables(bars: pd.DataFrame | None, replicas: int) -> dict:
    """The fake's tables: raw bars (whole, by date, by symbol), splits, ticker reference, context bars by
    symbol and earnings rows, from ``bars`` (default: data/sample) with ``replicas``.  The split-adjusted
    bars are added by ``_adjusted`` when first asked for (only a client that omits ``adjusted=false``)."""
    raw = bars if bars is not None else pd.read_parquet(SAMPLE / "bars.parquet")
    splits = pd.read_csv(SAMPLE / "splits.csv", dtype={"symbol": str})
    splits["date"] = pd.to_datetime(splits["date"]).dt.date
    names = pd.read_csv(SAMPLE / "constituents.csv", dtype=str)
    ref = [{"ticker": s, "name": n, "type": "CS"} for s, n in zip(names["symbol"], names["name"])]
    ref += [{"ticker": "SPY", "name": "SPDR S&P 500 ETF Trust", "type": "ETF"},
            {"ticker": "QQQ", "name": "Invesco QQQ Trust, Series 1", "type": "ETF"}]
    if replicas:  # synthetic names over real bars: benchmark only
        raw = pd.concat([raw] + [raw.assign(symbol=raw["symbol"] + f"_syn{i}") for i in range(1, replicas + 1)],
                        ignore_index=True)
        splits = pd.concat([splits] + [splits.assign(symbol=splits["symbol"] + f"_syn{i}")
                                       for i in range(1, replicas + 1)], ignore_index=True)
        ref += [{**r, "ticker": f"{r['ticker']}_syn{i}"} for i in range(1, replicas + 1) for r in list(ref)]
    by_symbol = {s: g for s, g in raw.groupby("symbol")}
    context = pd.read_parquet(SAMPLE / "market_context.parquet")
    earnings = pd.read_csv(SAMPLE / "earnings.csv", dtype=str)
    return {"raw": raw, "splits": splits, "reference": sorted(ref, key=lambda r: r["ticker"]),
            "by_date": {d: g for d, g in raw.groupby("date")}, "by_symbol": by_symbol,
            "context": {s: g for s, g in context.groupby("symbol") if str(s).startswith("I:") or s not in by_symbol},
            "earnings": sorted(zip(earnings["date"], earnings["symbol"]))}


_ADJUSTING = threading.Lock()


def _adjusted(tables: dict) -> dict:
    """``tables`` with ``adjusted`` (every raw bar split-adjusted with every split, as Polygon's default
    ``adjusted=true`` answers) and ``adj_by_date``, built on first use (most runs never ask for them)."""
    with _ADJUSTING:
        if "adjusted" not in tables:
            adjusted = split_adjust(tables["raw"], tables["splits"], dt.date(2100, 1, 1))
            tables["adj_by_date"] = {d: g for d, g in adjusted.groupby("date")}
            tables["adjusted"] = adjusted
    return tables


@functools.lru_cache(maxsize=2)
def _sample_tables(replicas: int) -> dict:
    """The sample's tables, built once per process, with ``grouped``: their encoded grouped-daily answers."""
    return {**_tables(None, replicas), "grouped": {}}


def _grouped_answer(day: dt.date, raw: bool, rows: pd.DataFrame | None) -> bytes:
    """The grouped-daily body (JSON) of ``rows``, the bars of ``day``: raw or split-adjusted as ``raw`` says."""
    head: dict = {"adjusted": not raw, "queryCount": 0, "resultsCount": 0, "status": "OK"}
    if rows is None or not len(rows):  # holidays, weekends, outside the data: no "results" at all (A1/A2)
        return json.dumps(head).encode()
    t = _ms(day, 16)
    results = [{"T": s, "o": o, "h": hi, "l": lo, "c": c, "v": float(v), "t": t}
               for s, o, hi, lo, c, v in zip(rows["symbol"].tolist(), rows["open"].tolist(), rows["high"].tolist(),
                                              rows["low"].tolist(), rows["close"].tolist(), rows["volume"].tolist())]
    head["queryCount"] = head["resultsCount"] = len(results)
    return json.dumps({**head, "results": results}).encode()


class PolygonFake(LoopbackServer):
    """Polygon over the sample bars.  Knobs:

    - ``key``: the only Bearer key accepted (401 "Unknown API Key" otherwise);
    - ``published_through``: grouped daily after this date answers 403 "before end of day";
    - ``history_from``: grouped daily before this date answers 403 "doesn't include this data timeframe";
    - ``snapshot_entitled``: False answers the snapshot with 403 "not entitled";
    - ``indices_entitled``: False answers index aggregates (``I:SPX``...) with 403 "not entitled";
    - ``earnings_entitled``: False answers Benzinga earnings with 403 "not entitled";
    - ``earnings_times``: {(ticker, "YYYY-MM-DD"): "HH:MM:SS"}, a ``time`` to serve for that report;
    - ``snapshot_session``: the session whose opening print the snapshot reports as lastTrade;
    - ``page_size``: cap on items per page of splits / tickers (forces ``next_url`` pages);
    - ``splits_known_through``: splits whose ex-date is after this are not listed yet.
    """

    def __init__(self, key: str = "test-key", replicas: int = 0, bars: pd.DataFrame | None = None):
        super().__init__()
        self.key = key
        # The tables the answers are cut from: built once per process for the bundled sample (read-only,
        # shared by every fake of a test run; each fake has its own dicts, so a test may swap one).
        t = _sample_tables(replicas) if bars is None else _tables(bars, replicas)
        self._tables = t if bars is None else None
        self._own_tables = t
        self.raw, self.splits, self.reference = t["raw"], t["splits"], t["reference"]
        self._by_date = dict(t["by_date"])
        self._by_symbol, self._context = dict(t["by_symbol"]), dict(t["context"])
        self.earnings = list(t["earnings"])  # (date text, ticker)
        self.published_through: dt.date | None = None
        self.history_from: dt.date | None = None
        self.snapshot_entitled = True
        self.indices_entitled = True
        self.snapshot_session: dt.date | None = None
        self.page_size = 1000
        self.splits_known_through: dt.date | None = None
        self._grouped_cache: dict = {}
        self.earnings_entitled = True
        self.earnings_times: dict[tuple[str, str], str] = {}

    @functools.cached_property
    def adjusted(self) -> pd.DataFrame:
        """Every raw bar split-adjusted with every split (Polygon's default answers), built on first use."""
        return _adjusted(self._own_tables)["adjusted"]

    @functools.cached_property
    def _adj_by_date(self) -> dict:
        return dict(_adjusted(self._own_tables)["adj_by_date"])

    # -------------------------------------------------------------- routing

    def handle(self, h, path, query):
        auth = h.headers.get("Authorization", "")
        if not auth:
            return 401, {"status": "ERROR", "request_id": uuid.uuid4().hex, "error": "API Key was not provided"}, {}
        if auth != f"Bearer {self.key}":
            return 401, {"status": "ERROR", "request_id": uuid.uuid4().hex, "error": "Unknown API Key"}, {}
        seg = path.strip("/").split("/")
        if path.startswith("/v2/aggs/grouped/locale/us/market/stocks/"):
            return self._grouped(seg[-1], query)
        if path.startswith("/v2/aggs/ticker/") and len(seg) == 9:
            return self._aggs(urllib.parse.unquote(seg[3]), seg[7], seg[8], query)
        if path == "/v3/reference/splits":
            return self._splits(query)
        if path == "/v3/reference/tickers":
            return self._tickers(query)
        if path == "/v2/snapshot/locale/us/markets/stocks/tickers":
            return self._snapshot(query)
        if path == "/benzinga/v1/earnings":
            return self._earnings(query)
        return 404, {"status": "NOT_FOUND", "request_id": uuid.uuid4().hex, "message": "Not found"}, {}

    @staticmethod
    def _forbidden(message: str):
        return 403, {"status": "NOT_AUTHORIZED", "request_id": uuid.uuid4().hex, "message": message}, {}

    def _grouped(self, date_text: str, query: dict):
        try:
            day = dt.date.fromisoformat(date_text)
        except ValueError:
            return 400, {"status": "ERROR", "request_id": uuid.uuid4().hex, "error": f"Could not parse date {date_text}"}, {}
        if self.published_through is not None and day > self.published_through:
            return self._forbidden(BEFORE_EOD)
        if self.history_from is not None and day < self.history_from:
            return self._forbidden(TIMEFRAME)
        raw = query.get("adjusted", "true").lower() == "false"
        key = (day, raw)
        if key not in self._grouped_cache:  # encoded once per fake: the answers never change
            name = "by_date" if raw else "adj_by_date"
            rows = getattr(self, "_" + name).get(day)
            if self._tables is not None and rows is self._tables[name].get(day):
                # the sample's own rows (no test swapped them): encoded once per process, for every fake
                shared = self._tables["grouped"]
                if key not in shared:
                    shared[key] = _grouped_answer(day, raw, rows)
                self._grouped_cache[key] = shared[key]
            else:
                self._grouped_cache[key] = _grouped_answer(day, raw, rows)
        return 200, self._grouped_cache[key], {}

    def _aggs(self, ticker: str, start: str, end: str, query: dict):
        if ticker.startswith("I:") and not self.indices_entitled:
            return self._forbidden(NOT_ENTITLED)
        if ticker in self._context:
            return self._context_aggs(ticker, start, end, query)
        rows = self._by_symbol.get(ticker)
        body = {"ticker": ticker, "adjusted": query.get("adjusted", "true") != "false", "queryCount": 0,
                "resultsCount": 0, "status": "OK", "request_id": uuid.uuid4().hex}
        if rows is not None:
            s, e = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
            rows = rows[(rows["date"] >= s) & (rows["date"] <= e)]
            if query.get("adjusted", "true") != "false":
                rows = self.adjusted.loc[rows.index]
            if len(rows):
                body["results"] = [{"o": o, "h": hi, "l": lo, "c": c, "v": float(v), "t": _ms(d, 0)}
                                   for d, o, hi, lo, c, v in zip(rows["date"], rows["open"], rows["high"],
                                                                  rows["low"], rows["close"], rows["volume"])]
                body["queryCount"] = body["resultsCount"] = len(body["results"])
        return 200, body, {}

    def _context_aggs(self, ticker: str, start: str, end: str, query: dict):
        """Daily bars of an index (o/h/l/c/t: Polygon's indices schema has no volume) or of a context
        ETF (the stock shape, with ``v``), ``t`` at 00:00 ET; no splits in the sample's span."""
        rows = self._context[ticker]
        rows = rows[(rows["date"] >= dt.date.fromisoformat(start)) & (rows["date"] <= dt.date.fromisoformat(end))]
        body: dict = {"ticker": ticker, "queryCount": len(rows), "resultsCount": len(rows), "status": "OK",
                      "request_id": uuid.uuid4().hex}
        index = ticker.startswith("I:")
        if not index:
            body["adjusted"] = query.get("adjusted", "true") != "false"
        if len(rows):
            body["results"] = [{"o": o, "h": hi, "l": lo, "c": c, "t": _ms(d, 0)} if index else
                               {"o": o, "h": hi, "l": lo, "c": c, "v": float(v), "t": _ms(d, 0)}
                               for d, o, hi, lo, c, v in zip(rows["date"], rows["open"], rows["high"], rows["low"],
                                                              rows["close"], rows["volume"])]
        return 200, body, {}

    def _earnings(self, query: dict):
        """Benzinga earnings rows of the sample in the filters' window, by (date, ticker), paged."""
        if not self.earnings_entitled:
            return self._forbidden(NOT_ENTITLED)
        tickers = query.get("ticker.any_of") or query.get("ticker") or ""
        filters = {"gte": query.get("date.gte") or query.get("date") or "0000-00-00",
                   "lte": query.get("date.lte") or query.get("date") or "9999-99-99",
                   "tickers": sorted(t for t in tickers.split(",") if t)}
        state = self._state(query, filters)
        if state is None:
            return self._BAD_CURSOR
        if "cursor" not in query:
            state["limit"] = min(int(query.get("limit", 100)), 50000)
        items = []
        for day, ticker in self.earnings:
            if state["gte"] <= day <= state["lte"] and (not state["tickers"] or ticker in state["tickers"]):
                item = {"ticker": ticker, "date": day}
                if (ticker, day) in self.earnings_times:
                    item["time"] = self.earnings_times[(ticker, day)]
                items.append(item)
        return self._page("/benzinga/v1/earnings", items, state)

    def _state(self, query: dict, filters: dict) -> dict | None:
        """The paging state: fresh from the query, or decoded from the opaque cursor of a next_url."""
        if "cursor" in query:
            if len(query) > 1:  # a next_url is followed as is: re-sent params are a client bug (A0)
                return None
            return json.loads(base64.urlsafe_b64decode(query["cursor"]).decode())
        return {"offset": 0, "limit": min(int(query.get("limit", 100)), 1000), **filters}

    def _page(self, path: str, items: list[dict], state: dict):
        """One page of ``items`` and, when more remain, a ``next_url`` whose cursor holds the rest."""
        size = min(state["limit"], self.page_size)
        page = items[state["offset"]: state["offset"] + size]
        body = {"status": "OK", "request_id": uuid.uuid4().hex, "count": len(page), "results": page}
        if state["offset"] + size < len(items):
            cursor = base64.urlsafe_b64encode(json.dumps({**state, "offset": state["offset"] + size}).encode())
            body["next_url"] = f"https://api.polygon.io{path}?cursor={cursor.decode()}"
        return 200, body, {}

    _BAD_CURSOR = (400, {"status": "ERROR", "error": "cursor cannot be combined with other parameters"}, {})

    def _splits(self, query: dict):
        state = self._state(query, {"since": query.get("execution_date.gte", "1900-01-01")})
        if state is None:
            return self._BAD_CURSOR
        sp = self.splits[self.splits["date"] >= dt.date.fromisoformat(state["since"])]
        if self.splits_known_through is not None:
            sp = sp[sp["date"] <= self.splits_known_through]
        sp = sp.sort_values(["date", "symbol"])
        # ratio = split_to / split_from; a reverse split is listed as from > to, as Polygon does.
        items = [{"id": f"E{i:012d}", "execution_date": str(d), "ticker": s,
                  "split_from": 1 if r >= 1 else round(1 / r, 6), "split_to": r if r >= 1 else 1}
                 for i, (s, d, r) in enumerate(zip(sp["symbol"], sp["date"], sp["ratio"]))]
        return self._page("/v3/reference/splits", items, state)

    def _tickers(self, query: dict):
        state = self._state(query, {"type": query.get("type")})
        if state is None:
            return self._BAD_CURSOR
        items = [{"ticker": r["ticker"], "name": r["name"], "market": "stocks", "locale": "us",
                  "type": r["type"], "active": True, "currency_name": "usd"}
                 for r in self.reference if state["type"] is None or r["type"] == state["type"]]
        return self._page("/v3/reference/tickers", items, state)

    def _snapshot(self, query: dict):
        if not self.snapshot_entitled:
            return self._forbidden(NOT_ENTITLED)
        wanted = [t for t in query.get("tickers", "").split(",") if t]
        day = self.snapshot_session
        rows = self._by_date.get(day)
        out = []
        if rows is not None:
            rows = rows.set_index("symbol")
            t_ns = _ms(day, 9) * 1_000_000
            for sym in wanted or list(rows.index):
                if sym not in rows.index:
                    continue
                price = float(rows.loc[sym, "open"])
                out.append({"ticker": sym, "todaysChange": 0.0, "todaysChangePerc": 0.0, "updated": t_ns,
                            "day": {}, "prevDay": {},
                            "lastTrade": {"c": [12], "i": "1", "p": price, "s": 100, "t": t_ns, "x": 4}})
        return 200, {"status": "OK", "count": len(out), "tickers": out}, {}
