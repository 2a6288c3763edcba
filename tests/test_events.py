"""The earnings gate (DESIGN §11) on real report dates: data/sample/earnings.csv, the sample's scan of
the evening of 2020-10-26, Polygon's Benzinga endpoint on the loopback fake.

Real facts used: ENPH, CNC, DTE, EIX, LH, OKE and UNM report on 2020-10-27 and NXPI on
2020-10-26, all picks of the 2020-10-26 scan; AAL's row dated 2020-10-18 is the sample's one
weekend date (a Sunday); FB, GOOGL, A and ABT have no row (the sample covers 257 symbols).
Times of day are not in the sample: where a test needs one, it writes a small CSV with the real
date and a chosen time, and says so.
"""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest

from conftest import SAMPLE, write_config
from trading_system.config import BucketsConfig, EligibilityConfig, PolygonConfig, ScoringConfig, load_config
from trading_system.config_context import EventsConfig
from trading_system.errors import DataError
from trading_system.marketdata.earnings import (CsvEarnings, EarningsUnavailable, NoEarnings, PolygonEarnings,
                                                make_earnings, time_of_day)
from trading_system.marketdata.polygon import NotEntitledError, PolygonClient
from trading_system.marketdata.store import split_adjust
from trading_system.prepare.context.events import earnings_gate, earnings_window
from trading_system.prepare.scoring import score_universe

SCAN, TARGET = dt.date(2020, 10, 26), dt.date(2020, 10, 27)
REPORTING = {"CNC", "DTE", "EIX", "ENPH", "LH", "NXPI", "OKE", "UNM"}          # picks reporting 10-26/10-27
NEXT_DAY = {"ADP", "AMP", "ETR", "F", "GRMN", "NOW", "RJF", "TEL", "UPS", "WELL"}  # picks reporting 10-28
ENPH_REASON = "earnings report on 2020-10-27 (time not given): it can move the price before the target session ends"


@pytest.fixture(scope="module")
def scan() -> pd.DataFrame:
    """The default scan of the close of 2020-10-26 over the sample, split-adjusted as of that session."""
    raw = pd.read_parquet(SAMPLE / "bars.parquet")
    splits = pd.read_csv(SAMPLE / "splits.csv")
    splits["date"] = pd.to_datetime(splits["date"]).dt.date
    bars = split_adjust(raw[raw["date"] <= SCAN], splits, SCAN)
    return score_universe(bars, SCAN, ScoringConfig(), EligibilityConfig(), BucketsConfig())


@pytest.fixture(scope="module")
def csv() -> CsvEarnings:
    return CsvEarnings(SAMPLE / "earnings.csv")


def gate(scan, source, scan_session=SCAN, target=TARGET, **cfg):
    return earnings_gate(scan, scan_session, target, source, EventsConfig(**cfg), list(scan.index))


def small_csv(tmp_path, text: str, name: str = "earnings.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------- the rule

def test_enph_reporting_on_the_target_session_leaves_the_plan_made_the_evening_before(scan, csv):
    assert scan.loc["ENPH", "pick"] and REPORTING <= set(scan.index[scan["pick"]])
    record, removed = gate(scan, csv)
    assert record.status == "ok" and record.source == "csv"
    assert record.window == [SCAN, TARGET]
    assert removed == REPORTING == set(record.removed)
    assert record.removed["ENPH"] == ENPH_REASON
    # NXPI reports on the scan session with no time given: after the close, as far as the gate knows
    assert record.removed["NXPI"] == ("earnings report on 2020-10-26 (time not given): it can move the price "
                                      "before the target session ends")
    enph = [e for e in record.events if e.symbol == "ENPH"]
    assert [(e.date, e.time, e.source) for e in enph] == [(TARGET, None, "csv")]
    # non-picks that report are listed as events but never "removed"
    assert {"ARE", "MSFT"} <= {e.symbol for e in record.events} and not {"ARE", "MSFT"} & removed


def test_within_sessions_widens_the_window_to_the_sessions_after_the_target(scan, csv):
    record, removed = gate(scan, csv, within_sessions=1)
    assert record.window == [SCAN, TARGET, dt.date(2020, 10, 28)]
    assert removed == REPORTING | NEXT_DAY
    assert record.removed["UPS"].startswith("earnings report on 2020-10-28 (time not given): it falls in the sessions "
                                            "events.within_sessions adds after the target session 2020-10-27")


def test_the_window_runs_from_the_scan_session_over_weekends_and_holidays():
    assert earnings_window(dt.date(2020, 11, 25), dt.date(2020, 11, 27), 1) == [
        dt.date(2020, 11, 25), dt.date(2020, 11, 27), dt.date(2020, 11, 30)]  # Thanksgiving 11-26 skipped


def test_a_weekend_report_applies_to_the_next_session(scan, csv):
    friday, monday = dt.date(2020, 10, 16), dt.date(2020, 10, 19)
    (report,) = csv.reports(["AAL"], monday, monday).reports
    assert (report.published, report.session) == (dt.date(2020, 10, 18), monday)  # the sample's one Sunday row
    assert csv.reports(["AAL"], dt.date(2020, 10, 15), friday).reports == ()
    # the gate of Friday evening, as though AAL were a pick (it was not: score 45)
    as_pick = scan.assign(pick=scan.index == "AAL")
    record, removed = gate(as_pick, csv, scan_session=friday, target=monday)
    assert removed == {"AAL"}
    assert record.removed["AAL"] == ("earnings report dated 2020-10-18 (Sunday, so it applies to session 2020-10-19) "
                                     "(time not given): it can move the price before the target session ends")


@pytest.mark.parametrize("time, leaves", [("bmo", False), ("07:00", False), ("Before the open", False),
                                          ("amc", True), ("16:05:00", True), ("", True), ("00:00:00", True)])
def test_only_a_report_before_the_open_of_the_scan_session_is_already_in_the_close(scan, tmp_path, time, leaves):
    # test input derived from real dates: NXPI's 2020-10-26 and ENPH's 2020-10-27 rows, with a chosen time
    path = small_csv(tmp_path, f"symbol,date,time\nNXPI,2020-10-26,{time}\nENPH,2020-10-27,bmo\n")
    record, removed = gate(scan, CsvEarnings(path))
    assert removed == ({"NXPI", "ENPH"} if leaves else {"ENPH"})  # ENPH: the target session, bmo or not
    assert record.removed["ENPH"] == ("earnings report on 2020-10-27 (before the open): it can move the price "
                                      "before the target session ends")


def test_names_the_provider_does_not_cover_are_unknown_and_stay_picks(scan, csv):
    record, removed = gate(scan, csv)
    assert {"FB", "GOOGL", "A", "ABT"} <= set(record.unknown) and scan.loc[["FB", "GOOGL", "A", "ABT"], "pick"].all()
    assert not set(record.unknown) & removed and "ENPH" not in record.unknown
    assert len(record.unknown) == 249 and record.note.startswith("249 scored names have no earnings data from csv")


def test_off_and_none_remove_nothing(scan, csv):
    record, removed = gate(scan, csv, enabled=False)
    assert (record.status, removed, record.events) == ("off", set(), [])
    record, removed = gate(scan, NoEarnings(), provider="none")
    assert (record.status, record.source, removed) == ("off", "none", set())
    # a none provider behind an enabled csv setting still says "unknown", never "clear"
    record, removed = gate(scan, NoEarnings())
    assert record.status == "ok" and removed == set() and len(record.unknown) == len(scan)


# ------------------------------------------------------------------------------- stale or broken

def test_a_file_that_ends_before_the_window_is_unavailable_not_clear(scan, tmp_path):
    sample = pd.read_csv(SAMPLE / "earnings.csv")
    path = tmp_path / "earnings.csv"
    sample[sample["date"] <= "2020-10-26"].to_csv(path, index=False)  # last updated the evening of 10-26
    record, removed = gate(scan, CsvEarnings(path))
    assert (record.status, removed, record.removed, record.events) == ("unavailable", set(), {}, [])
    assert str(path) in record.note and "through 2020-10-26" in record.note and record.note.count("\n") == 0
    with pytest.raises(DataError, match=r"^The earnings gate is required .*through 2020-10-26.*\.$"):
        gate(scan, CsvEarnings(path), required=True)


def test_the_sample_file_is_stale_after_2021_06_30(scan, csv):
    assert csv.covers_through() == dt.date(2021, 6, 30)
    with pytest.raises(EarningsUnavailable, match="only through 2021-06-30, before the window's end 2021-07-01"):
        csv.reports(["ENPH"], dt.date(2021, 6, 30), dt.date(2021, 7, 1))
    assert csv.reports(["ENPH"], dt.date(2021, 6, 29), dt.date(2021, 6, 30)).reports == ()


@pytest.mark.parametrize("text, words", [
    ("symbol,when\nENPH,2020-10-27\n", "no 'date' column"),
    ("ticker,date\nENPH,2020-10-27\n", "no 'symbol' column"),
    ("symbol,date\nENPH,2020-10-27\nNXPI,10/26/2020\n", "line 3 has date '10/26/2020', not YYYY-MM-DD"),
    ("symbol,date\nENPH,2020-02-30\n", "line 2 has date '2020-02-30'"),
    ("symbol,date,time\nENPH,2020-10-27,noon\n", "line 2 has time 'noon'"),
    ("symbol,date\n,2020-10-27\n", "line 2 has no symbol"),
    ("symbol,date\n", "has no rows"),
    ("", "cannot be read as CSV"),
    ("symbol,date\nENPH,2020-10-27,extra,cells\n", "has a row with more cells than its header"),
    ("symbol,date\nENPH\n", "line 2 has date '', not YYYY-MM-DD"),
])
def test_a_malformed_file_is_one_sentence_naming_it(tmp_path, scan, text, words):
    path = small_csv(tmp_path, text)
    with pytest.raises(DataError) as caught:
        CsvEarnings(path).reports(["ENPH"], SCAN, TARGET)
    message = str(caught.value)
    assert message.startswith(f"earnings file {path} ") and words in message
    assert message.endswith(".") and "\n" not in message
    record, removed = gate(scan, CsvEarnings(path))  # optional gate: the night goes on without it
    assert record.status == "unavailable" and removed == set() and words in record.note


def test_not_a_file(tmp_path):
    for path, words in ((tmp_path, "is not a regular file"), (tmp_path / "absent.csv", "does not exist")):
        with pytest.raises(EarningsUnavailable, match=f"^{re.escape(f'earnings file {path} {words}')}; set events.file"):
            CsvEarnings(path).reports(["ENPH"], SCAN, TARGET)


def test_undecodable_bytes_are_refused(tmp_path):
    path = tmp_path / "earnings.csv"
    path.write_bytes(b"symbol,date\n\xff\xfe\x00ENPH,2020-10-27\n")
    with pytest.raises(EarningsUnavailable, match=f"^{re.escape(f'earnings file {path} ')}"):
        CsvEarnings(path).reports(["ENPH"], SCAN, TARGET)


@pytest.mark.parametrize("text, want", [("bmo", "bmo"), ("AMC", "amc"), ("After market close", "amc"),
                                        ("pre-market", "bmo"), ("09:29:59", "bmo"), ("09:30", None),
                                        ("15:59", None), ("16:00:00", "amc"), ("00:00:00", None), ("", None),
                                        (None, None), ("dmh", None)])
def test_times_of_day(text, want):
    assert time_of_day(text) == want


@pytest.mark.parametrize("text", ["noon", "25:00", "12:60", "4pm"])
def test_unknown_times_are_refused(text):
    with pytest.raises(ValueError, match="unknown time of day"):
        time_of_day(text)


def test_make_earnings_reads_the_config(tmp_path, fake):
    write_config(tmp_path, "events:\n  file: mine.csv\n")
    provider = make_earnings(load_config(tmp_path / "config.yaml"))
    assert isinstance(provider, CsvEarnings) and provider.path == tmp_path / "mine.csv"
    write_config(tmp_path, "events:\n  provider: none\n")
    assert isinstance(make_earnings(load_config(tmp_path / "config.yaml")), NoEarnings)
    write_config(tmp_path, "events:\n  provider: polygon\n")
    made = make_earnings(load_config(tmp_path / "config.yaml"), lambda: client(fake))
    assert isinstance(made, PolygonEarnings) and made.client.base_url == fake.url


# ------------------------------------------------------------------------------ Polygon / Benzinga

@pytest.fixture
def clean_fake(fake):
    fake.faults.clear()
    fake.requests.clear()
    fake.earnings_entitled, fake.indices_entitled, fake.page_size = True, True, 1000
    fake.earnings_times.clear()
    yield fake


def client(fake) -> PolygonClient:
    cfg = PolygonConfig(requests_per_minute=600000, backoff_seconds=0.01, max_backoff_seconds=0.05, max_retries=1,
                        timeout_seconds=2)
    return PolygonClient("test-key", cfg, base_url=fake.url, sleep=lambda s: None)


def test_benzinga_gives_the_same_events_as_the_file(scan, csv, clean_fake):
    clean_fake.page_size = 7  # reports published 10-24 (the day after the session before 10-26) on: several pages
    poly = PolygonEarnings(client(clean_fake))
    for cfg in ({}, {"within_sessions": 1}):
        by_csv, removed_csv = gate(scan, csv, **cfg)
        by_poly, removed_poly = gate(scan, poly, **cfg)
        assert by_poly.status == "ok" and by_poly.source == "polygon"
        assert [(e.symbol, e.date, e.time) for e in by_poly.events] == [(e.symbol, e.date, e.time) for e in by_csv.events]
        assert by_poly.removed == by_csv.removed and removed_poly == removed_csv
        assert by_poly.unknown == [] and by_poly.note is None  # every name asked is covered by a good answer
    assert clean_fake.count("/benzinga/v1/earnings", 200) > 2
    first = next(q for p, q, _ in clean_fake.requests if p == "/benzinga/v1/earnings" and "cursor" not in q)
    assert first == {"date.gte": "2020-10-24", "date.lte": "2020-10-27", "limit": "1000"}


def test_benzinga_clock_times_become_bmo_and_amc(scan, clean_fake):
    poly = PolygonEarnings(client(clean_fake))
    clean_fake.earnings_times[("NXPI", "2020-10-26")] = "07:00:00"
    record, removed = gate(scan, poly)
    assert "NXPI" not in removed and ("NXPI", SCAN, "bmo") in {(e.symbol, e.date, e.time) for e in record.events}
    clean_fake.earnings_times[("NXPI", "2020-10-26")] = "16:30:00"
    record, removed = gate(scan, poly)
    assert record.removed["NXPI"] == ("earnings report on 2020-10-26 (after the close): it can move the price before "
                                      "the target session ends")


def test_a_key_without_benzinga_is_unavailable_or_refused_when_required(scan, clean_fake):
    clean_fake.earnings_entitled = False
    poly = PolygonEarnings(client(clean_fake))
    record, removed = gate(scan, poly)
    assert (record.status, record.source, removed) == ("unavailable", "polygon", set())
    assert "not entitled to Benzinga earnings" in record.note and record.note.endswith("or none.")
    with pytest.raises(DataError, match="^The earnings gate is required .*not entitled to Benzinga earnings"):
        gate(scan, poly, required=True)
    assert clean_fake.count("/benzinga/v1/earnings", 403) == 2  # a 403 is never retried


def test_the_fake_serves_index_aggregates_from_the_market_context(clean_fake):
    context = pd.read_parquet(SAMPLE / "market_context.parquet")
    c = client(clean_fake)
    rows = c.get_pages("/v2/aggs/ticker/I:SPX/range/1/day/2020-10-23/2020-10-27", {"sort": "asc"}, what="I:SPX")
    real = context[(context["symbol"] == "I:SPX") & context["date"].between(dt.date(2020, 10, 23), TARGET)]
    assert [r["c"] for r in rows] == list(real["close"]) and len(rows) == 3
    assert all(set(r) == {"o", "h", "l", "c", "t"} for r in rows)  # Polygon's indices shape: no volume
    assert len(c.aggregates("AAPL", dt.date(2020, 8, 27), dt.date(2020, 9, 1))) == 4  # stocks as before
    clean_fake.indices_entitled = False
    with pytest.raises(NotEntitledError, match="not entitled"):
        c.get_pages("/v2/aggs/ticker/I:VIX/range/1/day/2020-10-23/2020-10-27", {}, what="I:VIX")
