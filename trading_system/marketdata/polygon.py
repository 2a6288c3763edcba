"""Polygon (Massive) REST client on ``requests`` + ``tenacity`` + a token bucket (DESIGN §3, API-NOTES A).

- Auth: ``POLYGON_API_KEY`` sent as ``Authorization: Bearer`` on every request, so
  ``next_url`` pages (which never carry the key) need nothing extra (A0).
- Base URL ``https://api.polygon.io``, overridden by ``POLYGON_BASE_URL``.  ``next_url`` is
  followed as path + query on that base (as the official client does), never re-sending params.
- Every request has a timeout and takes a token from the limiter first.
- Retries (tenacity) on 429 (``Retry-After`` honoured), 5xx, timeouts and dropped
  connections, with exponential backoff and jitter, at most ``polygon.max_retries`` times;
  never on 401/403, which become one sentence each (unknown key, plan not entitled, today's
  data before end of day) (A7).
- A host that does not answer at all (connection refused, DNS failure, connect timeout) is
  given up on once ``polygon.give_up_after_seconds`` have passed since the first such attempt
  began (the waits are cut to fit), or when the attempts run out, whichever comes first:
  ``HostUnreachable``, one sentence naming the host (never the key).
- A missing ``results`` is ``[]`` (A1); ``status`` is not asserted (A7: OK / DELAYED).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import time
import urllib.parse
from typing import Callable

import numpy as np
import pandas as pd
import requests
import tenacity
import urllib3.exceptions

from trading_system.config import PolygonConfig, secret
from trading_system.errors import ConfigError, DataError
from trading_system.marketdata.base import NotEntitledError
from trading_system.marketdata.ratelimit import TokenBucket
from trading_system.sessions import ET

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.polygon.io"
RETRY_STATUS = {413, 429, 499, 500, 502, 503, 504}  # the official client's list (A7)
MAX_PAGES = 1000  # next_url loops are bounded


class NotPublishedError(DataError):
    """HTTP 403 "today's data before end of day": the session is not published yet for this plan."""


class HostUnreachable(DataError):
    """The host did not answer at all (refused, unknown, connect timeout) for ``seconds``."""

    def __init__(self, host: str, seconds: float, cause: str, kept: str = ""):
        self.host, self.seconds, self.cause = host, seconds, cause
        super().__init__(f"Polygon ({host}) did not answer for {_secs(seconds)} s ({cause}); check the network or "
                         f"POLYGON_BASE_URL; {kept or 'nothing was written'}.")


class _Retryable(Exception):
    """A failure worth another attempt; ``retry_after`` in seconds when the server said so.

    ``silent_since`` (monotonic seconds) is set when no connection could be made at all: when
    that attempt began.
    """

    def __init__(self, reason: str, retry_after: float | None = None, silent_since: float | None = None,
                 cause: str = ""):
        super().__init__(reason)
        self.reason, self.retry_after, self.silent_since, self.cause = reason, retry_after, silent_since, cause


def _secs(seconds: float) -> str:
    """60 -> ``60``, 1.04 -> ``1``, 0.34 -> ``0.3``."""
    return f"{seconds:.0f}" if seconds >= 0.95 else f"{seconds:.1f}"


def _no_connection(exc: requests.RequestException) -> bool:
    """No connection was made at all: refused, DNS failure, connect timeout (not a dropped one)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError))


class _Silence(tenacity.stop.stop_base):
    """The stop (and wait cap) for a host that does not answer: ``limit`` seconds after the first
    attempt of the current run of no-connection failures began; an answer of any kind resets it."""

    def __init__(self, limit: float, clock: Callable[[], float]):
        self.limit, self.clock = limit, clock
        self.since: float | None = None
        self.cause = ""

    def observe(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if not isinstance(exc, _Retryable):
            return
        if exc.silent_since is None:
            self.since = None
        elif self.since is None:
            self.since = exc.silent_since
        if exc.cause:
            self.cause = exc.cause

    def elapsed(self) -> float:
        return 0.0 if self.since is None else self.clock() - self.since

    def __call__(self, state: tenacity.RetryCallState) -> bool:
        self.observe(state)
        return self.since is not None and self.elapsed() >= self.limit

    def cap(self, wait: float, state: tenacity.RetryCallState) -> float:
        """``wait`` cut so the next attempt starts no later than the deadline (tenacity asks for the
        wait before the stop, so the outcome is observed here too)."""
        self.observe(state)
        return wait if self.since is None else max(0.0, min(wait, self.limit - self.elapsed()))


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), ``None`` if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


def _message(resp: requests.Response) -> str:
    """The vendor's words: ``error`` (status ERROR bodies) or ``message`` (NOT_AUTHORIZED, NOT_FOUND)."""
    try:
        body = resp.json()
    except ValueError:
        return (resp.text or "").strip()[:200] or resp.reason or ""
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body.get("status") or "").strip()
    return ""


def et_date_of_ms(ms: float) -> dt.date:
    """The America/New_York date of a Unix-milliseconds timestamp (Polygon's ``t``)."""
    return dt.datetime.fromtimestamp(ms / 1000.0, tz=ET).date()


class PolygonClient:
    """One key, one base URL, one limiter; methods return DataFrames or plain dicts.

    ``sleep`` and ``clock`` (monotonic seconds) are injectable so tests can record the waits
    instead of spending them.  ``requests_made`` counts HTTP attempts (retries included).
    """

    def __init__(self, api_key: str, cfg: PolygonConfig, base_url: str | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.cfg = cfg
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        parts = urllib.parse.urlsplit(self.base_url)
        self.host = (parts.hostname or self.base_url) + (f":{parts.port}" if parts.port else "")
        self._clock = clock
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {api_key}", "Accept": "application/json",
                                     "User-Agent": "prep (trading_system)"})
        self._sleep = sleep
        self.limiter = TokenBucket(cfg.requests_per_minute, cfg.burst)
        self.requests_made = 0
        self._backoff = tenacity.wait_exponential_jitter(multiplier=cfg.backoff_seconds, max=cfg.max_backoff_seconds,
                                                         jitter=cfg.backoff_seconds)

    @classmethod
    def from_env(cls, cfg: PolygonConfig, sleep: Callable[[float], None] = time.sleep) -> "PolygonClient":
        """A client with ``POLYGON_API_KEY`` and ``POLYGON_BASE_URL`` from the environment / ``.env``.

        Raises:
            ConfigError: ``POLYGON_API_KEY`` is not set.
        """
        key = secret("POLYGON_API_KEY")
        if key is None:
            raise ConfigError("POLYGON_API_KEY is not set; put your Polygon key in the environment or in .env "
                              "beside config.yaml (or set data.source: sample).")
        return cls(key, cfg, secret("POLYGON_BASE_URL"), sleep=sleep)

    # ------------------------------------------------------------------ transport

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self.cfg.max_backoff_seconds)
        return self._backoff(state)

    def _once(self, url: str, params: dict | None, what: str) -> dict:
        self.limiter.acquire()
        self.requests_made += 1
        began = self._clock()
        # connecting never waits longer than the give-up time (a black-holed host)
        timeout = (min(self.cfg.timeout_seconds, self.cfg.give_up_after_seconds), self.cfg.timeout_seconds)
        try:
            resp = self.session.get(url, params=params, timeout=timeout, allow_redirects=False)
        except (requests.Timeout, requests.ConnectionError) as exc:
            cause = exc.__class__.__name__
            if _no_connection(exc):
                raise _Retryable(f"no connection to {self.host} ({cause})", silent_since=began, cause=cause) from exc
            if isinstance(exc, requests.Timeout):
                raise _Retryable(f"no answer within {self.cfg.timeout_seconds:g} s") from exc
            raise _Retryable("the connection dropped") from exc
        if resp.status_code == 200:
            try:
                body = resp.json()
            except ValueError as exc:
                raise _Retryable("a 200 answer that is not JSON") from exc
            if not isinstance(body, dict):  # every endpoint used answers an object; a list is no answer
                raise DataError(f"Polygon answered {what} with an unexpected body; try again later.")
            return body
        msg = _message(resp)
        if resp.status_code in RETRY_STATUS or resp.status_code >= 500:
            label = "rate limited (429)" if resp.status_code == 429 else f"HTTP {resp.status_code}"
            raise _Retryable(f"{label}{': ' + msg if msg else ''}", _retry_after(resp.headers.get("Retry-After")))
        self._refuse(resp.status_code, msg, what)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _refuse(status: int, msg: str, what: str) -> None:
        low = msg.lower()
        if status == 401:
            if "not provided" in low:
                raise ConfigError("no API key reached Polygon (401: API Key was not provided); "
                                  "set POLYGON_API_KEY in the environment or .env.")
            raise ConfigError(f"Polygon does not know POLYGON_API_KEY (401: {msg or 'Unauthorized'}); "
                              "check the key in the environment or .env.")
        if status == 403:
            if "before end of day" in low:
                raise NotPublishedError(f"Polygon has not published {what} yet (403: today's data before end of "
                                        "day); on the free plan day D appears on D+1 ET, so run after midnight ET "
                                        "or use a paid plan.")
            if "timeframe" in low:
                raise NotEntitledError(f"your Polygon plan does not reach back to {what} (403: {msg}); "
                                       "pick a later --as-of or upgrade the plan.")
            raise NotEntitledError(f"your Polygon plan is not entitled to {what} (403: {msg or 'Forbidden'}); "
                                   "upgrade the plan or set polygon.plan: free in config.yaml.")
        raise DataError(f"Polygon refused {what} (HTTP {status}: {msg or 'no message'}).")

    def get(self, path_or_url: str, params: dict | None = None, what: str = "the request") -> dict:
        """GET one resource with limiter, timeout and retries; returns the decoded JSON body.

        ``path_or_url`` is a path on the base URL, or a ``next_url`` (its host is replaced by
        the base URL's).  ``what`` names the data in error sentences.

        Raises:
            ConfigError: 401 (unknown or missing key); NotEntitledError 403 (plan).
            NotPublishedError: 403 today's data before end of day.
            HostUnreachable: no connection could be made for ``polygon.give_up_after_seconds``
                (or through every attempt).
            DataError: another 4xx, or still failing after ``polygon.max_retries`` retries.
        """
        if path_or_url.startswith("http"):
            parts = urllib.parse.urlsplit(path_or_url)
            url = f"{self.base_url}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        else:
            url = f"{self.base_url}{path_or_url}"
        silence = _Silence(self.cfg.give_up_after_seconds, self._clock)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Retryable),
            stop=silence | tenacity.stop_after_attempt(self.cfg.max_retries + 1),  # silence first: it observes
            wait=lambda s: silence.cap(self._wait(s), s), sleep=self._sleep, reraise=True,
            before_sleep=lambda s: log.warning("polygon %s: %s; retry %d in %.2f s", what,
                                               s.outcome.exception() if s.outcome is not None else None,
                                               s.attempt_number,
                                               s.next_action.sleep if s.next_action else 0.0))
        try:
            for attempt in retrying:
                with attempt:
                    return self._once(url, params, what)
        except _Retryable as exc:
            if exc.silent_since is not None and silence.since is not None:
                raise HostUnreachable(self.host, silence.elapsed(), silence.cause) from exc
            raise DataError(f"Polygon did not deliver {what} after {self.cfg.max_retries + 1} attempts "
                            f"(last: {exc.reason}); try again later.") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def get_pages(self, path: str, params: dict, what: str) -> list[dict]:
        """Every ``results`` item of a paginated endpoint, following ``next_url`` until it is absent."""
        items: list[dict] = []
        body = self.get(path, params, what)
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            items.extend(body.get("results") or [])
            nxt = body.get("next_url")
            if not nxt or nxt in seen:
                return items
            seen.add(nxt)
            body = self.get(nxt, None, what)
        raise DataError(f"Polygon kept paginating {what} past {MAX_PAGES} pages; try again later.")

    # ------------------------------------------------------------------ endpoints

    def grouped_daily(self, session: dt.date) -> pd.DataFrame:
        """Raw (``adjusted=false``) bars of every US stock for one session: one request (A2).

        Returns symbol, date, open, high, low, close (dollars), volume (shares, int64);
        an empty frame when Polygon has no ``results`` (holiday, weekend, not published).
        """
        body = self.get(f"/v2/aggs/grouped/locale/us/market/stocks/{session:%Y-%m-%d}", {"adjusted": "false"},
                        what=f"grouped daily bars for session {session}")
        return _bars_frame(body.get("results") or [], session=session)

    def aggregates(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Raw daily bars of one ticker over [start, end], inclusive (A1): back-fills one symbol."""
        path = f"/v2/aggs/ticker/{urllib.parse.quote(ticker, safe='')}/range/1/day/{start:%Y-%m-%d}/{end:%Y-%m-%d}"
        rows = self.get_pages(path, {"adjusted": "false", "sort": "asc", "limit": 50000},
                              what=f"daily bars of {ticker} from {start} to {end}")
        return _bars_frame(rows, ticker=ticker)

    def splits(self, since: dt.date) -> pd.DataFrame:
        """Every split with an execution (ex-) date on or after ``since``, announced ones included.

        Returns symbol, date (ex-date), ratio = split_to / split_from (4.0 for a 4-for-1).
        """
        rows = self.get_pages("/v3/reference/splits", {"execution_date.gte": f"{since:%Y-%m-%d}", "limit": 1000,
                                                       "sort": "execution_date", "order": "asc"},
                              what=f"splits since {since}")
        out = [{"symbol": r["ticker"], "date": dt.date.fromisoformat(r["execution_date"]),
                "ratio": float(r["split_to"]) / float(r["split_from"])}
               for r in rows if r.get("ticker") and r.get("execution_date") and r.get("split_from")]
        return pd.DataFrame(out, columns=["symbol", "date", "ratio"])

    def tickers(self, ticker_type: str) -> pd.DataFrame:
        """Active US stock tickers of one type (``CS``, ``ETF``...), all pages (A4): ticker, type, name."""
        rows = self.get_pages("/v3/reference/tickers", {"type": ticker_type, "market": "stocks", "active": "true",
                                                        "limit": 1000}, what=f"the {ticker_type} ticker list")
        return pd.DataFrame([{"ticker": r["ticker"], "type": r.get("type", ticker_type), "name": r.get("name", "")}
                             for r in rows], columns=["ticker", "type", "name"])

    def snapshot(self, tickers: list[str]) -> dict[str, dict]:
        """The stocks snapshot of ``tickers`` (A5), by ticker; raises NotEntitledError on plans without it."""
        body = self.get("/v2/snapshot/locale/us/markets/stocks/tickers", {"tickers": ",".join(tickers)},
                        what="the stocks snapshot")
        return {t["ticker"]: t for t in body.get("tickers") or [] if isinstance(t, dict) and t.get("ticker")}


def _bars_frame(rows: list[dict], session: dt.date | None = None, ticker: str | None = None) -> pd.DataFrame:
    """Polygon bar rows (``T``, o, h, l, c, v, ``t`` in ms) -> BAR_COLUMNS frame, raw.

    Built column by column from the rows: a price missing from some rows is NaN (as a frame built
    from the dicts gives), a volume missing where others have one fails the int64 cast.

    Raises:
        DataError: a row is not an object, or no row has one of the fields every bar needs (``T``
            for grouped daily, o, h, l, c, and ``t`` for a ticker's range): an answer in another
            shape is never stored, so a rerun asks for it again.
    """
    cols = ["symbol", "date", "open", "high", "low", "close", "volume"]
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(cols, [str, object] + [float] * 4 + ["int64"])})
    what = f"session {session}" if session is not None else str(ticker)
    if not all(isinstance(r, dict) for r in rows):
        raise _unexpected(what, "rows that are not objects")
    needed = ["o", "h", "l", "c"] + (["T"] if ticker is None else []) + (["t"] if session is None else [])
    absent = [k for k in needed if not any(k in r for r in rows)]
    if absent:
        raise _unexpected(what, f"no {', '.join(absent)} on any bar")

    def column(key: str) -> np.ndarray:
        return np.array([r.get(key) for r in rows], dtype=float)

    has_volume = any("v" in r for r in rows)
    return pd.DataFrame({
        "symbol": pd.Series([r.get("T") for r in rows]).astype(str) if ticker is None else ticker,
        "date": session if session is not None else [et_date_of_ms(r["t"]) for r in rows],
        "open": column("o"), "high": column("h"), "low": column("l"), "close": column("c"),
        # Index aggregates (I:SPX ...) carry no volume: 0 shares, never a KeyError.
        "volume": pd.Series(column("v")).round().astype("int64") if has_volume else 0,
    })


def _unexpected(what: str, why: str) -> DataError:
    return DataError(f"Polygon answered the bars of {what} in an unexpected shape ({why}); nothing was stored "
                     "for it: try again later.")
