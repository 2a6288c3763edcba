"""The market-data boundary: what the pipeline asks of a source of bars and quotes."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Protocol, runtime_checkable

import pandas as pd


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
        """Prices for the morning re-score; a symbol with no price is left out."""
