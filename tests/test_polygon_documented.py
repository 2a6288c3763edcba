"""The real Polygon client replayed (vcrpy) against the vendor's documented answers.

The loopback fake in tests/fakes serves shapes we wrote; this cassette pins the client to
the shapes the vendor documents (see the comment at the top of the cassette for where each
body comes from). Nothing here reaches the network: record_mode is "none".
"""

import datetime as dt
from pathlib import Path

import pytest
import vcr

from trading_system.config import PolygonConfig
from trading_system.errors import ConfigError
from trading_system.marketdata.polygon import NotPublishedError, PolygonClient

CASSETTE = Path(__file__).parent / "cassettes" / "polygon_documented.yaml"


def _same_bearer(r1, r2):
    def bearer(r):
        value = r.headers.get("Authorization")
        return value[0] if isinstance(value, list) else value
    assert bearer(r1) == bearer(r2), "the key must travel as Authorization: Bearer on every request"


replay = vcr.VCR(record_mode="none", match_on=["method", "uri", "bearer"])
replay.register_matcher("bearer", _same_bearer)


@pytest.fixture
def client():
    waits = []
    c = PolygonClient("test-key", PolygonConfig(requests_per_minute=6000, max_retries=2, backoff_seconds=0.01),
                      base_url="https://api.polygon.io", sleep=waits.append)
    c.waits = waits
    with replay.use_cassette(str(CASSETTE)) as cassette:
        c.cassette = cassette
        yield c


def test_grouped_daily_documented_row(client):
    bars = client.grouped_daily(dt.date(2020, 10, 14))
    assert bars.to_dict(orient="records") == [{"symbol": "KIMpL", "date": dt.date(2020, 10, 14), "open": 26.07,
                                               "high": 26.25, "low": 25.91, "close": 25.9102, "volume": 4369}]


def test_holiday_without_results_is_empty(client):
    assert client.grouped_daily(dt.date(2020, 11, 26)).empty


def test_documented_429_is_retried(client):
    bars = client.grouped_daily(dt.date(2020, 11, 27))
    assert list(bars["symbol"]) == ["KIMpL"]
    assert len(client.waits) == 1 and client.requests_made == 2


def test_aggregates_follow_next_url_on_our_host(client):
    # The documented next_url points at api.massive.com; the client keeps its own base URL and
    # does not resend the original parameters (the cursor encodes them).
    bars = client.aggregates("AAPL", dt.date(2020, 1, 2), dt.date(2020, 1, 10))
    assert bars.to_dict(orient="records") == [{"symbol": "AAPL", "date": dt.date(2020, 1, 2), "open": 74.06,
                                               "high": 75.15, "low": 73.7975, "close": 75.0875,
                                               "volume": 135647456}]
    assert client.cassette.play_count == 2


def test_today_before_end_of_day_is_one_sentence(client):
    with pytest.raises(NotPublishedError, match="has not published grouped daily bars for session 2021-04-19"):
        client.grouped_daily(dt.date(2021, 4, 19))
    assert client.requests_made == 1                     # a 403 is never retried


def test_unknown_key_is_a_config_error(client):
    with pytest.raises(ConfigError, match="does not know POLYGON_API_KEY"):
        client.tickers("CS")
    assert client.requests_made == 1
