import datetime as dt

import pandas as pd
import pytest

from trading_system.marketdata.store import BarStore, split_adjust
from conftest import SAMPLE

D = dt.date


@pytest.fixture(scope="module")
def store():
    return BarStore(SAMPLE)


def test_split_applied_on_read(store):
    # AAPL split 4:1 with ex-date 2020-08-31; raw close on 2020-08-28 was 499.23.
    bars = store.read(end=D(2020, 9, 1), symbols=["AAPL"]).set_index("date")
    assert bars.loc[D(2020, 8, 28), "close"] == pytest.approx(499.23 / 4)
    assert bars.loc[D(2020, 8, 31), "close"] == pytest.approx(129.04)
    raw = store.raw_bars()
    raw_vol = raw[(raw.symbol == "AAPL") & (raw.date == D(2020, 8, 28))]["volume"].iloc[0]
    assert bars.loc[D(2020, 8, 28), "volume"] == pytest.approx(raw_vol * 4)


def test_read_is_clamped_and_split_after_clamp_is_unknown(store):
    bars = store.read(end=D(2020, 8, 28), symbols=["AAPL"])
    assert bars["date"].max() == D(2020, 8, 28)
    # The 2020-08-31 split is in the future on 2020-08-28: prices stay as traded.
    assert bars.set_index("date").loc[D(2020, 8, 28), "close"] == pytest.approx(499.23)


def test_adjust_through_the_traded_session(store):
    bars = store.read(end=D(2020, 8, 28), symbols=["AAPL"], adjust_through=D(2020, 8, 31))
    assert bars["date"].max() == D(2020, 8, 28)
    assert bars.set_index("date").loc[D(2020, 8, 28), "close"] == pytest.approx(499.23 / 4)


def test_compounded_splits():
    # Synthetic frame (two bars, two splits) to check compounding; the figures are arbitrary.
    bars = pd.DataFrame({"symbol": ["X", "X"], "date": [D(2020, 1, 2), D(2020, 3, 2)],
                         "open": [60.0, 10.0], "high": [60.0, 10.0], "low": [60.0, 10.0],
                         "close": [60.0, 10.0], "volume": [100, 100]})
    splits = pd.DataFrame({"symbol": ["X", "X"], "date": [D(2020, 2, 3), D(2020, 3, 2)], "ratio": [2.0, 3.0]})
    out = split_adjust(bars, splits, through=D(2020, 3, 2))
    assert list(out["close"]) == [10.0, 10.0]
    assert list(out["volume"]) == [600.0, 100.0]


def test_write_bars_merges_and_persists(tmp_path, store):
    new = BarStore(tmp_path)
    assert new.raw_bars().empty
    cut = store.raw_bars()
    first = cut[(cut.symbol == "MSFT") & (cut.date <= D(2021, 4, 16))].tail(3)
    new.write_bars(first)
    again = cut[(cut.symbol == "MSFT") & (cut.date >= D(2021, 4, 15))].head(3)
    new.write_bars(again)
    reread = BarStore(tmp_path).raw_bars()
    assert list(reread["date"]) == sorted(set(first["date"]) | set(again["date"]))
    assert not list(tmp_path.glob(".*.tmp"))


# --- issue 8 item 11: junk in splits.csv is bad input naming the file and the line ---------------

from trading_system.errors import BadInputError  # noqa: E402


def _store_with_splits(tmp_path, text: str | bytes) -> BarStore:
    path = tmp_path / "splits.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return BarStore(tmp_path)


@pytest.mark.parametrize("row, why", [
    ("AAPL,not-a-date,4.0", "date"),
    ("AAPL,2020-08-31,four", "ratio"),
    ("AAPL,2020-08-31,0", "ratio 0 would divide prices by zero"),
    ("AAPL,2020-08-31,-2", "negative ratio"),
    ("AAPL,2020-08-31,inf", "infinite ratio"),
    (",2020-08-31,4.0", "no symbol"),
    ("AAPL,2020-08-31", "missing field"),
])
def test_item11_junk_row_in_splits_is_bad_input_naming_file_and_line(tmp_path, row, why):
    head = (SAMPLE / "splits.csv").read_text().splitlines()[:4]   # header + 3 real rows
    store = _store_with_splits(tmp_path, "\n".join(head + [row]) + "\n")
    with pytest.raises(BadInputError, match=r"splits file .*splits\.csv line 5 "):
        store.splits()


@pytest.mark.parametrize("content, words", [
    (bytes(range(256)) * 4, "cannot be read as CSV"),
    ("symbol,when,ratio\nAAPL,2020-08-31,4.0\n", "has no column date"),
    ("", "cannot be read as CSV"),
])
def test_item11_splits_file_that_is_not_a_splits_csv(tmp_path, content, words):
    with pytest.raises(BadInputError, match=words):
        _store_with_splits(tmp_path, content).splits()


def test_item11_splits_of_the_sample_still_read_the_same(store):
    sp = store.splits()
    assert len(sp) == len((SAMPLE / "splits.csv").read_text().splitlines()) - 1
    aapl = sp[(sp.symbol == "AAPL") & (sp.date == D(2020, 8, 31))]
    assert list(aapl["ratio"]) == [4.0]
    assert isinstance(sp["date"].iloc[0], dt.date)


# --- the bar files are parsed once per process (a cache keyed by each file's stamp) ----------------------


def _msft(store: BarStore) -> pd.DataFrame:
    """Three real MSFT bars of the sample (2021-04-14 .. 16), raw."""
    raw = store.raw_bars()
    return raw[(raw.symbol == "MSFT") & (raw.date >= D(2021, 4, 14)) & (raw.date <= D(2021, 4, 16))]


def test_a_write_by_one_store_is_what_the_next_store_reads(tmp_path, store):
    BarStore(tmp_path).write_bars(_msft(store).head(2))
    assert len(BarStore(tmp_path).raw_bars()) == 2            # parsed and kept for this stamp
    BarStore(tmp_path).write_bars(_msft(store).tail(1))
    assert list(BarStore(tmp_path).raw_bars()["date"]) == [D(2021, 4, 14), D(2021, 4, 15), D(2021, 4, 16)]
    (tmp_path / "splits.csv").write_text("symbol,date,ratio\nMSFT,2021-04-15,2.0\n")
    assert BarStore(tmp_path).splits()["ratio"].tolist() == [2.0]
    BarStore(tmp_path).write_splits(pd.DataFrame({"symbol": ["MSFT"], "date": [D(2021, 4, 15)], "ratio": [4.0]}))
    assert BarStore(tmp_path).splits()["ratio"].tolist() == [4.0]


def test_a_file_rewritten_in_place_with_its_old_mtime_and_size_is_read_again(tmp_path):
    """Synthetic splits (same length, another ratio): rewritten in place with the old mtime put back, as
    ``cp -p`` would leave it; the inode, the size and the mtime match the first file, the ctime does not."""
    path = tmp_path / "splits.csv"
    path.write_text("symbol,date,ratio\nMSFT,2021-04-15,2.0\n")
    assert BarStore(tmp_path).splits()["ratio"].tolist() == [2.0]
    before = path.stat()
    with open(path, "r+") as fh:
        fh.write("symbol,date,ratio\nMSFT,2021-04-15,5.0\n")
    import os

    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert BarStore(tmp_path).splits()["ratio"].tolist() == [5.0]


def test_a_callers_change_to_a_frame_never_reaches_another_store(store):
    bars, splits = BarStore(SAMPLE).raw_bars(), BarStore(SAMPLE).splits()
    bars.loc[bars["symbol"] == "AAPL", "open"] = 0.0
    splits.loc[:, "ratio"] = 1.0
    assert BarStore(SAMPLE).session_opens(D(2021, 4, 16))["AAPL"] == pytest.approx(134.3)
    assert BarStore(SAMPLE).splits().set_index(["symbol", "date"]).loc[("AAPL", D(2020, 8, 31)), "ratio"] == 4.0
