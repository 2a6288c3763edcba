"""Alpaca's market data for the morning re-score: the latest trade of each pick (alpaca-py).

Used by ``PolygonSource.premarket_prices`` on the free Polygon plan (no snapshot) and for what
the snapshot left unpriced.  A source that did not answer at all is ``PriceSourceDown``
(which and why); a symbol without a trade dated the session is only left out.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import requests
import tenacity

from trading_system import sessions
from trading_system.alpaca_http import add_timeout
from trading_system.config import AlpacaBrokerConfig, secret
from trading_system.errors import DataError
from trading_system.marketdata.base import Quote

log = logging.getLogger(__name__)

ALPACA_KEYS = ("ALPACA_API_KEY", "ALPACA_SECRET_KEY")


class PriceSourceDown(DataError):
    """A price source that did not answer at all (``reason``: which and why), unlike one that
    answered without a price for some symbol (that symbol is just left out)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _transient(exc: BaseException) -> bool:
    """Worth asking Alpaca again: network errors, timeouts, 429 and 5xx."""
    status = getattr(exc, "status_code", None) or 0
    return isinstance(exc, (requests.ConnectionError, requests.Timeout)) or status == 429 or status >= 500


def _alpaca_refusal(exc: Exception) -> str:
    """Why Alpaca's market data refused (an alpaca-py ``APIError``, JSON body or not), as a clause."""
    status, message = getattr(exc, "status_code", None), " ".join(str(exc).split())[:160]
    try:
        message = str(json.loads(str(exc)).get("message") or message)
    except (ValueError, AttributeError):
        pass
    if status == 401:
        return f"Alpaca's latest trades: keys refused (HTTP 401: {message}), check ALPACA_API_KEY/ALPACA_SECRET_KEY"
    if status == 403:
        return f"Alpaca's latest trades: not in the keys' data subscription (HTTP 403: {message})"
    return f"Alpaca's latest trades: HTTP {status}: {message}"


def _log_retry(state: tenacity.RetryCallState) -> None:
    """Log a retried read of the latest trades (the failure, and which attempt comes next)."""
    failure = state.outcome.exception() if state.outcome is not None else None
    log.warning("Alpaca latest trades: %s; retry %d", failure, state.attempt_number)


def alpaca_latest_trades(symbols: list[str], session: dt.date,
                         settings: AlpacaBrokerConfig | None = None) -> dict[str, Quote]:
    """Latest trades from Alpaca's market data (alpaca-py): ``{symbol: Quote}`` in dollars, dated ``session`` (ET).

    A symbol with no trade dated ``session`` is left out (Alpaca answered: no trade today).
    Keys ``ALPACA_API_KEY`` / ``ALPACA_SECRET_KEY``; base URL ``ALPACA_DATA_BASE_URL``.
    ``settings`` (``broker.alpaca``): every request's timeouts, and ``read_attempts`` tries on
    network errors, timeouts, 429 and 5xx, back-off from ``retry_wait_seconds`` (tenacity;
    alpaca-py's own fixed 3 s retry is off).

    Raises:
        PriceSourceDown: Alpaca did not answer: no keys, HTTP 401/403 or another refusal,
            unreachable after the retries, or an answer that does not parse.
    """
    settings = settings or AlpacaBrokerConfig()
    key, secret_key = secret("ALPACA_API_KEY"), secret("ALPACA_SECRET_KEY")
    if not (key and secret_key):
        absent = "/".join(n for n, v in zip(ALPACA_KEYS, (key, secret_key)) if not v)
        raise PriceSourceDown(f"Alpaca's latest trades: not asked, no {absent} in the environment or .env")
    from alpaca.common.exceptions import APIError
    from alpaca.data.historical import StockHistoricalDataClient
    from alpaca.data.requests import StockLatestTradeRequest

    base = secret("ALPACA_DATA_BASE_URL")
    client = StockHistoricalDataClient(key, secret_key, url_override=base)
    client._retry = 0  # its own retry sleeps a fixed 3 s (API-NOTES B4): tenacity below instead
    add_timeout(client, settings.connect_timeout_seconds, settings.timeout_seconds)  # none by default (B1)
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_transient), reraise=True,
        stop=tenacity.stop_after_attempt(settings.read_attempts),
        wait=tenacity.wait_exponential(multiplier=settings.retry_wait_seconds, max=8.0),
        before_sleep=_log_retry)
    request = StockLatestTradeRequest(symbol_or_symbols=symbols)
    try:
        trades = retrying(client.get_stock_latest_trade, request)
    except APIError as exc:
        raise PriceSourceDown(_alpaca_refusal(exc)) from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        how = "did not answer in time" if isinstance(exc, requests.Timeout) else "unreachable"
        raise PriceSourceDown(f"Alpaca's latest trades: {base or 'https://data.alpaca.markets'} {how} "
                              f"({exc.__class__.__name__} after {settings.read_attempts} tries)") from exc
    except (OSError, ValueError) as exc:  # another requests error; a body alpaca-py cannot parse
        raise PriceSourceDown(f"Alpaca's latest trades: no usable answer ({exc.__class__.__name__}: "
                              f"{' '.join(str(exc).split())[:120]})") from exc
    out = {}
    for sym, trade in trades.items():
        when = trade.timestamp.astimezone(sessions.ET).date() if trade.timestamp.tzinfo else trade.timestamp.date()
        if when == session and trade.price and trade.price > 0:
            out[sym] = Quote(float(trade.price), "alpaca:latest_trade")
    return out
