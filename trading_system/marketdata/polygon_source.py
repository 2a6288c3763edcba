"""The real source: Polygon grouped daily into a local ``BarStore``, grown by the calendar (DESIGN §3).

- One grouped-daily request per missing session fills the whole market (A2); a warm night
  asks only for the sessions the store lacks, holidays are never asked for (XNYS calendar).
- On the free plan a session dated today (ET) or later is never requested: Polygon
  publishes day D on D+1 (A2, A8).
- Splits come from ``/v3/reference/splits`` into ``splits.csv`` and are applied on read.
- Ticker types (``/v3/reference/tickers``) are cached in ``tickers.csv`` for the universe's type filter.
- Pre-market prices: Polygon's snapshot on a paid plan, else Alpaca's latest trade
  (alpaca-py ``StockHistoricalDataClient``), else none (the pick is rejected).

Store folder (``data.store_dir``): bars.parquet, splits.csv (see ``store.py``), tickers.csv,
meta.json (``splits_checked``, ``tickers_checked``, ``tickers_types``, ``empty_sessions``).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
from pathlib import Path

import pandas as pd

from .. import sessions
from ..atomic import atomic_write
from ..config import Config, secret
from ..errors import DataError
from .base import Quote
from .polygon import NotEntitledError, PolygonClient, et_date_of_ms
from .store import BarStore

log = logging.getLogger(__name__)

#: Splits are re-read this many days before the last check (late announcements, corrections).
SPLITS_OVERLAP_DAYS = 30
#: Sessions fetched between two writes of the store during a long fill (progress survives a stop).
FLUSH_EVERY = 25


class PolygonSource:
    """``MarketData`` over Polygon with a local bar store.

    ``clock`` gives "today" (ET) for the free plan's publication rule and cache ages.
    ``client`` may be passed (benchmarks, tests); by default it is built from the environment.
    """

    name = "polygon"

    def __init__(self, cfg: Config, clock: sessions.Clock, client: PolygonClient | None = None):
        self.cfg, self.clock = cfg, clock
        self.store = BarStore(cfg.path(cfg.data.store_dir))
        self._client = client

    # ------------------------------------------------------------------ plumbing

    @property
    def client(self) -> PolygonClient:
        if self._client is None:
            self._client = PolygonClient.from_env(self.cfg.polygon)
        return self._client

    @property
    def _meta_path(self):
        return self.store.root / "meta.json"

    def _meta(self) -> dict:
        try:
            return json.loads(self._meta_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _save_meta(self, **changes) -> None:
        meta = {**self._meta(), **changes}
        text = json.dumps(meta, indent=1, sort_keys=True)
        atomic_write(self._meta_path, lambda tmp: Path(tmp).write_text(text))

    def _today(self) -> dt.date:
        return self.clock.now().astimezone(sessions.ET).date()

    def _published(self, session: dt.date) -> bool:
        """Whether the plan can have ``session`` yet: free plans publish day D on D+1 (ET)."""
        return self.cfg.polygon.plan == "paid" or session < self._today()

    # ------------------------------------------------------------------ bars

    def ensure_session(self, session: dt.date) -> None:
        """Fetch the bars of ``session`` unless stored; refuse stale data.

        Raises:
            DataError: the session is not published yet for this plan, or Polygon has no bars for it.
        """
        if session in set(self.store.dates()):
            return
        if not self._published(session):
            raise DataError(f"the bars of session {session} are not published yet: on the free Polygon plan day D "
                            "appears on D+1 ET, so run after midnight ET (or set polygon.plan: paid on a paid key); "
                            "the data is stale, so no plan was written.")
        bars = self.client.grouped_daily(session)
        if bars.empty:
            raise DataError(f"Polygon returned no bars for session {session} (not published yet?); the data is "
                            "stale, so no plan was written.")
        self.store.write_bars(bars)
        log.info("polygon: stored %d bars of session %s", len(bars), session)

    def fill(self, start: dt.date, end: dt.date) -> int:
        """Fetch every session in [start, end] the store lacks (one grouped request each).

        Sessions not published yet for the plan are skipped; a session Polygon answers
        empty is remembered in meta.json and not asked again.  Returns requests made.
        """
        have = set(self.store.dates())
        meta = self._meta()
        empty = set(meta.get("empty_sessions", []))
        missing = [s for s in sessions.sessions_between(start, end)
                   if s not in have and str(s) not in empty and self._published(s)]
        if not missing:
            return 0
        log.info("polygon: filling %d sessions %s..%s (one grouped-daily request each)", len(missing),
                 missing[0], missing[-1])
        batch: list[pd.DataFrame] = []
        for i, s in enumerate(missing, 1):
            bars = self.client.grouped_daily(s)
            if bars.empty:
                log.warning("polygon: no bars for session %s; it is skipped", s)
                empty.add(str(s))
            else:
                batch.append(bars)
            if batch and (i % FLUSH_EVERY == 0 or i == len(missing)):
                self.store.write_bars(pd.concat(batch, ignore_index=True))
                batch = []
        if empty != set(meta.get("empty_sessions", [])):
            self._save_meta(empty_sessions=sorted(empty))
        return len(missing)

    def refresh_splits(self, start: dt.date) -> None:
        """Fetch splits with ex-dates from ``start`` (cold) or from the last check less an overlap (warm).

        Skipped when already checked today (ET) for a window reaching back to ``start``.
        Splits (announced ones included) are merged into ``splits.csv``.
        """
        today = self._today()
        meta = self._meta()
        checked, covered = meta.get("splits_checked"), meta.get("splits_from")
        cold = checked is None or covered is None or start < dt.date.fromisoformat(covered)
        if not cold and dt.date.fromisoformat(checked) >= today:
            return
        since = start if cold else dt.date.fromisoformat(checked) - dt.timedelta(days=SPLITS_OVERLAP_DAYS)
        new = self.client.splits(since)
        old = self.store.splits()
        self.store.write_splits(pd.concat([old, new], ignore_index=True) if not old.empty else new)
        self._save_meta(splits_checked=str(today), splits_from=str(start if cold else covered))
        log.info("polygon: %d splits since %s", len(new), since)

    def backfill(self, symbols: list[str], start: dt.date, end: dt.date) -> int:
        """Per-ticker aggregates for ``symbols`` lacking a bar on ``end`` (watchlist names grouped daily
        leaves out, e.g. OTC): one request each, from their last stored bar.  Returns requests made."""
        bars = self.store.raw_bars()
        made = 0
        for sym in symbols:
            mine = bars.loc[bars["symbol"] == sym, "date"]
            if len(mine) and mine.max() >= end:
                continue
            first = max(start, mine.max() + dt.timedelta(days=1)) if len(mine) else start
            got = self.client.aggregates(sym, first, end)
            made += 1
            if got.empty:
                log.warning("polygon: no daily bars for watchlist symbol %s from %s to %s", sym, first, end)
                continue
            self.store.write_bars(got)
            bars = self.store.raw_bars()
        return made

    def bars(self, end, start=None, symbols=None, adjust_through=None) -> pd.DataFrame:
        """Split-adjusted bars in [start, end] (see ``MarketData``), fetching what the store lacks first."""
        first = start or end
        self.fill(first, end)
        self.refresh_splits(first)
        watch = [s.upper() for s in self.cfg.universe.watchlist
                 if symbols is None or s.upper() in symbols]
        if watch:
            self.backfill(watch, first, end)
        return self.store.read(end=end, start=start, symbols=symbols, adjust_through=adjust_through)

    def session_bars(self, session: dt.date) -> pd.DataFrame:
        """Raw bars of every stored symbol on ``session`` (index symbol), for the universe generator."""
        return self.store.session_bars(session)

    # ------------------------------------------------------------------ reference data

    def ticker_types(self) -> pd.Series:
        """Ticker -> Polygon type for ``universe.types``, cached ``polygon.tickers_max_age_days`` days."""
        types = sorted(self.cfg.universe.types)
        path = self.store.root / "tickers.csv"
        meta = self._meta()
        checked = meta.get("tickers_checked")
        fresh = (checked is not None and meta.get("tickers_types") == types and path.exists()
                 and (self._today() - dt.date.fromisoformat(checked)).days < self.cfg.polygon.tickers_max_age_days)
        if not fresh:
            table = pd.concat([self.client.tickers(t) for t in types], ignore_index=True)
            atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
            self._save_meta(tickers_checked=str(self._today()), tickers_types=types)
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        return table.drop_duplicates("ticker").set_index("ticker")["type"]

    # ------------------------------------------------------------------ pre-market prices

    def premarket_prices(self, symbols: list[str], session: dt.date) -> dict[str, Quote]:
        """Prices for the morning re-score: snapshot (paid plan), else Alpaca's latest trade.

        Only a trade dated ``session`` (ET) counts; a symbol with no such price is left out
        and the pick is rejected ("no pre-market price").  Each Quote names its source.
        """
        quotes: dict[str, Quote] = {}
        if symbols and self.cfg.polygon.plan == "paid":
            try:
                snap = self.client.snapshot(symbols)
            except NotEntitledError as exc:
                log.warning("polygon snapshot unavailable, trying Alpaca: %s", exc)
                snap = {}
            for sym in symbols:
                q = _snapshot_quote(snap.get(sym), session)
                if q is not None:
                    quotes[sym] = q
        missing = [s for s in symbols if s not in quotes]
        if missing:
            quotes.update(alpaca_latest_trades(missing, session))
        for sym in symbols:
            if sym not in quotes:
                log.warning("no pre-market price for %s on %s (snapshot and Alpaca latest trade)", sym, session)
        return quotes


def _snapshot_quote(item: dict | None, session: dt.date) -> Quote | None:
    """``lastTrade.p`` (``t`` in ns) or else the last minute bar's close (``t`` in ms), if dated ``session``."""
    if not item:
        return None
    trade = item.get("lastTrade") or {}
    if trade.get("p") and trade.get("t") and et_date_of_ms(trade["t"] / 1e6) == session:
        return Quote(float(trade["p"]), "polygon:snapshot.lastTrade")
    minute = item.get("min") or {}
    if minute.get("c") and minute.get("t") and et_date_of_ms(minute["t"]) == session:
        return Quote(float(minute["c"]), "polygon:snapshot.min")
    return None


def alpaca_latest_trades(symbols: list[str], session: dt.date) -> dict[str, Quote]:
    """Latest trades from Alpaca's market-data API (alpaca-py), kept when dated ``session`` (ET).

    Keys: ``ALPACA_API_KEY`` / ``ALPACA_SECRET_KEY``; base URL ``ALPACA_DATA_BASE_URL`` (default
    Alpaca's).  Any failure is logged and yields no price (the pick is then rejected).
    """
    key, secret_key = secret("ALPACA_API_KEY"), secret("ALPACA_SECRET_KEY")
    if not (key and secret_key):
        log.warning("no ALPACA_API_KEY/ALPACA_SECRET_KEY: no Alpaca pre-market prices")
        return {}
    from alpaca.common.exceptions import APIError
    from alpaca.data.historical import StockHistoricalDataClient
    from alpaca.data.requests import StockLatestTradeRequest

    client = StockHistoricalDataClient(key, secret_key, url_override=os.environ.get("ALPACA_DATA_BASE_URL") or None)
    # alpaca-py sets no HTTP timeout (API-NOTES B1): add one.
    client._session.request = functools.partial(client._session.request, timeout=(5, 30))
    try:
        trades = client.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols=symbols))
    except (APIError, OSError, ValueError) as exc:  # requests' errors are OSErrors
        log.warning("Alpaca latest trades failed: %s", exc)
        return {}
    out = {}
    for sym, trade in trades.items():
        when = trade.timestamp.astimezone(sessions.ET).date() if trade.timestamp.tzinfo else trade.timestamp.date()
        if when == session and trade.price and trade.price > 0:
            out[sym] = Quote(float(trade.price), "alpaca:latest_trade")
    return out
