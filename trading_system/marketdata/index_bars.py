"""Daily closes of the market's indices (``I:SPX``, ``I:NDX``, ``I:RUT``, ``I:VIX``) for the regime
(DESIGN §11): from a local Parquet file (the offline sample, a backtest's data) or from Polygon's
index aggregates (which need an indices entitlement: a key without one gets ``NotEntitledError``).

Every answer is clamped to [start, end]: no close dated after the as-of session reaches the regime.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from pathlib import Path

import pandas as pd

from trading_system.errors import DataError

#: The file of index bars beside a store's ``bars.parquet`` (see data/sample/PROVENANCE.md).
CONTEXT_FILE = "market_context.parquet"


def closes_from_file(path: Path, tickers: list[str], start: dt.date, end: dt.date) -> dict[str, pd.Series]:
    """ticker -> closes (index date, oldest first) dated in [start, end], from a Parquet file of
    symbol, date, close (as ``market_context.parquet``). Tickers the file lacks are left out.

    Raises:
        DataError: the file is missing or is not such a Parquet file.
    """
    try:
        frame = pd.read_parquet(path, columns=["symbol", "date", "close"])
    except FileNotFoundError as exc:
        raise DataError(f"no index bars: {path} not found") from exc
    except Exception as exc:  # noqa: BLE001 (pyarrow raises several kinds for a bad file)
        raise DataError(f"index bars {path} cannot be read ({exc.__class__.__name__})") from exc
    frame["date"] = pd.to_datetime(frame["date"]).dt.date
    frame = frame[(frame["date"] >= start) & (frame["date"] <= end) & frame["symbol"].isin(tickers)]
    return {str(t): g.set_index("date")["close"].astype(float).sort_index()
            for t, g in frame.groupby("symbol", sort=True)}


def closes_from_polygon(client, tickers: list[str], start: dt.date, end: dt.date) -> dict[str, pd.Series]:
    """ticker -> closes dated in [start, end] from Polygon's daily aggregates of each index
    (``/v2/aggs/ticker/I:SPX/range/1/day/{start}/{end}``; index bars carry no volume).

    Raises:
        NotEntitledError: the key has no indices entitlement (403).
        DataError: Polygon did not answer (after the client's retries).
    """
    from trading_system.marketdata.polygon import et_date_of_ms

    out: dict[str, pd.Series] = {}
    for ticker in tickers:
        path = (f"/v2/aggs/ticker/{urllib.parse.quote(ticker, safe='')}/range/1/day/"
                f"{start:%Y-%m-%d}/{end:%Y-%m-%d}")
        rows = client.get_pages(path, {"sort": "asc", "limit": 50000}, what=f"daily bars of {ticker}")
        points = {et_date_of_ms(r["t"]): float(r["c"]) for r in rows if "t" in r and "c" in r}
        series = pd.Series(points, dtype=float).sort_index()
        out[ticker] = series[(series.index >= start) & (series.index <= end)] if len(series) else series
    return out
