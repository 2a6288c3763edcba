"""The embedded offline source: the real bars bundled in ``data/sample/`` (no keys, no network)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from trading_system.errors import AsOfError
from trading_system.marketdata.base import Quote
from trading_system.marketdata.store import BarStore

#: Where each offline pre-market price comes from (recorded in the plan).
PREMARKET_SOURCE = "sample:session_open"


class SampleSource:
    """Bars from a local store; the pre-market price is the target session's opening print.

    The sample holds daily bars only, so the open of the session being traded stands in
    for the 09:00 pre-market price (DESIGN §3); a live source uses a real pre-market quote.
    """

    name = "sample"

    def __init__(self, root: Path):
        self.store = BarStore(root)

    def _range(self) -> tuple[dt.date, dt.date]:
        span = self.store.date_range()
        if span is None:
            raise AsOfError(f"the sample store {self.store.root} holds no bars; restore data/sample/.")
        return span

    def ensure_session(self, session: dt.date) -> None:
        first, last = self._range()
        if not first <= session <= last:
            raise AsOfError(
                f"session {session} is outside the sample data ({first} to {last}); "
                "pick an --as-of inside it."
            )

    def bars(self, end, start=None, symbols=None, adjust_through=None) -> pd.DataFrame:
        return self.store.read(end=end, start=start, symbols=symbols, adjust_through=adjust_through)

    def session_bars(self, session: dt.date) -> pd.DataFrame:
        """Raw bars of ``session`` for every symbol of the sample, indexed by symbol."""
        return self.store.session_bars(session)

    def ticker_types(self) -> pd.Series | None:
        """None: the sample has no ticker reference data."""
        return None

    def premarket_prices(self, symbols: list[str], session: dt.date) -> dict[str, Quote]:
        """Each symbol's opening print of ``session`` (dollars, as traded); symbols without a bar are left out."""
        today = self.store.session_bars(session, symbols)
        return {s: Quote(float(today.loc[s, "open"]), PREMARKET_SOURCE) for s in symbols if s in today.index}

    def premarket_source_problem(self) -> str | None:
        """Always None: the morning price is the target session's open, read from the local bars."""
        return None

    def index_closes(self, tickers: list[str], start: dt.date, end: dt.date) -> dict[str, pd.Series]:
        """The indices of ``market_context.parquet`` beside the sample's bars (see ``MarketData``)."""
        from trading_system.marketdata.index_bars import CONTEXT_FILE, closes_from_file

        return closes_from_file(self.store.root / CONTEXT_FILE, tickers, start, end)
