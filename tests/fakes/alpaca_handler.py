"""HTTP side of the fake Alpaca Trading API: routes, error bodies (API-NOTES B2/B4) and helpers.

The state and its rules live in ``alpaca_server.FakeAlpaca``; each route reads or changes
it under its lock.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import time
import uuid
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from .alpaca_server import FakeAlpaca, Fault

ET = ZoneInfo("America/New_York")
OPEN_STATUSES = {"new", "accepted", "partially_filled", "pending_new"}


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dec(x: float) -> str:
    return format(Decimal(str(round(x, 9))).normalize(), "f")


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
