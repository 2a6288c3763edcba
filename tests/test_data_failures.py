"""A data failure is a failure, never a verdict (issue 8, items 2 and 5).

Item 5: an "OK, 0 results" grouped-daily answer for a session the XNYS calendar says traded
is asked again, then stops the run; it is never stored as a permanent gap.
Item 2: when no pre-market price source answers (no keys, 401/403, unreachable, not entitled)
``premarket_prices`` raises instead of returning {} (which made every pick "unpriced",
selected BUY_HOLD and sold the book).

The real clients (PolygonClient on requests, alpaca-py's StockHistoricalDataClient) talk over
HTTP to the loopback fakes, which serve the real bars of data/sample.
"""

import datetime as dt
import json
import logging
import time

import pytest

from conftest import SAMPLE, Prep
from trading_system import sessions
from trading_system.config import load_config
from trading_system.errors import DataError
from trading_system.marketdata.cached import CachedSource
from trading_system.marketdata.polygon_source import PolygonSource
from trading_system.marketdata.sample import SampleSource
from trading_system.marketdata.store import BarStore

MORNING = dt.datetime(2021, 4, 20, 9, 0, tzinfo=sessions.ET)
TARGET = dt.date(2021, 4, 20)
WEEK = (dt.date(2021, 4, 12), dt.date(2021, 4, 16))   # five sessions, all traded
GAP = dt.date(2021, 4, 15)
PICKS = ["AAPL", "MSFT", "XOM"]
TRIES = 3  # grouped-daily requests for a session that stays empty (polygon_source.EMPTY_RETRIES + 1)
FAST = ("polygon:\n  plan: {plan}\n  requests_per_minute: 100000\n  backoff_seconds: 0.01\n"
        "  max_backoff_seconds: 0.05\n  max_retries: 1\n  timeout_seconds: 0.5\n"
        "broker:\n  alpaca:\n    read_attempts: 2\n    retry_wait_seconds: 0.01\n"
        "    timeout_seconds: 0.3\n    connect_timeout_seconds: 0.3\n")


@pytest.fixture(autouse=True)
def clean(fake, alpaca, monkeypatch):
    for server in (fake, alpaca):
        server.faults.clear()
        server.requests.clear()
    fake.snapshot_entitled, fake.snapshot_session = True, TARGET
    alpaca.session, alpaca.stale, alpaca.forbidden, alpaca.timeout_sleep = TARGET, set(), False, 1.0
    monkeypatch.setenv("POLYGON_API_KEY", "test-key")
    monkeypatch.setenv("POLYGON_BASE_URL", fake.url)
    for name in ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "ALPACA_DATA_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def source(folder, plan="paid", allow_empty=False) -> PolygonSource:
    """A PolygonSource over a fresh store in ``folder``, its clock at 09:00 ET on TARGET."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(
        f"data:\n  source: polygon\n  sample_dir: {SAMPLE}\n  store_dir: {folder / 'store'}\n"
        f"  allow_empty_sessions: {str(allow_empty).lower()}\n"
        f"universe:\n  constituents_file: {SAMPLE / 'constituents.csv'}\n" + FAST.format(plan=plan))
    return PolygonSource(load_config(folder / "config.yaml"), sessions.Clock(MORNING))


def use_alpaca(monkeypatch, alpaca, key=None, secret=None, url=None):
    monkeypatch.setenv("ALPACA_API_KEY", key or alpaca.key)
    monkeypatch.setenv("ALPACA_SECRET_KEY", secret or alpaca.secret)
    monkeypatch.setenv("ALPACA_DATA_BASE_URL", url or alpaca.url)


def meta(src: PolygonSource) -> dict:
    path = src.store.root / "meta.json"
    return json.loads(path.read_text()) if path.exists() else {}


def stored(src: PolygonSource) -> set[dt.date]:
    return set(BarStore(src.store.root).dates())  # read from disk, not the source's memory


def opens(sample_bars, day, symbols):
    rows = sample_bars[(sample_bars["date"] == day) & sample_bars["symbol"].isin(symbols)]
    return dict(zip(rows["symbol"], rows["open"]))


# ---------------------------------------------------------------- item 5: empty answers


def test_empty_answer_for_a_traded_session_is_retried_then_stops(tmp_path, fake, sample_bars):
    once = source(tmp_path / "once")
    fake.inject("empty", f"/stocks/{GAP}")
    once.fill(*WEEK)
    assert fake.count(f"/stocks/{GAP}", 200) == 2 and fake.faults == []
    assert stored(once) == set(sessions.sessions_between(*WEEK))
    got = BarStore(once.store.root).session_bars(GAP)
    assert len(got) == (sample_bars["date"] == GAP).sum() and "empty_sessions" not in meta(once)

    fake.requests.clear()
    always = source(tmp_path / "always")
    fake.inject("empty", f"/stocks/{GAP}", always=True)
    with pytest.raises(DataError) as err:
        always.fill(*WEEK)
    text = str(err.value)
    assert f"session {GAP}" in text and "nothing was written" in text and "allow_empty_sessions" in text
    assert fake.count(f"/stocks/{GAP}") == TRIES
    assert fake.count("/grouped/") == 4 + (TRIES - 1)  # the fill stopped at the gap: 04-16 never asked
    assert stored(always) == {dt.date(2021, 4, 12), dt.date(2021, 4, 13), dt.date(2021, 4, 14)}  # real bars kept
    assert "empty_sessions" not in meta(always)
    with pytest.raises(DataError, match=f"session {GAP}.*nothing was written"):
        always.ensure_session(GAP)
    assert GAP not in stored(always) and "empty_sessions" not in meta(always)


def test_a_traded_session_that_stays_empty_stops_the_scan_with_one_sentence(tmp_path, fake):
    src = source(tmp_path)
    fake.inject("empty", "/stocks/2021-04-19", always=True)  # the scan's own session
    r = Prep(tmp_path)("--as-of", "2021-04-19T20:00", "prepare")
    assert r.exit_code == 1, r.output
    assert "session 2021-04-19" in r.output and "no plan was made" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "pending_trades.json").exists() and "empty_sessions" not in meta(src)


def test_old_empty_sessions_are_asked_again(tmp_path, fake):
    src = source(tmp_path)
    src.store.root.mkdir(parents=True)
    (src.store.root / "meta.json").write_text(json.dumps({"empty_sessions": [str(GAP), "2019-01-02"]}))
    src.fill(*WEEK)
    assert fake.count(f"/stocks/{GAP}", 200) == 1 and GAP in stored(src)
    assert meta(src)["empty_sessions"] == ["2019-01-02"]  # the one now stored is dropped; the other waits its turn

    other = source(tmp_path / "other")  # the scan's session itself is asked even when listed
    other.store.root.mkdir(parents=True)
    (other.store.root / "meta.json").write_text(json.dumps({"empty_sessions": [str(GAP)]}))
    other.ensure_session(GAP)
    assert stored(other) == {GAP}


def test_allow_empty_sessions_skips_with_a_warning(tmp_path, fake, caplog):
    src = source(tmp_path, allow_empty=True)
    fake.inject("empty", f"/stocks/{GAP}", always=True)
    with caplog.at_level(logging.WARNING, logger="trading_system.marketdata.polygon_source"):
        src.fill(*WEEK)
    assert fake.count(f"/stocks/{GAP}") == TRIES  # asked again before being skipped
    assert any(str(GAP) in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records)
    assert meta(src)["empty_sessions"] == [str(GAP)]
    assert stored(src) == set(sessions.sessions_between(*WEEK)) - {GAP}

    fake.requests.clear()
    source(tmp_path, allow_empty=True).fill(*WEEK)  # recorded and skipped while the setting is on
    assert fake.requests == []
    with pytest.raises(DataError, match=f"session {GAP}"):  # the run's own session cannot be skipped
        source(tmp_path, allow_empty=True).ensure_session(GAP)
    with pytest.raises(DataError, match="allow_empty_sessions"):  # off again: not trusted, asked again
        source(tmp_path, allow_empty=False).fill(*WEEK)
    assert fake.count(f"/stocks/{GAP}") == 2 * TRIES


# ---------------------------------------------------------------- item 2: no price source


def test_no_alpaca_keys_is_no_price_source(tmp_path, fake):
    with pytest.raises(DataError) as err:
        source(tmp_path / "free", plan="free").premarket_prices(PICKS, TARGET)
    assert "no pre-market price source answered" in str(err.value)
    assert "no ALPACA_API_KEY/ALPACA_SECRET_KEY" in str(err.value)

    fake.snapshot_entitled = False  # paid plan: the snapshot refused, and no Alpaca keys either
    with pytest.raises(DataError) as err:
        source(tmp_path / "paid").premarket_prices(PICKS, TARGET)
    assert "Polygon's snapshot: not entitled" in str(err.value)
    assert "no ALPACA_API_KEY/ALPACA_SECRET_KEY" in str(err.value)
    assert fake.count("/v2/snapshot/", 403) == 1  # a 403 is never retried


def test_alpaca_data_401_is_no_price_source(tmp_path, alpaca, monkeypatch):
    use_alpaca(monkeypatch, alpaca, secret="wrong-secret")
    with pytest.raises(DataError) as err:
        source(tmp_path, plan="free").premarket_prices(PICKS, TARGET)
    assert "HTTP 401: request is not authorized" in str(err.value)
    assert alpaca.count("/v2/stocks/trades/latest", 401) == 1  # a refusal is not retried

    use_alpaca(monkeypatch, alpaca)
    alpaca.forbidden = True
    with pytest.raises(DataError, match="HTTP 403: subscription does not permit"):
        source(tmp_path, plan="free").premarket_prices(PICKS, TARGET)


def test_alpaca_data_unreachable_is_no_price_source(tmp_path, alpaca, monkeypatch, refused_url):
    use_alpaca(monkeypatch, alpaca, url=refused_url)
    with pytest.raises(DataError) as err:
        source(tmp_path, plan="free").premarket_prices(PICKS, TARGET)
    assert f"Alpaca's latest trades: {refused_url} unreachable (ConnectionError after 2 tries)" in str(err.value)

    use_alpaca(monkeypatch, alpaca)  # a server that accepts and never answers: the timeout ends it
    alpaca.timeout_sleep = 3.0
    alpaca.inject("timeout", "/v2/stocks/trades/latest", times=2)
    started = time.monotonic()
    with pytest.raises(DataError, match="did not answer in time .ReadTimeout after 2 tries"):
        source(tmp_path, plan="free").premarket_prices(PICKS, TARGET)
    assert time.monotonic() - started < 2.0 and alpaca.count("/v2/stocks/trades/latest") == 2


def test_answered_but_some_symbols_unpriced_returns_the_rest(tmp_path, alpaca, monkeypatch, sample_bars):
    use_alpaca(monkeypatch, alpaca)
    alpaca.stale = {"MSFT"}  # its latest trade is yesterday's close: no price for today
    alpaca.inject("500", "/v2/stocks/trades/latest")  # and one 5xx first: retried
    quotes = source(tmp_path, plan="free").premarket_prices(PICKS, TARGET)
    real = opens(sample_bars, TARGET, ["AAPL", "XOM"])
    assert {s: q.price for s, q in quotes.items()} == real and len(real) == 2
    assert {q.source for q in quotes.values()} == {"alpaca:latest_trade"}
    assert alpaca.count("/v2/stocks/trades/latest", 500) == 1 and alpaca.count("/v2/stocks/trades/latest", 200) == 1

    assert source(tmp_path, plan="free").premarket_prices([], TARGET) == {}  # nothing to price: nothing asked
    assert alpaca.count("/v2/stocks/trades/latest") == 2

def test_a_stale_snapshot_is_an_answer_not_a_failure(tmp_path, fake):
    fake.snapshot_session = dt.date(2021, 4, 19)  # the snapshot still shows yesterday
    assert source(tmp_path).premarket_prices(PICKS, TARGET) == {}  # answered: the caller counts the unpriced
    assert fake.count("/v2/snapshot/", 200) == 1


def test_premarket_source_problem_names_the_missing_keys(tmp_path, fake, alpaca, monkeypatch, sample_bars):
    free = source(tmp_path / "free", plan="free")
    problem = free.premarket_source_problem()
    assert problem.startswith("no ALPACA_API_KEY/ALPACA_SECRET_KEY: on the free Polygon plan")
    assert "tomorrow's validate will stop" in problem
    monkeypatch.setenv("ALPACA_API_KEY", "k")
    problem = free.premarket_source_problem()
    assert problem.startswith("no ALPACA_SECRET_KEY:") and "ALPACA_API_KEY" not in problem
    monkeypatch.setenv("ALPACA_SECRET_KEY", "s")
    assert free.premarket_source_problem() is None
    monkeypatch.delenv("ALPACA_API_KEY")
    assert source(tmp_path / "paid").premarket_source_problem() is None  # the snapshot
    assert SampleSource(SAMPLE).premarket_source_problem() is None
    assert CachedSource(sample_bars.head(10), BarStore(SAMPLE).splits()).premarket_source_problem() is None
    assert fake.requests == [] and alpaca.requests == []  # decided without a request
