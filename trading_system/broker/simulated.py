"""The offline broker: a flat-file account that fills market orders at the session's open.

State lives in one JSON file (``data/sim_account.json`` by default)::

    {"cash": 100000.0, "positions": {"AAPL": 12.5}, "session": "2021-04-20",
     "orders": [{...Order fields...}]}

Every order fills at once and in full at the raw (as-traded) open of the session the
broker is set to, or, for a symbol with no bar that session, its last close before it.
When the broker moves to a later session, splits whose ex-date it passed multiply the
share counts (4-for-1 turns 10 shares into 40), so positions stay true across splits.

Costs (DESIGN §12): every fill is ``slippage_bps`` basis points worse than that price in the
direction of the trade (a buy at open x (1 + bps / 10,000), a sell at open x (1 - bps / 10,000)),
and ``commission`` dollars are taken from the cash per filled order.  A buy by notional spends
its notional on shares at the slipped price, and the commission beside it.  What was paid is kept
in the account file (``commission_paid``, ``slippage_paid``, dollars).

With ``account_file=None`` the account lives in memory only, and ``move_to`` carries it
to the next session: a backtest keeps one broker for hundreds of sessions without
rewriting a growing JSON file after every fill.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Protocol, cast

import pandas as pd

from trading_system.broker.base import Account, MarketClock, Order, OrderRejected, OrderRequest, Position
from trading_system.errors import BrokerError
from trading_system.state.atomic import write_json_atomic

#: The Order fields kept in the account file (``submitted_at`` is not).
_STORED_FIELDS = tuple(f.name for f in dataclasses.fields(Order) if f.name != "submitted_at")


class BarReader(Protocol):
    """What the simulated broker reads of a bar store: ``BarStore`` and a backtest's ``CachedSource``."""

    def splits(self) -> pd.DataFrame:
        """Every known split: symbol, date (ex-date), ratio (new shares per old share)."""
        ...

    def session_opens(self, session: dt.date) -> dict[str, float]:
        """symbol -> the raw opening price of ``session`` (dollars, as traded that day)."""
        ...

    def read(self, end: dt.date, start: dt.date | None = None, symbols: list[str] | None = None,
             adjust_through: dt.date | None = None) -> pd.DataFrame:
        """Split-adjusted bars dated <= ``end`` (BAR_COLUMNS), sorted by (symbol, date)."""
        ...


class SimulatedBroker:
    """A ``Broker`` over a JSON account file; fills at ``session``'s open.

    Requires: a ``BarReader`` holding raw bars for ``session`` (or earlier, for a gap): the bar
    store, or a backtest's in-memory ``CachedSource``.  ``account_file=None``: in memory only.
    """

    name = "simulated"
    has_clock = False        # follows the as-of clock: no calendar of its own
    submit_attempts = 1      # a submission either fills at the open or is refused: never uncertain
    retry_wait = 0.0

    def __init__(self, store: BarReader, account_file: Path | None, session: dt.date, starting_cash: float,
                 commission: float = 0.0, slippage_bps: float = 0.0):
        self._store = store
        self._commission, self._slip = float(commission), float(slippage_bps) / 10_000.0
        self._path = Path(account_file) if account_file is not None else None
        self._session = session
        self._opens: dict[str, float] | None = None
        self._split_list: list | None = None
        self._split_days: list[dt.date] = []
        self._positions: dict[str, Position] | None = None   # get_positions' answer until a fill or a move
        self._state = self._load(starting_cash)
        # Frozen Order objects beside the stored dicts, found by client id and by symbol:
        # a backtest's account holds thousands of orders, and every poll lists a few symbols.
        self._orders = [Order(**{**o, "submitted_at": None}) for o in self._state["orders"]]
        self._by_cid: dict[str, int] = {}
        self._by_symbol: dict[str, list[int]] = {}
        self._loaded = len(self._orders)     # orders read from the file; those after it were sent here,
        self._sent_day: list[dt.date] = []   # on these sessions (non-decreasing: the account only moves on)
        for i, order in enumerate(self._orders):
            self._index(i, order)
        self._roll_splits()

    def _index(self, i: int, order: Order) -> None:
        self._by_cid.setdefault(order.client_order_id, i)
        self._by_symbol.setdefault(order.symbol, []).append(i)

    def move_to(self, session: dt.date) -> None:
        """Carry the account to a later ``session``: its splits applied, its opening prices used.

        Raises:
            ValueError: ``session`` is before the broker's session.
        """
        if session < self._session:
            raise ValueError(f"the simulated broker cannot go back from {self._session} to {session}")
        self._session, self._opens, self._positions = session, None, None
        self._roll_splits()

    @property
    def cash(self) -> float:
        """Cash in dollars."""
        return float(self._state["cash"])

    @property
    def costs_paid(self) -> dict[str, float]:
        """Dollars paid since the account started: ``commission`` and ``slippage`` (shares x the
        distance between the fill and the unslipped price)."""
        return {"commission": float(self._state.get("commission_paid", 0.0)),
                "slippage": float(self._state.get("slippage_paid", 0.0))}

    @property
    def holdings(self) -> dict[str, float]:
        """Shares held per symbol (on the current session's share basis)."""
        return dict(self._state["positions"])

    # --- state -------------------------------------------------------------------------------
    def _load(self, starting_cash: float) -> dict:
        if self._path is None or not self._path.exists():
            return {"cash": float(starting_cash), "positions": {}, "session": None, "orders": []}
        try:
            state = json.loads(self._path.read_text())
            float(state["cash"]), dict(state["positions"]), list(state["orders"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BrokerError(
                f"simulated account {self._path} is unreadable ({exc.__class__.__name__}); "
                "restore it or delete it to start again from the configured cash."
            ) from exc
        return state

    def _save(self) -> None:
        if self._path is not None:
            write_json_atomic(self._path, self._state)

    def _roll_splits(self) -> None:
        last = self._state.get("session")
        last = dt.date.fromisoformat(last) if last else None
        if last is not None and last < self._session and self._state["positions"]:
            if self._split_list is None:  # (date, symbol, ratio), read once: pandas compares dates slowly
                sp = self._store.splits()
                self._split_list = sorted(zip(sp["date"], sp["symbol"], sp["ratio"]))
                self._split_days = [day for day, _sym, _ratio in self._split_list]
            # the splits dated in (last, session], in the list's order: two binary searches
            due = [(sym, ratio) for _day, sym, ratio in self._split_list[
                bisect.bisect_right(self._split_days, last):bisect.bisect_right(self._split_days, self._session)]]
            for sym, ratio in due:
                if sym in self._state["positions"]:
                    self._state["positions"][sym] = round(self._state["positions"][sym] * ratio, 9)
        if last is None or last < self._session:
            self._state["session"] = self._session.isoformat()

    def price(self, symbol: str) -> float:
        """The fill price of ``symbol`` this session: its raw open, else its last raw close.

        Raises:
            BrokerError: the store has no bar for the symbol on or before the session.
        """
        if self._opens is None:  # one read per session, not one per lookup
            self._opens = self._store.session_opens(self._session)
        if symbol in self._opens:
            return self._opens[symbol]
        hist = self._store.read(end=self._session, symbols=[symbol])
        if hist.empty:
            raise BrokerError(f"the simulated broker has no price for {symbol} on {self._session}.")
        return float(hist["close"].iloc[-1])

    # --- Broker protocol ------------------------------------------------------------------------
    def get_positions(self) -> dict[str, Position]:
        # Built once per session and fill (a rebalance asks five times); Position is frozen, the dict a copy.
        if self._positions is None:
            built = {}   # kept only once complete: a price that fails is raised again on the next call
            for sym, qty in sorted(self._state["positions"].items()):
                px = self.price(sym)
                built[sym] = Position(symbol=sym, qty=qty, market_value=qty * px, price=px, qty_available=qty)
            self._positions = built
        return dict(self._positions)

    def get_account(self) -> Account:
        cash = float(self._state["cash"])
        equity = cash + sum(p.market_value for p in self.get_positions().values())
        return Account(cash=cash, equity=equity, cash_available=cash)

    def get_open_orders(self) -> list[Order]:
        return []  # every simulated order is filled when submitted

    def get_orders(self, client_order_ids: list[str]) -> list[Order]:
        found = sorted({self._by_cid[c] for c in client_order_ids if c in self._by_cid})
        return [self._orders[i] for i in found]

    def list_orders(self, symbols: list[str], after: dt.datetime | None = None) -> list[Order]:
        """The orders of ``symbols``; with ``after``, those sent on its day or later, as Alpaca's
        ``after`` filter (orders read from an account file, whose day is not kept, are always listed)."""
        cut = 0 if after is None else self._loaded + bisect.bisect_left(self._sent_day, after.date())
        found = []
        for s in set(symbols):
            held = self._by_symbol.get(s, [])   # increasing indices
            found += held[:bisect.bisect_left(held, self._loaded)]             # read from the file
            found += held[bisect.bisect_left(held, max(cut, self._loaded)):]   # sent here, on or after the day
        return [self._orders[i] for i in sorted(found)]

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        found = self.get_orders([client_order_id])
        return found[0] if found else None

    def market_clock(self) -> MarketClock:
        """Raises BrokerError: the simulated account has no clock (``has_clock`` is False)."""
        raise BrokerError("the simulated broker has no clock; the run follows the as-of clock.")

    def session_hours(self, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        """None: the simulated account keeps no calendar (XNYS's is used)."""
        return None

    def fractionable(self, symbols: list[str]) -> dict[str, bool]:
        """{}: every asset is fractionable here."""
        return {}

    def submit_order(self, request: OrderRequest) -> Order:
        """Fill at the session's open, or refuse; a client_order_id used before is refused the
        way Alpaca refuses it (``OrderRejected``, kind ``duplicate``: HTTP 422 there)."""
        if self.get_order_by_client_id(request.client_order_id) is not None:
            raise OrderRejected(f"client_order_id {request.client_order_id} must be unique", 422, None, "duplicate")
        px = self.price(request.symbol)
        held = self._state["positions"].get(request.symbol, 0.0)
        self._positions = None
        if request.side == "sell":
            # cast: prep sells by shares or close_position (execute/orders.py), so qty is set here;
            # a sell by notional (qty None) would still fail in float(), as it always has
            qty = held if request.close_position else min(float(cast(float, request.qty)), held)
            if qty <= 0:
                return self._record(request, "rejected", 0.0, None, "no position to sell")
            fill = px * (1.0 - self._slip) if self._slip else px
            self._state["positions"][request.symbol] = round(held - qty, 9)
            if self._state["positions"][request.symbol] <= 1e-9:
                del self._state["positions"][request.symbol]
            self._state["cash"] = round(self._state["cash"] + qty * fill - self._commission, 2)
        else:
            fill = px * (1.0 + self._slip) if self._slip else px
            notional = request.notional if request.notional is not None else float(cast(float, request.qty)) * fill
            if notional + self._commission > self._state["cash"] + 1e-6:
                return self._record(request, "rejected", 0.0, None, "insufficient buying power")
            qty = round(notional / fill, 9)
            self._state["positions"][request.symbol] = round(held + qty, 9)
            self._state["cash"] = round(self._state["cash"] - notional - self._commission, 2)
        self._charge(qty * abs(fill - px))
        return self._record(request, "filled", qty, fill, None)

    def _charge(self, slippage: float) -> None:
        """Add one filled order's commission and ``slippage`` (dollars) to what the account has paid."""
        if self._commission or slippage:
            self._state["commission_paid"] = round(self._state.get("commission_paid", 0.0) + self._commission, 6)
            self._state["slippage_paid"] = round(self._state.get("slippage_paid", 0.0) + slippage, 6)

    def _record(self, request: OrderRequest, status: str, qty: float, px: float | None,
                reason: str | None) -> Order:
        order = Order(
            id=f"sim-{len(self._state['orders']) + 1:06d}",
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            status=status,
            qty=request.qty,
            notional=request.notional,
            filled_qty=qty,
            filled_avg_price=px,
            reject_reason=reason,
        )
        self._state["orders"].append({f: getattr(order, f) for f in _STORED_FIELDS})
        self._orders.append(order)
        self._sent_day.append(self._session)
        self._index(len(self._orders) - 1, order)
        self._save()
        return order

    def cancel_order(self, order_id: str) -> None:
        return None  # nothing is ever left open
