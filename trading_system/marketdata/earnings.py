"""Earnings report dates for the evening's event gate (DESIGN §11): a CSV file, Polygon's Benzinga
earnings endpoint, or none.

Every provider answers one question, ``reports(symbols, start, end)``: the reports of ``symbols``
that apply to a session in [start, end] (both sessions), and which of ``symbols`` it covers.
A report dated a weekend or a holiday applies to the next session (``report_session``).  The time
of day is ``bmo`` (before the open), ``amc`` (after the close) or None (not given, or during the
session: the gate then treats it as after the close, the cautious reading).

A symbol the provider does not cover is *unknown*, never "no report"; a provider that cannot
answer for the whole window raises ``EarningsUnavailable`` (a ``DataError``), so a stale or
broken source can never say "no event".
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import pandas as pd

from trading_system import sessions
from trading_system.errors import DataError
from trading_system.marketdata.base import NotEntitledError

if TYPE_CHECKING:
    from trading_system.config import Config
    from trading_system.marketdata.polygon import PolygonClient

BENZINGA_EARNINGS = "/benzinga/v1/earnings"
PAGE_LIMIT = 1000          # rows per page asked of Benzinga (its maximum is 50,000; default 100)
OPEN, CLOSE = dt.time(9, 30), dt.time(16, 0)   # regular hours, ET

_BMO = {"bmo", "before open", "before the open", "before market open", "before the market opens",
        "pre-market", "premarket", "pre market"}
_AMC = {"amc", "after close", "after the close", "after market close", "after the market closes",
        "post-market", "postmarket", "post market", "after hours", "after-hours"}
_UNKNOWN = {"", "tns", "time not supplied", "unknown", "none", "dmh", "during market hours"}
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


class EarningsUnavailable(DataError):
    """The provider cannot answer for the window asked: down, not entitled, malformed or out of date."""


@dataclasses.dataclass(frozen=True)
class Report:
    """One earnings report: ``session`` is the session it applies to (``published`` moved past a
    weekend or holiday), ``time`` ``bmo`` / ``amc`` / None (not given)."""

    symbol: str
    session: dt.date
    time: str | None
    published: dt.date


@dataclasses.dataclass(frozen=True)
class EarningsAnswer:
    """A provider's answer: the reports in the window (sorted by session, symbol) and the symbols
    asked about that it covers (the others are unknown, not clear)."""

    source: str
    reports: tuple[Report, ...]
    covered: frozenset[str]


class EarningsProvider(Protocol):
    """A source of earnings report dates."""

    name: str

    def reports(self, symbols: list[str], start: dt.date, end: dt.date) -> EarningsAnswer:
        """The reports of ``symbols`` applying to a session in [start, end] (sessions, ET dates).

        Raises:
            DataError: the provider cannot answer for all of [start, end] (``EarningsUnavailable``:
                out of date, malformed, not entitled), or it failed (unreachable, refused).
        """
        ...


def time_of_day(text: object) -> str | None:
    """A provider's time of day -> ``bmo``, ``amc`` or None (not given, or during the session).

    Accepts bmo/amc and their spelled-out forms (before/after the open/close, pre-/post-market),
    blanks, and clock times HH:MM[:SS] in ET (Benzinga's form): before 09:30 -> bmo, from 16:00
    -> amc, 00:00:00 -> None (midnight stands for "no time"), in between -> None.

    Raises:
        ValueError: anything else (the caller names its file or vendor).
    """
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return None
    word = " ".join(str(text).strip().lower().split())
    if word in _BMO:
        return "bmo"
    if word in _AMC:
        return "amc"
    if word in _UNKNOWN:
        return None
    m = _CLOCK.match(word)
    if not m or int(m[1]) > 23 or int(m[2]) > 59 or int(m[3] or 0) > 59:
        raise ValueError(f"unknown time of day '{text}'")
    clock = dt.time(int(m[1]), int(m[2]), int(m[3] or 0))
    if clock == dt.time(0, 0):
        return None
    return "bmo" if clock < OPEN else "amc" if clock >= CLOSE else None


def report_session(day: dt.date) -> dt.date:
    """The session a report dated ``day`` applies to: ``day`` itself, or the next session after a
    weekend or holiday.  Raises ``AsOfError`` for a date outside the exchange calendar."""
    return day if sessions.is_session(day) else sessions.next_session(day)


def first_report_day(start: dt.date) -> dt.date:
    """The earliest publication date whose report applies to a session >= ``start``: the day after
    the session before ``start`` (so a Sunday report counts for Monday)."""
    return sessions.previous_session(start) + dt.timedelta(days=1)


def _answer(source: str, rows: list[tuple[str, dt.date, str | None]], symbols: list[str],
            covered: frozenset[str], start: dt.date, end: dt.date) -> EarningsAnswer:
    """Rows (symbol, published date, time) -> the answer: moved to their sessions, kept when the
    symbol was asked and the session is in [start, end]."""
    wanted, lo = set(symbols), first_report_day(start)
    out = {Report(s, report_session(d), t if isinstance(t, str) else None, d)
           for s, d, t in rows if s in wanted and lo <= d <= end}
    kept = sorted((r for r in out if start <= r.session <= end),
                  key=lambda r: (r.session, r.symbol, r.published, r.time or ""))   # ties: never the set's order
    return EarningsAnswer(source, tuple(kept), covered & wanted)


@dataclasses.dataclass(frozen=True)
class _Table:
    """A checked earnings file, held for the questions of a process: the table, the symbols it
    covers, and its rows as (symbol, date, time) sorted by date with the dates alone beside them
    (a window is then two binary searches, not a scan of the file)."""

    frame: pd.DataFrame
    covered: frozenset[str]
    dates: list[dt.date]
    rows: list[tuple[str, dt.date, str | None]]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "_Table":
        ordered = frame.sort_values("date", kind="stable")
        rows = list(zip(ordered["symbol"], ordered["date"], ordered["time"]))
        return cls(frame, frozenset(frame["symbol"]), [r[1] for r in rows], rows)

    def between(self, first: dt.date, last: dt.date) -> list[tuple[str, dt.date, str | None]]:
        """The rows dated in [first, last], by date."""
        return self.rows[bisect.bisect_left(self.dates, first):bisect.bisect_right(self.dates, last)]


#: The last earnings file read: (path, mtime_ns, size) -> its checked table.
_TABLES: dict[tuple[str, int, int], _Table] = {}


class CsvEarnings:
    """Report dates from a CSV file with columns ``symbol,date`` and an optional ``time``.

    ``date`` is YYYY-MM-DD (the publication date; a weekend or holiday applies to the next session);
    ``time`` is bmo / amc, a spelled-out form, a clock time HH:MM[:SS] ET, or blank (not given).

    Coverage: a symbol with at least one row is *covered*; the others are unknown.  The file
    *covers through* its last date: a window ending after it is not covered, and ``reports``
    raises ``EarningsUnavailable`` rather than answer, because a stale file must never say
    "no event".  The file is read once, on the first question.
    """

    name = "csv"

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._table: _Table | None = None

    def _read(self) -> pd.DataFrame:
        """The checked table: symbol (str), date (date), time (bmo/amc/None).

        Raises:
            EarningsUnavailable: the file is missing, not a regular file, unreadable, has no
                ``symbol`` or ``date`` column, no row, a blank symbol, a date that is not YYYY-MM-DD
                or an unknown time of day; one sentence naming the file (and the line).
        """
        where = f"earnings file {self.path}"
        if not self.path.is_file():
            what = "does not exist" if not self.path.exists() else "is not a regular file"
            raise EarningsUnavailable(f"{where} {what}; set events.file to a CSV with columns symbol,date[,time].")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)  # more cells than the header
                raw = pd.read_csv(self.path, dtype=str, keep_default_na=False, skipinitialspace=True, index_col=False)
        except pd.errors.ParserWarning as exc:
            raise EarningsUnavailable(f"{where} has a row with more cells than its header.") from exc
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise EarningsUnavailable(f"{where} cannot be read as CSV ({exc.__class__.__name__}: "
                                      f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'empty'}).") from exc
        raw.columns = [str(c).strip().lower() for c in raw.columns]
        missing = [c for c in ("symbol", "date") if c not in raw.columns]
        if missing:
            raise EarningsUnavailable(f"{where} has no '{missing[0]}' column (it needs symbol,date[,time]).")
        if raw.empty:
            raise EarningsUnavailable(f"{where} has no rows, so it covers no date.")
        return self._checked(raw, where)

    @staticmethod
    def _checked(raw: pd.DataFrame, where: str) -> pd.DataFrame:
        """Parse and check every row (line numbers count the header as line 1)."""
        symbols = raw["symbol"].str.strip()
        blank = symbols == ""
        if blank.any():
            raise EarningsUnavailable(f"{where} line {int(blank.to_numpy().argmax()) + 2} has no symbol.")
        text = raw["date"].str.strip()
        dates = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
        if dates.isna().any():
            i = int(dates.isna().to_numpy().argmax())
            raise EarningsUnavailable(f"{where} line {i + 2} has date '{text.iloc[i]}', not YYYY-MM-DD.")
        times: list[str | None] = [None] * len(raw)
        if "time" in raw.columns:
            for i, value in enumerate(raw["time"]):
                try:
                    times[i] = time_of_day(value)
                except ValueError:
                    raise EarningsUnavailable(f"{where} line {i + 2} has time '{value}'; use bmo, amc, "
                                              "HH:MM or leave it blank.") from None
        return pd.DataFrame({"symbol": symbols, "date": dates.dt.date, "time": pd.Series(times, dtype=object)})

    def table(self) -> pd.DataFrame:
        """The whole file, checked: read once per process while the file is unchanged (a backtest asks
        every night).  Raises ``EarningsUnavailable`` as ``_read``."""
        return self._held().frame

    def _held(self) -> _Table:
        if self._table is None:
            try:
                st = self.path.stat()
                key = (str(self.path.resolve()), st.st_mtime_ns, st.st_size)
            except OSError:
                key = None
            if key is not None and key in _TABLES:
                self._table = _TABLES[key]
            else:
                self._table = _Table.of(self._read())
                if key is not None:
                    _TABLES.clear()
                    _TABLES[key] = self._table
        return self._table

    def covers_through(self) -> dt.date:
        """The last date of the file: no window may end after it."""
        return self._held().dates[-1]

    def reports(self, symbols: list[str], start: dt.date, end: dt.date) -> EarningsAnswer:
        """The file's reports of ``symbols`` applying to a session in [start, end].

        Raises:
            EarningsUnavailable: the file is malformed (see ``_read``), or its dates end before
                ``end`` or start after ``start``.
        """
        held = self._held()
        first, last = held.dates[0], held.dates[-1]
        if end > last:
            raise EarningsUnavailable(f"earnings file {self.path} covers report dates only through {last}, "
                                      f"before the window's end {end}; update it (a stale file cannot say "
                                      "there is no report).")
        if start < first:
            raise EarningsUnavailable(f"earnings file {self.path} starts on {first}, after the window's start "
                                      f"{start}; it cannot say there is no report before it.")
        return _answer(self.name, held.between(first_report_day(start), end), symbols, held.covered, start, end)


class PolygonEarnings:
    """Report dates from Polygon's (Massive's) Benzinga earnings endpoint (an add-on entitlement).

    Endpoint facts, from the vendor: ``GET /benzinga/v1/earnings``
    (https://polygon.io/docs/rest/partners/benzinga/earnings; the official client
    ``massive-com/client-python`` ``massive/rest/benzinga.py::list_benzinga_earnings``, which sends
    filters as ``date.gte`` / ``date.lte``, and ``massive/rest/models/benzinga.py::BenzingaEarning``).
    Query: ``date`` (YYYY-MM-DD, with ``.gte`` / ``.lte``), ``ticker``, ``date_status``
    (``projected`` or ``confirmed``), ``limit`` (default 100, max 50,000), ``sort``; pages through
    ``next_url``.  Each result has ``ticker``, ``date`` (YYYY-MM-DD), ``time`` (HH:MM:SS; ET, as
    Benzinga's own calendar API gives it), ``date_status`` and the EPS / revenue figures.  A key
    without the add-on gets 403 NOT_AUTHORIZED "You are not entitled to this data" (A7).

    One question asks for every report in the window, all tickers (a few days hold a few
    hundred to a few thousand rows: one to a few requests at ``PAGE_LIMIT`` a page), and keeps
    the symbols asked: a long ticker list in the URL is avoided.  Projected dates count as well
    as confirmed ones (the cautious reading).

    Coverage: when the answer succeeds, every symbol asked is covered; a symbol with no row has no
    report Benzinga knows of in the window (Benzinga's calendar spans the US-listed names; this
    is the vendor's word, not a check).  A failure covers nothing: ``reports`` raises.
    """

    name = "polygon"

    def __init__(self, client: PolygonClient):
        self.client = client

    def reports(self, symbols: list[str], start: dt.date, end: dt.date) -> EarningsAnswer:
        """Benzinga's reports of ``symbols`` applying to a session in [start, end].

        Raises:
            EarningsUnavailable: 403 (the key has no Benzinga entitlement), or a row whose date or
                time cannot be read.
            DataError: Polygon failed (unreachable, retries exhausted, another refusal).
        """
        lo = first_report_day(start)
        what = f"Benzinga earnings from {lo} to {end}"
        try:
            params = {"date.gte": f"{lo:%Y-%m-%d}", "date.lte": f"{end:%Y-%m-%d}", "limit": PAGE_LIMIT}
            rows = self.client.get_pages(BENZINGA_EARNINGS, params, what=what)
        except NotEntitledError as exc:
            raise EarningsUnavailable("the Polygon key is not entitled to Benzinga earnings (403 not entitled); add "
                                      "the Benzinga earnings add-on or set events.provider to csv or none.") from exc
        return _answer(self.name, [_benzinga_row(r, what) for r in rows if r.get("ticker") and r.get("date")],
                       symbols, frozenset(symbols), start, end)


def _benzinga_row(row: dict, what: str) -> tuple[str, dt.date, str | None]:
    """One Benzinga result -> (ticker, date, time of day).  Raises ``EarningsUnavailable`` naming it."""
    try:
        return str(row["ticker"]), dt.date.fromisoformat(str(row["date"])[:10]), time_of_day(row.get("time"))
    except ValueError as exc:
        raise EarningsUnavailable(f"Polygon answered {what} with an unreadable row for {row.get('ticker')} "
                                  f"(date '{row.get('date')}', time '{row.get('time')}').") from exc


class NoEarnings:
    """``events.provider: none``: no report dates; every symbol is unknown, none is clear."""

    name = "none"

    def reports(self, symbols: list[str], start: dt.date, end: dt.date) -> EarningsAnswer:
        """An answer with no report and no symbol covered."""
        return EarningsAnswer(self.name, (), frozenset())


def make_earnings(cfg: Config, polygon_client: Callable[[], PolygonClient] | None = None) -> EarningsProvider:
    """The provider ``cfg.events.provider`` names: ``csv`` (``events.file`` resolved against the
    config's folder; by default ``earnings.csv`` in ``data.sample_dir``, the sample's real report
    dates, which end 2021-06-30: later nights find it stale and the gate says it is unavailable),
    ``polygon`` (a client from ``polygon_client``, by default
    ``PolygonClient.from_env(cfg.polygon)``) or ``none``.

    Raises:
        ConfigError: ``polygon`` without ``POLYGON_API_KEY`` (from the default client factory).
    """
    provider = cfg.events.provider
    if provider == "csv":
        default = Path(cfg.data.sample_dir) / "earnings.csv"   # beside the sample's bars, like its index bars
        return CsvEarnings(cfg.path(cfg.events.file or str(default)))
    if provider == "polygon":
        from trading_system.marketdata.polygon import PolygonClient  # the HTTP client, only when asked for

        return PolygonEarnings(polygon_client() if polygon_client else PolygonClient.from_env(cfg.polygon))
    return NoEarnings()
