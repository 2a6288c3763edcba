"""The market-data boundary: what the pipeline asks of a source of bars and quotes."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Protocol, runtime_checkable

import pandas as pd

from trading_system.errors import ConfigError


class NotEntitledError(ConfigError):
    """HTTP 403: the key's plan does not include this endpoint or data (fatal, never retried).

    Raised by the Polygon client (``marketdata.polygon``); defined here, with the boundary, so that
    the code that reacts to it (the regime's fallback, the earnings gate) need not import the
    HTTP client."""


@dataclasses.dataclass(frozen=True)
class Quote:
    """A pre-market price in dollars (split basis of the session it is for) and where it came from."""

    price: float
    source: str


@runtime_checkable
class MarketData(Protocol):
    """A source of split-adjusted daily bars and pre-market prices.

    ``bars`` returns BAR_COLUMNS (see ``store.py``) dated <= ``end``, adjusted for the
    splits known on ``adjust_through`` (default ``end``), sorted by (symbol, date).
    """

    name: str

    def ensure_session(self, session: dt.date) -> None:
        """Make the bars of ``session`` available, or raise ``DataError`` naming it."""

    def bars(self, end: dt.date, start: dt.date | None = None, symbols: list[str] | None = None,
             adjust_through: dt.date | None = None) -> pd.DataFrame: ...

    def premarket_prices(self, symbols: list[str], session: dt.date) -> dict[str, Quote]:
        """Prices (dollars) for the morning re-score of ``symbols`` on ``session``, by symbol.

        A source that answered but has no price dated ``session`` for a symbol leaves that
        symbol out (the caller weighs how many are unpriced).  ``{}`` for no symbols.

        Raises:
            DataError: no price source answered at all (no keys, refused, unreachable, not
                entitled), naming each source tried and why: that is a data failure, never
                "every pick has no price".
        """

    def session_bars(self, session: dt.date) -> pd.DataFrame:
        """Raw bars (as traded that day) of every symbol the source holds on ``session``, indexed
        by symbol: the whole market for the universe's generator and filters."""
        ...

    def ticker_types(self) -> pd.Series | None:
        """Ticker -> reference type (Polygon's ``CS``, ``ETF`` ...) for the universe's type filter;
        None when the source has no reference data (the filter is then skipped and noted)."""
        ...

    def premarket_source_problem(self) -> str | None:
        """Why tomorrow morning will have no pre-market price source, in one sentence; None if it will.

        Decided from configuration and the environment only (no network request): it runs
        at 20:00 in ``prepare``, which prints it as a warning so the keys can be fixed
        before ``validate`` stops for want of prices.
        """

    def index_closes(self, tickers: list[str], start: dt.date, end: dt.date) -> dict[str, pd.Series]:
        """Daily closes (index points) of the index ``tickers`` (``I:SPX``, ``I:VIX`` ...) dated in
        [start, end], by ticker, each a Series indexed by date, oldest first; a ticker the source has
        no bars for is left out (the regime then uses the ETF proxies).

        Raises:
            NotEntitledError: the key has no indices entitlement.
            DataError: the source could not answer.
        """
        ...
