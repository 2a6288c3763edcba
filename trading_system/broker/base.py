"""The broker boundary: a small protocol and the value types that cross it.

Money is in dollars (float, rounded to cents where it is sent), quantities in shares
(float, fractional to 9 dp).  Implementations: ``simulated.SimulatedBroker`` (offline,
flat-file account), ``dryrun.DryRunBroker`` (wraps any broker; reads pass through,
submissions are recorded and never sent) and ``alpaca.AlpacaBroker`` (alpaca-py over HTTP).

Every feature the code uses is declared on ``Broker`` below, so no caller sniffs for one:
an offline broker answers "I have none" (``has_clock`` False, ``session_hours`` None,
``fractionable`` {} meaning every asset is).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Literal, Protocol, runtime_checkable

from trading_system.errors import BrokerError

Side = Literal["buy", "sell"]

#: Statuses after which an order changes no more (Alpaca's terminal set, DESIGN §7, API-NOTES B2).
TERMINAL_STATUSES = frozenset({"filled", "canceled", "expired", "rejected", "replaced", "done_for_day", "dry_run"})


@dataclasses.dataclass(frozen=True)
class Account:
    """Account snapshot. ``cash_available`` is what buys may spend (no margin), dollars."""

    cash: float
    equity: float
    cash_available: float
    trading_blocked: bool = False
    account_blocked: bool = False


@dataclasses.dataclass(frozen=True)
class Position:
    """A long position: ``qty`` shares worth ``market_value`` dollars at ``price``."""

    symbol: str
    qty: float
    market_value: float
    price: float
    qty_available: float | None = None


@dataclasses.dataclass(frozen=True)
class OrderRequest:
    """A DAY market order: exactly one of ``qty`` (shares) or ``notional`` (dollars),
    or ``close_position`` to sell the whole position."""

    symbol: str
    side: Side
    client_order_id: str
    qty: float | None = None
    notional: float | None = None
    close_position: bool = False

    def __post_init__(self):
        given = sum(x is not None for x in (self.qty, self.notional)) + int(self.close_position)
        if given != 1:
            raise ValueError("an order needs exactly one of qty, notional or close_position")


@dataclasses.dataclass(frozen=True)
class Order:
    """The broker's view of an order. ``filled_avg_price`` in dollars, ``filled_qty`` in shares."""

    id: str
    client_order_id: str
    symbol: str
    side: Side
    status: str
    qty: float | None = None
    notional: float | None = None
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    submitted_at: dt.datetime | None = None
    reject_reason: str | None = None

    @property
    def terminal(self) -> bool:
        """True once the order will change no more."""
        return self.status in TERMINAL_STATUSES

    @property
    def filled_notional(self) -> float:
        """Dollars filled so far."""
        return self.filled_qty * (self.filled_avg_price or 0.0)


@dataclasses.dataclass(frozen=True)
class MarketClock:
    """The broker's clock: ``now`` and the next open/close (tz-aware), and whether it is open."""

    now: dt.datetime
    is_open: bool
    next_open: dt.datetime
    next_close: dt.datetime


class OrderRejected(BrokerError):
    """The broker refused the order outright: nothing was placed.

    ``status`` is the HTTP status (403, 422, ...), ``code`` the broker's error code if its
    body was JSON, ``kind`` one of ``buying_power``, ``duplicate``, ``wash_trade``,
    ``not_fractionable``, ``qty_available``, ``no_position``, ``rejected``.
    """

    def __init__(self, message: str, status: int | None = None, code: int | None = None, kind: str = "rejected"):
        super().__init__(message)
        self.status, self.code, self.kind = status, code, kind


class OrderUncertain(BrokerError):
    """Sending the order failed in a way that leaves it unknown whether it landed
    (timeout, dropped connection, 429, 5xx): look it up before doing anything else."""


@runtime_checkable
class Broker(Protocol):
    """What execution needs from a broker. Reads may be retried; submissions never blindly.

    ``name``: for reports.  ``has_clock``: True for a real account, whose own clock and calendar
    rule the morning (``market_clock``, ``session_hours``); False for the simulated one, which
    follows the as-of clock.  ``submit_attempts`` / ``retry_wait``: how often (count) and how
    soon (seconds, doubling) execution may resend an order after a lookup by client_order_id
    found nothing.
    """

    name: str
    has_clock: bool
    submit_attempts: int
    retry_wait: float

    def market_clock(self) -> MarketClock:
        """The broker's time and the next open and close (tz-aware).

        Raises:
            BrokerError: no clock (``has_clock`` False), or the broker could not be asked.
        """
        ...

    def session_hours(self, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        """(open, close) of session ``day``, tz-aware, early closes included; None when the broker's
        calendar has no session that day or the broker keeps none (``has_clock`` False)."""
        ...

    def fractionable(self, symbols: list[str]) -> dict[str, bool]:
        """{symbol: whether fractional shares can be traded}; a symbol left out is fractionable."""
        ...

    def get_account(self) -> Account: ...

    def get_positions(self) -> dict[str, Position]: ...

    def get_open_orders(self) -> list[Order]: ...

    def get_orders(self, client_order_ids: list[str]) -> list[Order]: ...

    def list_orders(self, symbols: list[str], after: dt.datetime | None = None) -> list[Order]:
        """Every order (any status) in ``symbols`` submitted after ``after``: ONE request."""
        ...

    def get_order_by_client_id(self, client_order_id: str) -> Order | None: ...

    def submit_order(self, request: OrderRequest) -> Order: ...

    def cancel_order(self, order_id: str) -> None: ...
