"""Dry run at the broker boundary: reads go to the real broker, orders go nowhere.

Wrap any ``Broker`` in ``DryRunBroker`` and the execution code runs unchanged: each
submission is answered with an order in status ``dry_run`` (terminal, nothing filled),
and the account it reports counts the proceeds the dry sells would have freed, so the
buys are sized as the live run would size them.
"""

from __future__ import annotations

import datetime as dt

from trading_system.broker.base import Account, Broker, MarketClock, Order, OrderRequest, Position


class DryRunBroker:
    """A ``Broker`` that never sends an order.  ``submitted`` lists what it was asked to send."""

    def __init__(self, inner: Broker):
        self._inner = inner
        self.name = f"{inner.name} (dry run)"
        self.has_clock = inner.has_clock
        self.submit_attempts, self.retry_wait = 1, 0.0  # a dry submission is never uncertain
        self.submitted: list[Order] = []
        self._freed = 0.0

    def get_account(self) -> Account:
        a = self._inner.get_account()
        spent = sum(o.notional or 0.0 for o in self.submitted if o.side == "buy")
        return Account(cash=a.cash + self._freed - spent, equity=a.equity,
                       cash_available=a.cash_available + self._freed - spent,
                       trading_blocked=a.trading_blocked, account_blocked=a.account_blocked)

    def get_positions(self) -> dict[str, Position]:
        return self._inner.get_positions()

    def get_open_orders(self) -> list[Order]:
        return self._inner.get_open_orders()

    def get_orders(self, client_order_ids: list[str]) -> list[Order]:
        wanted = set(client_order_ids)
        return [o for o in self.submitted if o.client_order_id in wanted]

    def list_orders(self, symbols: list[str], after=None) -> list[Order]:
        wanted = set(symbols)
        return [o for o in self.submitted if o.symbol in wanted]

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        return self._inner.get_order_by_client_id(client_order_id)

    def market_clock(self) -> MarketClock:
        return self._inner.market_clock()

    def session_hours(self, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        return self._inner.session_hours(day)

    def fractionable(self, symbols: list[str]) -> dict[str, bool]:
        return self._inner.fractionable(symbols)

    def submit_order(self, request: OrderRequest) -> Order:
        if request.side == "sell":
            pos = self._inner.get_positions().get(request.symbol)
            if pos is not None:
                qty = pos.qty if request.close_position else min(request.qty or 0.0, pos.qty)
                self._freed += qty * pos.price
        order = Order(id=f"dry-{len(self.submitted) + 1:04d}", client_order_id=request.client_order_id,
                      symbol=request.symbol, side=request.side, status="dry_run",
                      qty=request.qty, notional=request.notional)
        self.submitted.append(order)
        return order

    def cancel_order(self, order_id: str) -> None:
        return None
