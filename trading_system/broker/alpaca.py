"""The Alpaca broker: alpaca-py 0.44's ``TradingClient`` behind the ``Broker`` protocol.

Facts this module relies on are in API-NOTES.md Part B (each with its source):

* ``paper`` is passed explicitly: paper unless ``ALPACA_PAPER=false``; a live account also
  needs ``--live`` (B1).  ``ALPACA_BASE_URL`` becomes ``url_override``: the root, without ``/v2``.
* alpaca-py sets no HTTP timeout, so the session's ``request`` is wrapped with one (B1).
* alpaca-py retries 429 and 504 by itself, POST included, with a fixed 3 s sleep (B4).  A
  POST retried after a 504 whose order had landed would come back as a duplicate, so its own
  retry is switched off (``_retry = 0``): reads are retried here with tenacity, and a
  submission is never resent before a lookup by client_order_id found nothing.
* Money and quantities arrive as strings: converted through ``Decimal`` (B2, B3).
* ``APIError.code``/``.message`` raise on a non-JSON body (an HTML 403, an empty 502): the
  body is parsed defensively (B4).
* Buys may spend ``non_marginable_buying_power`` (cash, no margin) (B3).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import requests
import tenacity

from ..errors import BadInputError, BrokerError, ConfigError
from .base import Account, MarketClock, Order, OrderRejected, OrderRequest, OrderUncertain, Position

ET = ZoneInfo("America/New_York")
PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"


def _num(value, default: float | None = 0.0) -> float | None:
    """A money or quantity string of the API ("12.5", "0.512345678", None) as a float."""
    if value is None or value == "":
        return default
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        raise BrokerError(f"the broker sent {value!r} where a number was expected; check the broker's status page.")


def error_fields(exc: Exception) -> tuple[int | None, int | None, str]:
    """(HTTP status, broker code, message) of an alpaca-py ``APIError``, whatever its body.

    The body is usually ``{"code": 40310000, "message": "..."}`` but may be HTML or empty.
    """
    status = getattr(exc, "status_code", None)
    text = str(exc).strip()
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = body.get("code") if isinstance(body.get("code"), int) else None
        return status, code, str(body.get("message") or text)[:300]
    reason = getattr(getattr(exc, "response", None), "reason", None)
    return status, None, (" ".join(text.split())[:120] or reason or f"HTTP {status}")


def rejection_kind(status: int | None, message: str) -> str:
    """Classify a refused order by its message (matched loosely: wording varies, API-NOTES B2)."""
    m = message.lower()
    if "unique" in m and "client" in m:
        return "duplicate"
    if "wash trade" in m:
        return "wash_trade"
    if "fractionable" in m:
        return "not_fractionable"
    if "buying power" in m:
        return "buying_power"
    if "qty available" in m or "insufficient qty" in m:
        return "qty_available"
    if status == 404 or "position not found" in m or "position does not exist" in m:
        return "no_position"
    return "rejected"


def _transient(exc: BaseException) -> bool:
    """Worth retrying a READ: network errors, timeouts, 429 and 5xx."""
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return True
    status = getattr(exc, "status_code", None)
    return status is not None and (status == 429 or status >= 500)


def credentials_from_env(live: bool, environ) -> dict:
    """Keys, paper flag and base URL from the environment (never from config.yaml).

    Raises:
        ConfigError: keys missing, or ``ALPACA_PAPER`` not ``true``/``false``.
        BadInputError: a live account without ``--live`` (exit 2, nothing sent).
    """
    key = (environ.get("ALPACA_API_KEY") or "").strip()
    secret = (environ.get("ALPACA_SECRET_KEY") or "").strip()
    if not key or not secret:
        raise ConfigError("ALPACA_API_KEY and ALPACA_SECRET_KEY must be set (environment or .env) for broker alpaca.")
    paper_text = (environ.get("ALPACA_PAPER") or "true").strip().lower()
    if paper_text not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"ALPACA_PAPER must be true or false, not {paper_text!r}.")
    paper = paper_text in ("true", "1", "yes")
    if not paper and not live:
        raise BadInputError("ALPACA_PAPER=false selects a live (real-money) account: "
                            "add --live to trade it, or unset ALPACA_PAPER for paper.")
    base = (environ.get("ALPACA_BASE_URL") or "").strip().rstrip("/")
    if base.endswith("/v2"):
        base = base[:-3]  # alpaca-py appends /v2 itself
    return {"api_key": key, "secret_key": secret, "paper": paper, "url_override": base or None}


class AlpacaBroker:
    """A ``Broker`` over the Alpaca Trading API v2 (alpaca-py 0.44 ``TradingClient``).

    Reads are retried ``read_attempts`` times (exponential back-off from ``retry_wait`` s);
    ``submit_order`` sends exactly one request and raises ``OrderRejected`` (nothing placed)
    or ``OrderUncertain`` (maybe placed: look it up); the execution loop sends an order at
    most ``submit_attempts`` times, each after a lookup found nothing.  Every request times out after
    ``timeout`` seconds (connect: ``connect_timeout``).
    """

    name = "alpaca"

    def __init__(self, api_key: str, secret_key: str, paper: bool = True, url_override: str | None = None,
                 timeout: float = 10.0, connect_timeout: float = 5.0, read_attempts: int = 4,
                 retry_wait: float = 0.5, submit_attempts: int = 3):
        from alpaca.trading.client import TradingClient

        self.paper = paper
        self.submit_attempts, self.retry_wait = submit_attempts, retry_wait  # read by execution's send-once loop
        self.client = TradingClient(api_key=api_key, secret_key=secret_key, paper=paper, url_override=url_override)
        self.client._retry = 0  # alpaca-py's own retry resends POSTs on 504 (API-NOTES B4): off
        session = self.client._session
        session.request = functools.partial(session.request, timeout=(connect_timeout, timeout))
        self.base_url = url_override or (PAPER_URL if paper else LIVE_URL)
        self._retrying = dict(
            retry=tenacity.retry_if_exception(_transient),
            stop=tenacity.stop_after_attempt(read_attempts),
            wait=tenacity.wait_exponential(multiplier=retry_wait, max=8.0),
            reraise=True,
        )

    # --- reads ---------------------------------------------------------------------------------
    def _read(self, what: str, fn, *args):
        from alpaca.common.exceptions import APIError

        try:
            return tenacity.Retrying(**self._retrying)(fn, *args)
        except APIError as exc:
            status, code, message = error_fields(exc)
            if status == 401:
                raise BrokerError(f"Alpaca refused the keys while reading {what} (HTTP 401: {message}); "
                                  "paper and live keys differ: check ALPACA_API_KEY/ALPACA_PAPER.") from None
            raise BrokerError(f"Alpaca failed to return {what} (HTTP {status}: {message}).") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise BrokerError(f"Alpaca did not answer while reading {what} ({exc.__class__.__name__}); "
                              "check the network and status.alpaca.markets.") from None

    def get_account(self) -> Account:
        a = self._read("the account", self.client.get_account)
        return Account(cash=_num(a.cash), equity=_num(a.equity),
                       cash_available=_num(a.non_marginable_buying_power, _num(a.cash)),
                       trading_blocked=bool(a.trading_blocked) or bool(a.trade_suspended_by_user),
                       account_blocked=bool(a.account_blocked))

    def get_positions(self) -> dict[str, Position]:
        out = {}
        for p in self._read("the positions", self.client.get_all_positions):
            qty = _num(p.qty)
            if qty < 0 or str(getattr(p.side, "value", p.side)) == "short":
                raise BrokerError(f"the account holds a short position in {p.symbol}; prep trades long only: "
                                  "close it at the broker first.")
            out[p.symbol] = Position(symbol=p.symbol, qty=qty, market_value=_num(p.market_value),
                                     price=_num(p.current_price), qty_available=_num(p.qty_available, qty))
        return out

    def _list(self, status: str, symbols: list[str] | None = None, after: dt.datetime | None = None) -> list[Order]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        req = GetOrdersRequest(status=QueryOrderStatus(status), limit=500, symbols=symbols or None, after=after)
        return [self._order(o) for o in self._read("the orders", self.client.get_orders, req)]

    def get_open_orders(self) -> list[Order]:
        return self._list("open")

    def list_orders(self, symbols: list[str], after: dt.datetime | None = None) -> list[Order]:
        if not symbols:
            return []
        return self._list("all", sorted(set(symbols)), after)

    def get_orders(self, client_order_ids: list[str]) -> list[Order]:
        return [o for o in (self.get_order_by_client_id(c) for c in client_order_ids) if o is not None]

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        from alpaca.common.exceptions import APIError

        try:
            return self._order(tenacity.Retrying(**self._retrying)(self.client.get_order_by_client_id, client_order_id))
        except APIError as exc:
            if exc.status_code == 404:
                return None
            status, _, message = error_fields(exc)
            raise BrokerError(f"Alpaca failed to look up order {client_order_id} (HTTP {status}: {message}).") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise BrokerError(f"Alpaca did not answer the lookup of order {client_order_id} "
                              f"({exc.__class__.__name__}); run 'prep execute' again later.") from None

    def market_clock(self) -> MarketClock:
        c = self._read("the market clock", self.client.get_clock)
        return MarketClock(now=c.timestamp.astimezone(ET), is_open=bool(c.is_open),
                           next_open=c.next_open.astimezone(ET), next_close=c.next_close.astimezone(ET))

    def session_hours(self, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        from alpaca.trading.requests import GetCalendarRequest

        days = self._read("the calendar", self.client.get_calendar, GetCalendarRequest(start=day, end=day))
        for d in days:
            if d.date == day:  # alpaca-py parses open/close as naive ET wall-clock times (API-NOTES B3)
                return d.open.replace(tzinfo=ET), d.close.replace(tzinfo=ET)
        return None

    def fractionable(self, symbols: list[str]) -> dict[str, bool]:
        return {s: bool(self._read(f"asset {s}", self.client.get_asset, s).fractionable) for s in sorted(set(symbols))}

    # --- writes --------------------------------------------------------------------------------
    def submit_order(self, request: OrderRequest) -> Order:
        """Send one DAY market order (or a ``close_position``) in ONE request; never retried here.

        Raises:
            OrderRejected: the broker refused it (403, 422, 404 ...): nothing was placed.
            OrderUncertain: timeout, dropped connection, 429 or 5xx: it may have landed.
        """
        from alpaca.common.exceptions import APIError
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        try:
            if request.close_position:
                raw = self.client.close_position(request.symbol)
            else:
                raw = self.client.submit_order(MarketOrderRequest(
                    symbol=request.symbol, side=OrderSide(request.side), time_in_force=TimeInForce.DAY,
                    client_order_id=request.client_order_id,
                    qty=None if request.qty is None else round(request.qty, 9),
                    notional=None if request.notional is None else round(request.notional, 2)))
        except APIError as exc:
            status, code, message = error_fields(exc)
            if status is not None and (status == 429 or status >= 500):
                raise OrderUncertain(f"HTTP {status}: {message}") from None
            raise OrderRejected(f"HTTP {status}: {message}", status, code, rejection_kind(status, message)) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise OrderUncertain(f"{exc.__class__.__name__} while sending") from None
        return self._order(raw)

    def cancel_order(self, order_id: str) -> None:
        """Cancel an open order; one that filled or was canceled meanwhile (422) is left alone."""
        from alpaca.common.exceptions import APIError

        try:
            tenacity.Retrying(**self._retrying)(self.client.cancel_order_by_id, order_id)
        except APIError as exc:
            if exc.status_code in (404, 422):
                return
            status, _, message = error_fields(exc)
            raise BrokerError(f"Alpaca did not cancel order {order_id} (HTTP {status}: {message}).") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise BrokerError(f"Alpaca did not answer the cancel of order {order_id} ({exc.__class__.__name__}).") from None

    @staticmethod
    def _order(o) -> Order:
        def val(x):
            return None if x is None else str(getattr(x, "value", x))

        return Order(id=str(o.id), client_order_id=o.client_order_id, symbol=o.symbol, side=val(o.side),
                     status=val(o.status), qty=_num(o.qty, None), notional=_num(o.notional, None),
                     filled_qty=_num(o.filled_qty), filled_avg_price=_num(o.filled_avg_price, None),
                     submitted_at=o.submitted_at)


def make_alpaca_broker(cfg, live: bool, environ) -> AlpacaBroker:
    """An ``AlpacaBroker`` from ``broker.alpaca`` settings and the environment (see ``credentials_from_env``)."""
    a = cfg.broker.alpaca
    return AlpacaBroker(**credentials_from_env(live, environ), timeout=a.timeout_seconds,
                        connect_timeout=a.connect_timeout_seconds, read_attempts=a.read_attempts,
                        retry_wait=a.retry_wait_seconds, submit_attempts=a.submit_attempts)
