"""The Polygon client over real HTTP against the loopback fake: shapes, retries, refusals, pagination."""

import datetime as dt

import pytest

from trading_system.config import PolygonConfig
from trading_system.errors import ConfigError, DataError
from trading_system.marketdata.polygon import NotEntitledError, NotPublishedError, PolygonClient, _retry_after
from trading_system.marketdata.ratelimit import TokenBucket


@pytest.fixture(autouse=True)
def clean(fake):
    fake.faults.clear()
    fake.requests.clear()
    fake.published_through = fake.history_from = None
    fake.snapshot_entitled, fake.page_size, fake.timeout_sleep = True, 1000, 0.6
    yield


def client(fake, key="test-key", **cfg):
    """A client whose retry waits are recorded, not slept (``waits``)."""
    settings = dict(requests_per_minute=600000, backoff_seconds=5, max_backoff_seconds=60, max_retries=3,
                    timeout_seconds=0.2)
    c = PolygonClient(key, PolygonConfig(**{**settings, **cfg}), base_url=fake.url, sleep=lambda s: c.waits.append(s))
    c.waits = []
    return c


def test_grouped_daily_is_raw_and_dated_by_the_session(fake, sample_bars):
    bars = client(fake).grouped_daily(dt.date(2020, 8, 28))
    real = sample_bars[sample_bars["date"] == dt.date(2020, 8, 28)].set_index("symbol")
    got = bars.set_index("symbol")
    assert len(got) == len(real) and (got["date"] == dt.date(2020, 8, 28)).all()
    # AAPL traded at 499.23 before its 4:1 split: the as-traded price, not Polygon's adjusted default.
    assert got.loc["AAPL", "close"] == real.loc["AAPL", "close"] == 499.23
    assert (got[["open", "high", "low", "close", "volume"]] == real.loc[got.index, ["open", "high", "low", "close", "volume"]]).all().all()
    assert fake.requests[-1][1] == {"adjusted": "false"}


def test_a_holiday_has_no_results_and_is_an_empty_frame(fake):
    assert client(fake).grouped_daily(dt.date(2021, 4, 2)).empty  # Good Friday: 200, no "results" key


def test_aggregates_of_one_ticker_use_ms_timestamps(fake, sample_bars):
    got = client(fake).aggregates("AAPL", dt.date(2020, 8, 27), dt.date(2020, 9, 1))
    real = sample_bars[(sample_bars["symbol"] == "AAPL") & (sample_bars["date"].between(dt.date(2020, 8, 27), dt.date(2020, 9, 1)))]
    assert list(got["date"]) == list(real["date"]) and list(got["close"]) == list(real["close"])


def test_retry_after_is_honoured_and_backoff_used_without_it(fake):
    fake.inject("429", "grouped", retry_after="3")
    fake.inject("429", "grouped")
    fake.inject("500", "grouped")
    c = client(fake)
    assert not c.grouped_daily(dt.date(2021, 4, 19)).empty
    assert c.waits[0] == 3.0
    assert 5 * 2 <= c.waits[1] <= 5 * 2 + 5 and 5 * 4 <= c.waits[2] <= 5 * 4 + 5  # exponential, with jitter
    assert fake.count("grouped", 429) == 2 and fake.count("grouped", 500) == 1 and c.requests_made == 4


def test_retry_after_is_capped_and_read_as_a_date():
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert _retry_after("7") == 7.0 and _retry_after(None) is None and _retry_after("soon") is None


def test_timeouts_and_dropped_connections_are_retried(fake, sample_bars):
    fake.inject("timeout", "splits")
    fake.inject("drop", "splits")
    c = client(fake)
    splits = c.splits(dt.date(2020, 1, 1))
    assert c.requests_made == 3 and len(c.waits) == 2
    aapl = splits[splits["symbol"] == "AAPL"]
    assert list(aapl["ratio"]) == [4.0] and list(aapl["date"]) == [dt.date(2020, 8, 31)]


def test_retries_run_out_in_one_sentence(fake):
    fake.inject("500", "grouped", times=4)
    with pytest.raises(DataError, match=r"did not deliver grouped daily bars for session 2021-04-19 after 4 attempts "
                                         r"\(last: HTTP 500"):
        client(fake).grouped_daily(dt.date(2021, 4, 19))
    assert fake.count("grouped") == 4


@pytest.mark.parametrize("setup, call, error, words", [
    (lambda f: None, "wrong-key", ConfigError, "does not know POLYGON_API_KEY (401: Unknown API Key)"),
    (lambda f: setattr(f, "published_through", dt.date(2021, 4, 16)), None, NotPublishedError,
     "has not published grouped daily bars for session 2021-04-19 yet"),
    (lambda f: setattr(f, "history_from", dt.date(2021, 4, 20)), None, NotEntitledError,
     "does not reach back to grouped daily bars for session 2021-04-19"),
])
def test_401_and_403_are_never_retried(fake, setup, call, error, words):
    setup(fake)
    c = client(fake, key=call or "test-key")
    with pytest.raises(error) as info:
        c.grouped_daily(dt.date(2021, 4, 19))
    assert words in str(info.value) and c.requests_made == 1 and c.waits == []


def test_snapshot_not_entitled(fake):
    fake.snapshot_entitled = False
    with pytest.raises(NotEntitledError, match="not entitled to the stocks snapshot"):
        client(fake).snapshot(["AAPL"])


def test_no_key_at_all(fake):
    c = PolygonClient("", PolygonConfig(max_retries=3), base_url=fake.url)
    c.session.headers.pop("Authorization")
    with pytest.raises(ConfigError, match="API Key was not provided"):
        c.splits(dt.date(2021, 1, 1))


def test_tickers_follow_next_url_with_the_key_on_every_page(fake):
    fake.page_size = 100
    c = client(fake)
    cs = c.tickers("CS")
    assert len(cs) == 505 and cs["ticker"].is_unique and set(cs["type"]) == {"CS"}
    assert c.requests_made == 6 == fake.count("/v3/reference/tickers", 200)  # 6 pages, none refused
    etf = c.tickers("ETF")
    assert sorted(etf["ticker"]) == ["QQQ", "SPY"]


def test_token_bucket_spaces_requests_at_the_plan_rate():
    now = [0.0]
    bucket = TokenBucket(5, burst=1, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    waits = [bucket.acquire() for _ in range(6)]
    assert waits[0] == 0 and all(abs(w - 12.0) < 1e-9 for w in waits[1:]) and abs(now[0] - 60.0) < 1e-9
    now[0] = 0.0
    burst = TokenBucket(5, burst=5, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert [round(burst.acquire(), 9) for _ in range(6)] == [0, 0, 0, 0, 0, 12.0]
