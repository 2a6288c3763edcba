"""A stateful loopback fake of the Alpaca Trading API v2, in the vendor's documented shapes.

Served on 127.0.0.1:<free port> from a thread; the real alpaca-py talks to it through
``url_override``.  Shapes and error bodies follow /work/shared/API-NOTES.md Part B
(B2 orders and errors, B3 account/position/clock/calendar, B5 order object).

State: an account (cash), long positions, assets (``fractionable``), a market clock that
starts at ``now`` and runs with real time, the XNYS calendar (exchange_calendars), and
orders.  An order fills ``fill_delay`` seconds after it is accepted (or after the open, if
sent while closed), at ``prices[symbol]``, in full, partly (``fill_fraction``) or not at all
(``fill_fraction = 0``); symbols in ``reject_symbols`` go to ``rejected``.  Checks like
Alpaca's: buying power (403), qty available (403), wash trade (403), not fractionable
(422), client_order_id unique per account, also after cancel (422).

Faults: ``fault(route, status, accept=..., drop=..., times=...)`` answers a route with an
error (a POST can be *accepted* and still answered 500/504, or the connection dropped).
``on_accept(order)`` runs after an order is created and before the answer is sent (crash
tests kill the client there).  ``counts`` counts requests per route; ``posts_by_cid``
counts POSTs per client_order_id and ``closes_by_symbol`` DELETEs of positions.
Prices come from the caller (tests pass real opens from data/sample).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import datetime as dt
import json
import re
import threading
import time
import uuid
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

ET = ZoneInfo("America/New_York")
OPEN_STATUSES = {"new", "accepted", "partially_filled", "pending_new"}


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dec(x: float) -> str:
    return format(Decimal(str(round(x, 9))).normalize(), "f")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client killed mid-request (crash tests) is expected, not a server error


@dataclasses.dataclass
class Fault:
    route: str
    status: int | None
    body: str
    accept: bool
    drop: bool
    times: int
    symbol: str | None = None


class FakeAlpaca:
    """The fake server. Use as a context manager; ``url`` is the root for ``url_override``."""

    def __init__(self, prices: dict[str, float], cash: float = 100_000.0, positions: dict[str, float] | None = None,
                 now: dt.datetime | None = None, key: str = "PKFAKEKEY0000", secret: str = "fake-secret-0000",
                 fill_delay: float = 0.0, latency: float = 0.0):
        self.prices = dict(prices)
        self.cash = float(cash)
        self.positions = {s: float(q) for s, q in (positions or {}).items()}
        self.fractionable: dict[str, bool] = {}
        self.fill_delay = fill_delay
        self.fill_fraction: dict[str, float] = {}
        self.reject_symbols: set[str] = set()
        self.latency = latency
        self.key, self.secret = key, secret
        self.account_flags = {"trading_blocked": False, "account_blocked": False, "trade_suspended_by_user": False}
        self.orders: list[dict] = []
        self.counts: collections.Counter = collections.Counter()
        self.posts_by_cid: collections.Counter = collections.Counter()
        self.closes_by_symbol: collections.Counter = collections.Counter()
        self.faults: list[Fault] = []
        self.on_accept = None
        self._lock = threading.RLock()
        self._t0_market = now or dt.datetime(2021, 4, 20, 9, 35, tzinfo=ET)
        self._t0 = time.monotonic()
        self._server = None

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "FakeAlpaca":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """Environment for a ``prep`` process that trades this fake (paper)."""
        return {"ALPACA_API_KEY": self.key, "ALPACA_SECRET_KEY": self.secret, "ALPACA_BASE_URL": self.url,
                "ALPACA_PAPER": "true"}

    def fault(self, route: str, status: int | None = 500, body: str | None = None, accept: bool = False,
              drop: bool = False, times: int = 1, symbol: str | None = None) -> None:
        """Answer the next ``times`` requests of ``route`` with ``status`` (or drop the connection)."""
        body = body if body is not None else json.dumps({"code": 50010000, "message": "internal server error"})
        self.faults.append(Fault(route, status, body, accept, drop, times, symbol))

    # --- market clock ------------------------------------------------------------------------
    def now(self) -> dt.datetime:
        return self._t0_market + dt.timedelta(seconds=time.monotonic() - self._t0)

    @staticmethod
    def _calendar():
        return _xnys()

    def _hours(self, day: dt.date):
        import pandas as pd

        cal = self._calendar()
        if not cal.is_session(pd.Timestamp(day)):
            return None
        o = cal.session_open(pd.Timestamp(day)).tz_convert(ET).to_pydatetime()
        c = cal.session_close(pd.Timestamp(day)).tz_convert(ET).to_pydatetime()
        return o, c

    def _next_open_close(self, now: dt.datetime):
        day = now.date()
        opens = closes = None
        for i in range(15):
            h = self._hours(day + dt.timedelta(days=i))
            if h and closes is None and h[1] > now:
                closes = h[1]
            if h and opens is None and h[0] > now:
                opens = h[0]
            if opens and closes:
                break
        return opens, closes

    def is_open(self, now: dt.datetime | None = None) -> bool:
        now = now or self.now()
        h = self._hours(now.date())
        return bool(h and h[0] <= now < h[1])

    # --- state -------------------------------------------------------------------------------
    def held(self, symbol: str) -> float:
        return sum(float(o["qty"]) - float(o["filled_qty"]) for o in self.orders
                   if o["symbol"] == symbol and o["side"] == "sell" and o["status"] in OPEN_STATUSES)

    def reserved(self) -> float:
        total = 0.0
        for o in self.orders:
            if o["side"] == "buy" and o["status"] in OPEN_STATUSES:
                px = self.prices[o["symbol"]]
                total += (float(o["notional"]) - float(o["filled_qty"]) * px if o["notional"]
                          else (float(o["qty"]) - float(o["filled_qty"])) * px)
        return total

    def advance(self) -> None:
        """Fill (or reject) the orders whose time has come."""
        now = self.now()
        with self._lock:
            for o in self.orders:
                if o["status"] not in OPEN_STATUSES or o["_done"] or time.monotonic() < o["_fill_at"]:
                    continue
                if not self.is_open(now):
                    continue
                o["_done"] = True
                sym, px = o["symbol"], self.prices[o["symbol"]]
                if sym in self.reject_symbols:
                    o.update(status="rejected", failed_at=_iso(now), updated_at=_iso(now))
                    continue
                want = round(float(o["notional"]) / px, 9) if o["notional"] else float(o["qty"])
                frac = self.fill_fraction.get(sym, 1.0)
                qty = round(want * frac, 9)
                if o["side"] == "sell":
                    qty = min(qty, self.positions.get(sym, 0.0))
                if qty <= 0:
                    o.update(status="new", updated_at=_iso(now))
                    continue
                cost = round(float(o["notional"]) * frac, 2) if o["notional"] else round(qty * px, 2)
                if o["side"] == "buy":
                    self.cash = round(self.cash - cost, 2)
                    self.positions[sym] = round(self.positions.get(sym, 0.0) + qty, 9)
                else:
                    self.cash = round(self.cash + cost, 2)
                    self.positions[sym] = round(self.positions[sym] - qty, 9)
                    if self.positions[sym] <= 1e-9:
                        del self.positions[sym]
                o.update(filled_qty=_dec(qty), filled_avg_price=_dec(px), updated_at=_iso(now),
                         status="filled" if frac >= 1 else "partially_filled",
                         filled_at=_iso(now) if frac >= 1 else None)

    def equity(self) -> float:
        return self.cash + sum(q * self.prices[s] for s, q in self.positions.items())

    def create_order(self, symbol: str, side: str, qty: float | None, notional: float | None, cid: str) -> dict:
        now = self.now()
        fill_at = time.monotonic() + self.fill_delay
        if not self.is_open(now):
            opens, _ = self._next_open_close(now)
            fill_at += (opens - now).total_seconds()
        o = {"id": str(uuid.uuid4()), "client_order_id": cid, "created_at": _iso(now), "updated_at": _iso(now),
             "submitted_at": _iso(now), "filled_at": None, "expired_at": None, "canceled_at": None,
             "failed_at": None, "replaced_at": None, "replaced_by": None, "replaces": None,
             "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)), "symbol": symbol, "asset_class": "us_equity",
             "notional": None if notional is None else _dec(notional), "qty": None if qty is None else _dec(qty),
             "filled_qty": "0", "filled_avg_price": None, "order_class": "", "order_type": "market",
             "type": "market", "side": side, "time_in_force": "day", "limit_price": None, "stop_price": None,
             "status": "accepted" if not self.is_open(now) else "new", "extended_hours": False, "legs": None,
             "trail_percent": None, "trail_price": None, "hwm": None, "_fill_at": fill_at, "_done": False}
        self.orders.append(o)
        return o

    def public(self, o: dict) -> dict:
        return {k: v for k, v in o.items() if not k.startswith("_")}

    def position_json(self, sym: str) -> dict:
        qty, px = self.positions[sym], self.prices[sym]
        return {"asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, sym)), "symbol": sym, "exchange": "NYSE",
                "asset_class": "us_equity", "avg_entry_price": _dec(px), "qty": _dec(qty),
                "qty_available": _dec(qty - self.held(sym)), "side": "long", "market_value": _dec(round(qty * px, 2)),
                "cost_basis": _dec(round(qty * px, 2)), "unrealized_pl": "0", "unrealized_plpc": "0",
                "current_price": _dec(px), "lastday_price": _dec(px), "change_today": "0"}

    def account_json(self) -> dict:
        nmbp = max(self.cash - self.reserved(), 0.0)
        eq = self.equity()
        return {"id": "11111111-2222-3333-4444-555555555555", "account_number": "PA0FAKE", "status": "ACTIVE",
                "currency": "USD", "cash": _dec(round(self.cash, 2)), "buying_power": _dec(round(2 * nmbp, 2)),
                "regt_buying_power": _dec(round(2 * nmbp, 2)), "non_marginable_buying_power": _dec(round(nmbp, 2)),
                "equity": _dec(round(eq, 2)), "last_equity": _dec(round(eq, 2)), "portfolio_value": _dec(round(eq, 2)),
                "long_market_value": _dec(round(eq - self.cash, 2)), "short_market_value": "0", "multiplier": "2",
                "shorting_enabled": True, "created_at": "2020-01-01T00:00:00Z", "sma": "0",
                "transfers_blocked": False, **self.account_flags}


@functools.lru_cache(maxsize=1)
def _xnys():
    import exchange_calendars as xcals

    return xcals.get_calendar("XNYS", start="2019-01-01", end="2029-12-31")


_ERR = lambda code, msg: json.dumps({"code": code, "message": msg})  # noqa: E731


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAlpaca
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, status: int, body=None) -> None:
        data = b"" if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _route(self, method: str, path: str) -> tuple[str, str | None]:
        for name, m, pattern in ROUTES:
            if m == method and (hit := re.fullmatch(pattern, path)):
                return name, (hit.group(1) if hit.groups() else None)
        return "unknown", None

    def _dispatch(self, method: str) -> None:
        f = self.fake
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        route, arg = self._route(method, url.path)
        body = {}
        if method == "POST":
            n = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(n) or b"{}")
        if f.latency:
            time.sleep(f.latency)  # the network's round trip, simulated
        with f._lock:
            f.counts[route] += 1
            if route == "orders_post":
                f.posts_by_cid[body.get("client_order_id")] += 1
            if route == "close_position":
                f.closes_by_symbol[arg] += 1
            if (self.headers.get("APCA-API-KEY-ID") != f.key or self.headers.get("APCA-API-SECRET-KEY") != f.secret):
                return self._send(401, _ERR(40110000, "request is not authorized"))
            symbol = body.get("symbol") if route == "orders_post" else arg
            fault = next((x for x in f.faults if x.route == route and x.times > 0
                          and (x.symbol is None or x.symbol == symbol)), None)
            if fault:
                fault.times -= 1
                if not fault.accept:
                    return self._fail(fault)
            f.advance()
            status, payload = getattr(self, "r_" + route, self.r_unknown)(arg, query, body)
        if fault:
            return self._fail(fault)
        self._send(status, payload)

    def _fail(self, fault: Fault) -> None:
        if fault.drop:
            self.close_connection = True  # no status line at all: the client sees a dropped connection
            return
        self._send(fault.status, fault.body)

    # --- routes ------------------------------------------------------------------------------
    def r_unknown(self, arg, q, b):
        return 404, _ERR(40410000, "endpoint not found")

    def r_account(self, arg, q, b):
        return 200, self.fake.account_json()

    def r_positions(self, arg, q, b):
        return 200, [self.fake.position_json(s) for s in sorted(self.fake.positions)]

    def r_position(self, arg, q, b):
        if arg not in self.fake.positions:
            return 404, _ERR(40410000, "position does not exist")
        return 200, self.fake.position_json(arg)

    def r_asset(self, arg, q, b):
        if arg not in self.fake.prices:
            return 404, _ERR(40410000, f"asset not found for {arg}")
        return 200, {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, arg)), "class": "us_equity", "exchange": "NYSE",
                     "symbol": arg, "name": arg, "status": "active", "tradable": True, "marginable": True,
                     "shortable": True, "easy_to_borrow": True, "fractionable": self.fake.fractionable.get(arg, True)}

    def r_clock(self, arg, q, b):
        now = self.fake.now().astimezone(ET)
        opens, closes = self.fake._next_open_close(now)
        return 200, {"timestamp": now.isoformat(), "is_open": self.fake.is_open(now),
                     "next_open": opens.isoformat(), "next_close": closes.isoformat()}

    def r_calendar(self, arg, q, b):
        start, end = dt.date.fromisoformat(q["start"]), dt.date.fromisoformat(q["end"])
        out, day = [], start
        while day <= end:
            h = self.fake._hours(day)
            if h:
                out.append({"date": day.isoformat(), "open": h[0].strftime("%H:%M"), "close": h[1].strftime("%H:%M"),
                            "session_open": "0400", "session_close": "2000", "settlement_date": day.isoformat()})
            day += dt.timedelta(days=1)
        return 200, out

    def r_orders_list(self, arg, q, b):
        status = q.get("status", "open")
        symbols = set(q["symbols"].split(",")) if q.get("symbols") else None
        after = dt.datetime.fromisoformat(q["after"].replace("Z", "+00:00")) if q.get("after") else None
        out = []
        for o in reversed(self.fake.orders):
            is_open = o["status"] in OPEN_STATUSES
            if (status == "open" and not is_open) or (status == "closed" and is_open):
                continue
            if symbols and o["symbol"] not in symbols:
                continue
            if q.get("side") and o["side"] != q["side"]:
                continue
            if after and dt.datetime.fromisoformat(o["submitted_at"].replace("Z", "+00:00")) <= after:
                continue
            out.append(self.fake.public(o))
        return 200, out[: min(int(q.get("limit", 50)), 500)]

    def r_order_by_cid(self, arg, q, b):
        o = next((o for o in self.fake.orders if o["client_order_id"] == q.get("client_order_id")), None)
        return (200, self.fake.public(o)) if o else (404, _ERR(40410000, "order not found"))

    def r_order_get(self, arg, q, b):
        o = next((o for o in self.fake.orders if o["id"] == arg), None)
        return (200, self.fake.public(o)) if o else (404, _ERR(40410000, "order not found"))

    def r_order_cancel(self, arg, q, b):
        o = next((o for o in self.fake.orders if o["id"] == arg), None)
        if o is None:
            return 404, _ERR(40410000, "order not found")
        if o["status"] not in OPEN_STATUSES:
            return 422, _ERR(42210000, f"order is already in \"{o['status']}\" state")
        now = _iso(self.fake.now())
        o.update(status="canceled", canceled_at=now, updated_at=now, _done=True)
        return 204, None

    def r_orders_post(self, arg, q, b):
        f = self.fake
        sym, side, cid = b.get("symbol"), b.get("side"), b.get("client_order_id") or str(uuid.uuid4())
        qty = float(b["qty"]) if b.get("qty") is not None else None
        notional = float(b["notional"]) if b.get("notional") is not None else None
        if any(o["client_order_id"] == cid for o in f.orders):
            return 422, _ERR(40010001, "client_order_id must be unique")
        if sym not in f.prices:
            return 422, _ERR(40010001, f"asset \"{sym}\" not found")
        if (qty is None) == (notional is None):
            return 400, _ERR(40010001, "qty or notional is required")
        if not f.fractionable.get(sym, True) and (notional is not None or qty != int(qty)):
            return 422, _ERR(42210000, "requested asset is not fractionable")
        if any(o["symbol"] == sym and o["side"] != side and o["status"] in OPEN_STATUSES for o in f.orders):
            return 403, _ERR(40310000, "potential wash trade detected. use complex orders")
        if side == "buy":
            cost = notional if notional is not None else qty * f.prices[sym]
            if cost > f.cash - f.reserved() + 1e-6:
                return 403, json.dumps({"code": 40310000, "message": "insufficient buying power",
                                        "buying_power": _dec(round(f.cash - f.reserved(), 2))})
        else:
            available = f.positions.get(sym, 0.0) - f.held(sym)
            if qty is None or qty > available + 1e-9:
                return 403, _ERR(40310000, f"insufficient qty available for order (requested: {qty}, "
                                           f"available: {_dec(max(available, 0))})")
        o = f.create_order(sym, side, qty, notional, cid)
        if f.on_accept:
            f.on_accept(o)
        return 200, f.public(o)

    def r_close_position(self, arg, q, b):
        f = self.fake
        if arg not in f.positions:
            return 404, _ERR(40410000, "position not found")
        available = f.positions[arg] - f.held(arg)
        qty = f.positions[arg] * float(q["percentage"]) / 100 if q.get("percentage") else float(q.get("qty", f.positions[arg]))
        if qty > available + 1e-9 or available <= 0:
            return 403, _ERR(40310000, f"insufficient qty available for order (requested: {_dec(qty)}, "
                                       f"available: {_dec(max(available, 0))})")
        if any(o["symbol"] == arg and o["side"] == "buy" and o["status"] in OPEN_STATUSES for o in f.orders):
            return 403, _ERR(40310000, "potential wash trade detected. use complex orders")
        o = f.create_order(arg, "sell", round(qty, 9), None, str(uuid.uuid4()))
        if f.on_accept:
            f.on_accept(o)
        return 200, f.public(o)


ROUTES = [
    ("account", "GET", r"/v2/account"),
    ("positions", "GET", r"/v2/positions"),
    ("position", "GET", r"/v2/positions/([A-Z.]+)"),
    ("close_position", "DELETE", r"/v2/positions/([A-Z.]+)"),
    ("asset", "GET", r"/v2/assets/([A-Z.]+)"),
    ("clock", "GET", r"/v2/clock"),
    ("calendar", "GET", r"/v2/calendar"),
    ("order_by_cid", "GET", r"/v2/orders:by_client_order_id"),
    ("orders_list", "GET", r"/v2/orders"),
    ("orders_post", "POST", r"/v2/orders"),
    ("order_get", "GET", r"/v2/orders/([0-9a-f-]+)"),
    ("order_cancel", "DELETE", r"/v2/orders/([0-9a-f-]+)"),
]
