"""The real source: Polygon grouped daily into a local ``BarStore``, grown by the calendar (DESIGN §3).

- One grouped-daily request per missing session fills the whole market (A2); a warm night
  asks only for the sessions the store lacks, holidays are never asked for (XNYS calendar).
- On the free plan a session dated today (ET) or later is never requested: Polygon
  publishes day D on D+1 (A2, A8).
- Splits come from ``/v3/reference/splits`` into ``splits.csv`` and are applied on read.
- Ticker types (``/v3/reference/tickers``) are cached in ``tickers.csv`` for the universe's type filter.
- "OK, 0 results" for a session the XNYS calendar says traded is a fault, not a holiday: it is
  asked again, then the run stops with nothing written for it (``data.allow_empty_sessions``: skipped).
- Pre-market prices: Polygon's snapshot on a paid plan, else Alpaca's latest trade (alpaca-py,
  ``alpaca_data.py``).  No source answering at all is a ``DataError``, never "no price" (DESIGN §1).
- A fill reports its progress (sessions done / total, requests, ETA) to a ``ProgressSink``
  (``trading_system.progress``); it never prints itself.

Store folder (``data.store_dir``): bars.parquet, splits.csv (see ``store.py``), tickers.csv,
meta.json (``splits_checked``, ``tickers_checked``, ``tickers_types``, ``empty_sessions``:
sessions skipped under ``data.allow_empty_sessions``, asked again whenever it is off).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path

import pandas as pd
import tenacity

from trading_system import sessions
from trading_system.config import Config, secret
from trading_system.errors import ConfigError, DataError
from trading_system.marketdata.alpaca_data import ALPACA_KEYS, PriceSourceDown, alpaca_latest_trades
from trading_system.marketdata.base import Quote
from trading_system.marketdata.polygon import HostUnreachable, NotEntitledError, PolygonClient, et_date_of_ms
from trading_system.marketdata.store import BarStore
from trading_system.progress import ProgressSink, Reporter, duration
from trading_system.state.atomic import atomic_write

__all__ = ["ALPACA_KEYS", "PolygonSource", "PriceSourceDown", "alpaca_latest_trades"]  # the last three: alpaca_data

log = logging.getLogger(__name__)

#: Splits are re-read this many days before the last check (late announcements, corrections).
SPLITS_OVERLAP_DAYS = 30
#: Seconds of fetching between two writes of the store during a long fill, so a stop loses at most
#: about that much.  Each write rewrites the whole Parquet file, so a fast (paid) fill writes a few
#: times instead of every few sessions; a free-plan fill (12 s a request) still writes every third.
FLUSH_SECONDS = 30.0
#: Extra grouped-daily requests for a traded session answered "OK, 0 results" (3 in all):
#: waits of backoff_seconds, then twice that (12 s, 24 s by default), capped at max_backoff_seconds.
EMPTY_RETRIES = 2


class PolygonSource:
    """``MarketData`` over Polygon with a local bar store.

    ``clock`` gives "today" (ET) for the free plan's publication rule and cache ages.
    ``client`` may be passed (benchmarks, tests); by default it is built from the environment.
    ``progress`` receives a fill's progress; by default a ``progress.Reporter`` on stdout (a
    live bar on a terminal, else a line per ~10 % for fills of 10 sessions or more) that also
    logs every line; ``progress.log_only(...)`` keeps it all in the log.
    """

    name = "polygon"

    def __init__(self, cfg: Config, clock: sessions.Clock, client: PolygonClient | None = None,
                 progress: ProgressSink | None = None):
        self.cfg, self.clock = cfg, clock
        self.store = BarStore(cfg.path(cfg.data.store_dir))
        self._client = client
        self.progress = progress or Reporter("polygon fill", "sessions", min_total=10)

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
        """Fetch the bars of ``session`` unless stored; refuse stale or missing data.

        An empty answer is asked again (see ``_grouped_daily``); a session still empty stops
        the run even under ``data.allow_empty_sessions``: it is the session the run needs,
        so skipping it cannot help.  Nothing is recorded for it.

        Raises:
            DataError: the session is not published yet for this plan, or Polygon keeps
                answering it with no bars.
        """
        if session in set(self.store.dates()):
            return
        if not self._published(session):
            raise DataError(f"the bars of session {session} are not published yet: on the free Polygon plan day D "
                            "appears on D+1 ET, so run after midnight ET (or set polygon.plan: paid on a paid key); "
                            "the data is stale, so no plan was written.")
        bars = self._grouped_daily(session)
        if bars.empty:
            raise DataError(self._empty_message(session, skippable=False))
        self.store.write_bars(bars)
        log.info("polygon: stored %d bars of session %s", len(bars), session)

    def fill(self, start: dt.date, end: dt.date) -> int:
        """Fetch every session in [start, end] the store lacks (one grouped request each, more if empty).

        Sessions not published yet for the plan are skipped.  A session still empty after the
        retries stops the fill (bars fetched before it are kept; nothing is stored or recorded
        for it), unless ``data.allow_empty_sessions``: then it is logged, recorded in meta.json
        (``empty_sessions``) and skipped while the setting is on; off, recorded ones are asked
        again.  Progress (sessions done, requests made) goes to ``self.progress``.  Returns the
        sessions asked for.

        Raises:
            HostUnreachable: Polygon did not answer at all for ``polygon.give_up_after_seconds``
                (saying how many sessions fetched before were kept).
            DataError: a traded session stayed empty (allow_empty_sessions off), or Polygon failed.
        """
        have = set(self.store.dates())
        recorded = set(self._meta().get("empty_sessions", []))
        allow = self.cfg.data.allow_empty_sessions
        missing = [s for s in sessions.sessions_between(start, end)
                   if s not in have and not (allow and str(s) in recorded) and self._published(s)]
        if not missing:
            return 0
        first_request = self._begin_fill(missing, recorded)
        batch: list[pd.DataFrame] = []
        empty: set[str] = set()
        done, finished = 0, False
        flushed = time.monotonic()
        try:
            for s in missing:
                bars = self._grouped_daily(s)
                if bars.empty:
                    if not allow:
                        raise DataError(self._empty_message(s, skippable=True))
                    log.warning("polygon: session %s traded but Polygon has no bars for it; skipped and recorded "
                                "in meta.json (data.allow_empty_sessions is on)", s)
                    empty.add(str(s))
                else:
                    batch.append(bars)
                if batch and time.monotonic() - flushed >= FLUSH_SECONDS:
                    self.store.write_bars(pd.concat(batch, ignore_index=True))
                    batch, flushed = [], time.monotonic()
                done += 1
                self.progress.update(done, f"{self.client.requests_made - first_request} requests, through {s}")
            finished = True
        except HostUnreachable as exc:
            kept = done - len(empty)
            if kept:
                fetched = ("the session fetched before it is" if kept == 1
                           else f"the {kept} sessions fetched before it are")
                raise HostUnreachable(exc.host, exc.seconds, exc.cause,
                                      kept=f"{fetched} kept, so a rerun asks only for the rest") from exc
            raise
        finally:  # bars fetched before a stop are real: keep them, so a rerun asks only for the rest
            self.progress.end(ok=finished)
            self._keep_fetched(batch, recorded, empty)
        return len(missing)

    def _begin_fill(self, missing: list[dt.date], recorded: set[str]) -> int:
        """Log and start the progress of a fill of ``missing``; returns the requests made before it."""
        again = sorted(recorded & {str(s) for s in missing})
        log.info("polygon: filling %d sessions %s..%s (one grouped-daily request each)%s", len(missing),
                 missing[0], missing[-1], f"; asking again for {len(again)} recorded as empty" if again else "")
        rpm = self.cfg.polygon.requests_per_minute
        first_request = self.client.requests_made
        self.progress.begin(len(missing), f"{missing[0]} to {missing[-1]}, one request each: about "
                                          f"{duration(len(missing) * 60 / rpm)} at {rpm:g} requests/min")
        return first_request

    def _keep_fetched(self, batch: list[pd.DataFrame], recorded: set[str], empty: set[str]) -> None:
        """Store the bars not flushed yet; record in meta.json the empty sessions still not stored."""
        if batch:
            self.store.write_bars(pd.concat(batch, ignore_index=True))
        stored = {str(d) for d in self.store.dates()}
        if (recorded | empty) - stored != recorded:
            self._save_meta(empty_sessions=sorted((recorded | empty) - stored))

    def _grouped_daily(self, session: dt.date) -> pd.DataFrame:
        """Grouped daily of a traded session, asked ``EMPTY_RETRIES`` more times while empty (waits:
        ``polygon.backoff_seconds``, then doubling, capped); empty only if every answer was."""
        p = self.cfg.polygon
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda bars: bars.empty),
            stop=tenacity.stop_after_attempt(EMPTY_RETRIES + 1),
            wait=tenacity.wait_exponential(multiplier=p.backoff_seconds, max=p.max_backoff_seconds),
            retry_error_callback=_last_result,
            before_sleep=lambda state: log.warning(
                "polygon: session %s traded but came back empty (OK, 0 results); try %d of %d in %.2f s", session,
                state.attempt_number + 1, EMPTY_RETRIES + 1, state.next_action.sleep if state.next_action else 0.0))
        return retrying(self.client.grouped_daily, session)

    @staticmethod
    def _empty_message(session: dt.date, skippable: bool) -> str:
        what_to_do = ("run again later, or set data.allow_empty_sessions: true to skip that session (the scan then "
                      "lacks a day of history)" if skippable else "run again later")
        return (f"Polygon answered grouped daily bars for session {session}, a day the NYSE traded, with no bars "
                f"{EMPTY_RETRIES + 1} times (OK, 0 results); nothing was written for that session and no plan was "
                f"made: {what_to_do}.")

    def refresh_splits(self, start: dt.date) -> None:
        """Fetch splits with ex-dates from ``start`` (cold) or from the last check less an overlap (warm).

        Skipped when already checked today (ET) for a window reaching back to ``start``.
        Splits (announced ones included) are merged into ``splits.csv``.
        """
        today = self._today()
        meta = self._meta()
        checked, covered = meta.get("splits_checked"), meta.get("splits_from")
        if checked is None or covered is None or start < dt.date.fromisoformat(covered):
            since, covered = start, str(start)  # cold: the whole window from start
        elif dt.date.fromisoformat(checked) >= today:
            return
        else:
            since = dt.date.fromisoformat(checked) - dt.timedelta(days=SPLITS_OVERLAP_DAYS)
        new = self.client.splits(since)
        old = self.store.splits()
        self.store.write_splits(pd.concat([old, new], ignore_index=True) if not old.empty else new)
        self._save_meta(splits_checked=str(today), splits_from=str(covered))
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

        Only a price dated ``session`` (ET) counts; a symbol no source priced is left out
        (the caller counts them).  Each Quote names its source.  Alpaca is asked only for
        what the snapshot left unpriced.

        Raises:
            DataError: no source answered at all, naming each one tried and why (no keys,
                HTTP 401/403, unreachable, snapshot not entitled).
        """
        if not symbols:
            return {}
        quotes: dict[str, Quote] = {}
        down: list[str] = []
        answered = False
        if self.cfg.polygon.plan == "paid":
            try:
                snap = self.client.snapshot(symbols)
                answered = True
            except NotEntitledError:
                down.append("Polygon's snapshot: not entitled on this key's plan (HTTP 403)")
                snap = {}
            except (ConfigError, DataError) as exc:  # 401 (key) or retries run out
                down.append(f"Polygon's snapshot: {str(exc).rstrip('.')}")
                snap = {}
            quotes = {s: q for s in symbols if (q := _snapshot_quote(snap.get(s), session)) is not None}
        missing = [s for s in symbols if s not in quotes]
        if missing:
            try:
                quotes.update(alpaca_latest_trades(missing, session, self.cfg.broker.alpaca))
                answered = True
            except PriceSourceDown as exc:
                down.append(exc.reason)
        if not answered:
            raise DataError(f"no pre-market price source answered for session {session} [{'; '.join(down)}]; "
                            "this is a data failure, not a verdict on the picks: fix the source and run "
                            "'prep validate' again.")
        for reason in down:
            log.warning("pre-market prices: %s (another source answered)", reason)
        unpriced = [s for s in symbols if s not in quotes]
        if unpriced:
            log.warning("no pre-market price dated %s for %d of %d picks: %s", session, len(unpriced), len(symbols),
                        ", ".join(unpriced))
        return quotes

    def index_closes(self, tickers: list[str], start: dt.date, end: dt.date) -> dict[str, pd.Series]:
        """Polygon's index aggregates (one request per ticker; not stored). See ``MarketData``.

        Raises:
            NotEntitledError: the key has no indices entitlement (403): the regime uses the ETF proxies.
            DataError: Polygon did not answer.
        """
        from trading_system.marketdata.index_bars import closes_from_polygon

        return closes_from_polygon(self.client, tickers, start, end)

    def premarket_source_problem(self) -> str | None:
        """None when tomorrow's ``validate`` will have a price source, else why not (no network request).

        Paid plan: the snapshot (entitlement is checked by ``prep doctor``, not here).  Free
        plan: Alpaca's latest trades, which need both Alpaca keys in the environment.
        """
        if self.cfg.polygon.plan == "paid":
            return None
        missing = [name for name in ALPACA_KEYS if not secret(name)]
        if not missing:
            return None
        return (f"no {'/'.join(missing)}: on the free Polygon plan pre-market prices come from Alpaca's market "
                f"data, so tomorrow's validate will stop; set {' and '.join(missing)} in the environment or .env "
                "(or use a paid Polygon plan with polygon.plan: paid).")


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


def _last_result(state: tenacity.RetryCallState) -> pd.DataFrame:
    """``tenacity``'s ``retry_error_callback`` for ``_grouped_daily``: the last (empty) answer."""
    if state.outcome is None:  # pragma: no cover - tenacity calls it after an attempt
        raise AssertionError("no attempt was made")
    return state.outcome.result()
