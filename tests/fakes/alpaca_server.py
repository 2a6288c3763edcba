"""A stateful loopback fake of the Alpaca Trading API v2, in the vendor's documented shapes.

Served on 127.0.0.1:<free port> from a thread; the real alpaca-py talks to it through
``url_override``.  Shapes and error bodies follow /work/shared/API-NOTES.md Part B
(B2 orders and errors, B3 account/position/clock/calendar, B5 order object).

State: an account (cash; ``account_number`` paper-looking ``PA...`` by default, or a
live-looking one, or None to leave the field out), long positions, assets (``fractionable``),
a market clock that starts at ``now`` and runs with real time, the XNYS calendar
(exchange_calendars), and orders.  An order fills ``fill_delay`` seconds after it is
accepted (or after the open, if sent while closed), at ``prices[symbol]``, in full, partly
(``fill_fraction``) or not at all (``fill_fraction = 0``); symbols in ``reject_symbols`` go to ``rejected``.  Checks like
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
import datetime as dt
import json
import threading
import time
import uuid
from http.server import ThreadingHTTPServer

from .alpaca_handler import ET, OPEN_STATUSES, _Handler, _dec, _iso, _xnys  # noqa: F401  (ET: for importers)

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
                 fill_delay: float = 0.0, latency: float = 0.0, account_number: str | None = "PA3EXAMPLE01"):
        self.prices = dict(prices)
        self.account_number = account_number  # "PA..." paper (Alpaca's convention), else live; None: absent
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
        number = {} if self.account_number is None else {"account_number": self.account_number}
        return {"id": "11111111-2222-3333-4444-555555555555", **number, "status": "ACTIVE",
                "currency": "USD", "cash": _dec(round(self.cash, 2)), "buying_power": _dec(round(2 * nmbp, 2)),
                "regt_buying_power": _dec(round(2 * nmbp, 2)), "non_marginable_buying_power": _dec(round(nmbp, 2)),
                "equity": _dec(round(eq, 2)), "last_equity": _dec(round(eq, 2)), "portfolio_value": _dec(round(eq, 2)),
                "long_market_value": _dec(round(eq - self.cash, 2)), "short_market_value": "0", "multiplier": "2",
                "shorting_enabled": True, "created_at": "2020-01-01T00:00:00Z", "sma": "0",
                "transfers_blocked": False, **self.account_flags}


