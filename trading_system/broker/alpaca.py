"""The Alpaca broker: alpaca-py 0.44's ``TradingClient`` behind the ``Broker`` protocol.

Facts this module relies on are in API-NOTES.md Part B (each with its source):

* ``paper`` is passed explicitly: paper unless ``ALPACA_PAPER=false``; a live account also
  needs ``--live`` (B1).  ``ALPACA_BASE_URL`` becomes ``url_override``: the root, without ``/v2``.
  Paper or live is decided by what the run talks to, not by the default URL alone (DESIGN §1):
  Alpaca's live host needs both switches, its paper host refuses them, and the account itself
  is checked to be the kind the switches name before any order (``AlpacaBroker.get_account``).
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
import json
from decimal import Decimal, InvalidOperation
from typing import Any, overload

import requests
import tenacity

from trading_system.alpaca_http import add_timeout
from trading_system.broker.alpaca_env import LIVE_URL, PAPER_URL, credentials_from_env
from trading_system.broker.base import (
    Account,
    MarketClock,
    Order,
    OrderRejected,
    OrderRequest,
    OrderUncertain,
    Position,
)
from trading_system.errors import BadInputError, BrokerError
from trading_system.sessions import ET

PAPER_ACCOUNT_PREFIX = "PA"  # see AlpacaBroker._check_account_kind for where this comes from


@overload
def _num(value: object, default: float = 0.0) -> float: ...
@overload
def _num(value: object, default: None) -> float | None: ...
def _num(value: object, default: float | None = 0.0) -> float | None:
    """A money or quantity string of the API ("12.5", "0.512345678", None) as a float."""
    if value is None or value == "":
        return default
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        raise BrokerError(f"the broker sent {value!r} where a number was expected; "
                          "check the broker's status page.") from None


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


class AlpacaBroker:
    """A ``Broker`` over the Alpaca Trading API v2 (alpaca-py 0.44 ``TradingClient``).

    Reads are retried ``read_attempts`` times (exponential back-off from ``retry_wait`` s);
    ``submit_order`` sends exactly one request and raises ``OrderRejected`` (nothing placed)
    or ``OrderUncertain`` (maybe placed: look it up); the execution loop sends an order at
    most ``submit_attempts`` times, each after a lookup found nothing.  Every request times out after
    ``timeout`` seconds (connect: ``connect_timeout``).

    The account must be the kind ``paper`` names: every ``get_account`` checks its number
    (``_check_account_kind``), and no order is sent or canceled before one such check passed.
    """

    name = "alpaca"
    has_clock = True

    def __init__(self, api_key: str, secret_key: str, paper: bool = True, url_override: str | None = None,
                 timeout: float = 10.0, connect_timeout: float = 5.0, read_attempts: int = 4,
                 retry_wait: float = 0.5, submit_attempts: int = 3):
        from alpaca.trading.client import TradingClient

        self.paper = paper
        self.submit_attempts, self.retry_wait = submit_attempts, retry_wait  # execution's send-once loop (Broker)
        self.client = TradingClient(api_key=api_key, secret_key=secret_key, paper=paper, url_override=url_override)
        self.client._retry = 0  # alpaca-py's own retry resends POSTs on 504 (API-NOTES B4): off
        add_timeout(self.client, connect_timeout, timeout)  # alpaca-py sets none (API-NOTES B1)
        self.base_url = url_override or (PAPER_URL if paper else LIVE_URL)
        self._account_checked = False  # set by the first account read whose kind matched ``paper``
        self._retrying = tenacity.Retrying(  # a template: each call runs a copy()
            retry=tenacity.retry_if_exception(_transient),
            stop=tenacity.stop_after_attempt(read_attempts),
            wait=tenacity.wait_exponential(multiplier=retry_wait, max=8.0),
            reraise=True,
        )

    # --- the one retry and error-translation path of every request but a submission ------------
    def _call(self, fn, *args, failed: str, unanswered: str, advice: str = "", keys: bool = False,
              ok: tuple[int, ...] = ()) -> Any:
        """``fn(*args)``, retried on network errors, timeouts, 429 and 5xx (``_transient``); ``None``
        when the broker answers with an HTTP status in ``ok`` (e.g. 404: no such order).

        Raises:
            BrokerError: the broker refused (``"{failed} (HTTP {status}: {message})."``; with
                ``keys``, a 401 says the keys were refused ``unanswered``), or did not answer
                after the retries (``"Alpaca did not answer {unanswered} ({exception}){advice}."``).
        """
        from alpaca.common.exceptions import APIError

        try:
            return self._retrying.copy()(fn, *args)
        except APIError as exc:
            if ok and exc.status_code in ok:
                return None
            status, _, message = error_fields(exc)
            if keys and status == 401:
                raise BrokerError(f"Alpaca refused the keys {unanswered} (HTTP 401: {message}); "
                                  "paper and live keys differ: check ALPACA_API_KEY/ALPACA_PAPER.") from None
            raise BrokerError(f"{failed} (HTTP {status}: {message}).") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise BrokerError(f"Alpaca did not answer {unanswered} ({exc.__class__.__name__}){advice}.") from None

    # --- reads ---------------------------------------------------------------------------------
    def _read(self, what: str, fn, *args) -> Any:
        """``fn(*args)`` through ``_call``, its failures worded as a failed read of ``what``."""
        return self._call(fn, *args, failed=f"Alpaca failed to return {what}", unanswered=f"while reading {what}",
                          advice="; check the network and status.alpaca.markets", keys=True)

    def get_account(self) -> Account:
        """Cash, equity and cash available (dollars) and the blocked flags, in one ``GET /v2/account``.

        The same answer's ``account_number`` is checked against ``paper`` first, so the check
        costs no request of its own.

        Raises:
            BadInputError: the account is not the kind the switches name, or has no number (exit 2).
            BrokerError: Alpaca refused the keys or did not answer.
        """
        from alpaca.trading.models import TradeAccount

        raw = self._read("the account", self.client.get, "/account")  # what client.get_account parses
        self._check_account_kind(raw.get("account_number") if isinstance(raw, dict) else None)
        a = TradeAccount(**raw)
        return Account(cash=_num(a.cash), equity=_num(a.equity),
                       cash_available=_num(a.non_marginable_buying_power, _num(a.cash)),
                       trading_blocked=bool(a.trading_blocked) or bool(a.trade_suspended_by_user),
                       account_blocked=bool(a.account_blocked))

    def _check_account_kind(self, number) -> None:
        """Refuse an account that is not the kind ``self.paper`` names; mark it checked otherwise.

        Rule: Alpaca paper account numbers start with ``PA``; a live account's does not.  Alpaca
        documents no such rule; it is an observed convention.  Best sources found: Alpaca's own
        getting-started guide shows a paper client (``TradingClient(..., paper=True)``) answering
        ``"account_number": PA3717PJAYWN`` (github.com/alpacahq/alpaca-docs,
        content/trading/getting-started.md, commit a44b596, 2022-09-26), and the Trading API
        OpenAPI spec's ``GET /v2/account`` example is ``"PALPACA_123"`` while its schema says only
        "Account number." (github.com/alpacahq/alpaca-mcp-server,
        src/alpaca_mcp_server/specs/trading-api.json, 2026-06-29).  Should Alpaca ever number a
        live account ``PA...``, a paper run against it would pass this check; the host rule of
        ``credentials_from_env`` and the separate paper/live keys still stand.

        Raises:
            BadInputError: a paper run on a live-looking account, a live run on a paper one, or
                no account number at all (exit 2; no order is sent).
        """
        self._account_checked = False
        number = str(number or "").strip()
        if not number:
            raise BadInputError("Alpaca's account answer has no account number, so prep cannot tell paper from live "
                                "and sends no order: check that ALPACA_BASE_URL points at Alpaca's Trading API.")
        is_paper = number.startswith(PAPER_ACCOUNT_PREFIX)
        if self.paper and not is_paper:
            raise BadInputError("the keys reach a live (real-money) Alpaca account (its number does not start with "
                                "PA) but this run expects paper, so no order is sent: use paper keys, or set "
                                "ALPACA_PAPER=false and add --live to trade it.")
        if not self.paper and is_paper:
            raise BadInputError("ALPACA_PAPER=false and --live ask for a live account but the keys reach a paper "
                                "account (its number starts with PA), so no order is sent: use live keys, or unset "
                                "ALPACA_PAPER and drop --live for paper.")
        self._account_checked = True

    def _require_checked_account(self) -> None:
        """Read (and so check) the account unless a read already did: writes never go first."""
        if not self._account_checked:
            self.get_account()

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
        raw = self._call(self.client.get_order_by_client_id, client_order_id, ok=(404,),
                         failed=f"Alpaca failed to look up order {client_order_id}",
                         unanswered=f"the lookup of order {client_order_id}", advice="; run 'prep execute' again later")
        return None if raw is None else self._order(raw)

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

        The account's kind is checked first if no account read has checked it yet (in a run,
        ``rebalance`` reads the account before any order, so this costs nothing).

        Raises:
            BadInputError / BrokerError: the account check failed or could not be made: nothing sent.
            OrderRejected: the broker refused it (403, 422, 404 ...): nothing was placed.
            OrderUncertain: timeout, dropped connection, 429 or 5xx: it may have landed.
        """
        from alpaca.common.exceptions import APIError
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        self._require_checked_account()
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
        """Cancel an open order; one that filled or was canceled meanwhile (422) is left alone.

        Raises:
            BadInputError / BrokerError: the account check failed (see ``submit_order``), or the
                cancel was refused or not answered.
        """
        self._require_checked_account()
        self._call(self.client.cancel_order_by_id, order_id, ok=(404, 422),
                   failed=f"Alpaca did not cancel order {order_id}", unanswered=f"the cancel of order {order_id}")

    @staticmethod
    def _order(o) -> Order:
        def val(x):
            return None if x is None else str(getattr(x, "value", x))

        return Order(id=str(o.id), client_order_id=o.client_order_id, symbol=o.symbol, side=val(o.side),
                     status=val(o.status), qty=_num(o.qty, None), notional=_num(o.notional, None),
                     filled_qty=_num(o.filled_qty), filled_avg_price=_num(o.filled_avg_price, None),
                     submitted_at=o.submitted_at)


def make_alpaca_broker(cfg, live: bool, environ) -> AlpacaBroker:
    """An ``AlpacaBroker`` from ``broker.alpaca`` settings and the environment (see ``credentials_from_env``).

    No request is made here: the account's kind (paper or live, as the switches name it) is
    checked at the broker's first account read, which ``rebalance`` and ``prep status`` make
    first (also through ``DryRunBroker``); a write sent before any read makes that read first.

    Raises:
        ConfigError / BadInputError: as ``credentials_from_env`` (nothing sent).
    """
    a = cfg.broker.alpaca
    return AlpacaBroker(**credentials_from_env(live, environ), timeout=a.timeout_seconds,
                        connect_timeout=a.connect_timeout_seconds, read_attempts=a.read_attempts,
                        retry_wait=a.retry_wait_seconds, submit_attempts=a.submit_attempts)
