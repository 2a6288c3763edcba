"""The backtest's in-memory source answers exactly what the bar store answers, and never peeks."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from trading_system.marketdata.cached import CachedSource
from trading_system.marketdata.store import BarStore

from conftest import SAMPLE

D = dt.date


@pytest.fixture(scope="module")
def store():
    return BarStore(SAMPLE)


@pytest.fixture(scope="module")
def cached(store):
    return CachedSource.from_store(store)


@pytest.mark.parametrize("end,start,symbols,adjust", [
    (D(2020, 8, 28), D(2019, 7, 1), None, None),                       # the Friday before AAPL's and TSLA's splits
    (D(2020, 8, 28), None, ["AAPL", "TSLA", "SPY"], D(2020, 8, 31)),   # the morning of the ex-date
    (D(2021, 4, 21), D(2020, 3, 16), ["NVDA", "AAPL", "QQQ", "NOPE"], None),
    (D(2019, 3, 29), None, None, None),
])
def test_bars_equal_the_store_read_to_the_bit(store, cached, end, start, symbols, adjust):
    want = store.read(end=end, start=start, symbols=symbols, adjust_through=adjust)
    got = cached.bars(end=end, start=start, symbols=symbols, adjust_through=adjust)
    assert got["date"].max() <= end
    got["date"] = got["date"].astype(object)
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_a_split_after_the_as_of_is_not_applied(cached, sample_bars):
    raw = sample_bars[(sample_bars.symbol == "AAPL") & (sample_bars.date == D(2020, 8, 28))]["close"].item()
    assert raw == 499.23  # as traded, the Friday before the 4-for-1 split
    before = cached.bars(end=D(2020, 8, 28), start=D(2020, 8, 1), symbols=["AAPL"])
    assert before.loc[before["date"] == D(2020, 8, 28), "close"].item() == raw
    # Once the ex-date is known (the morning of 2020-08-31), history is on the new share basis.
    after = cached.bars(end=D(2020, 8, 28), start=D(2020, 8, 1), symbols=["AAPL"], adjust_through=D(2020, 8, 31))
    assert after.loc[after["date"] == D(2020, 8, 28), "close"].item() == pytest.approx(raw / 4.0)
    # and going back in time un-learns it again (the factors follow the as-of, not the last call)
    again = cached.bars(end=D(2020, 8, 28), start=D(2020, 8, 1), symbols=["AAPL"])
    assert again.loc[again["date"] == D(2020, 8, 28), "close"].item() == raw


def test_session_reads_are_the_raw_bars_of_that_session(cached, sample_bars):
    day = D(2020, 8, 31)
    raw = sample_bars[sample_bars.date == day].set_index("symbol")
    quotes = cached.premarket_prices(["AAPL", "SPY", "NOPE"], day)
    assert set(quotes) == {"AAPL", "SPY"}
    assert quotes["AAPL"].price == raw.loc["AAPL", "open"] == 127.58
    bars = cached.session_bars(day)
    assert np.array_equal(bars.loc[raw.index, "open"].to_numpy(), raw["open"].to_numpy())
    # marks: the close on that day's share basis, and the last close before it for a day without a bar
    assert cached.closes(day, ["AAPL"]) == {"AAPL": 129.04}
    saturday = cached.closes(D(2020, 8, 29), ["AAPL"])["AAPL"]
    assert saturday == 499.23  # the ex-date is not known yet on Saturday


def test_range_and_files(cached, tmp_path):
    assert cached.first_date() == D(2019, 1, 2) and cached.last_date() == D(2021, 4, 21)
    assert cached.symbol_dates("VTRS")[0] == D(2020, 11, 16)  # PROVENANCE: VTRS starts 2020-11-16
    from trading_system.errors import AsOfError, BadInputError

    with pytest.raises(AsOfError):
        cached.ensure_session(D(2018, 12, 31))
    with pytest.raises(BadInputError, match="not found"):
        CachedSource.from_files(tmp_path / "none.parquet", SAMPLE / "splits.csv")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(BadInputError, match="not a Parquet file"):
        CachedSource.from_files(tmp_path / "bad.parquet", SAMPLE / "splits.csv")
