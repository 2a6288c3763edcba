"""Issue 8, item 1: a live endpoint without the live switches.

Paper or live is decided by what the run talks to: Alpaca's live host needs both
``ALPACA_PAPER=false`` and ``--live``, its paper host refuses them, and the account itself
(paper account numbers start with ``PA``) must be the kind the switches name before any
order.  The broker and CLI tests drive the real alpaca-py over HTTP against the loopback
fake; the CLI runs as a process of its own (a child of the fork server, conftest ``forks``).  Prices are
the real 2021-04-20 opens of data/sample;
accounts (and their numbers) are synthetic.
"""

import re

import pytest

from fakes.alpaca_server import FakeAlpaca
from fakes.alpaca_workspace import (alpaca_workspace, make_fake, prep_env, run_prep, sample_prices,
                                    validated_plan)  # noqa: F401  (validated_plan: a fixture)
from trading_system.broker.alpaca import AlpacaBroker, credentials_from_env
from trading_system.broker.base import OrderRequest
from trading_system.errors import BadInputError

KEYS = {"ALPACA_API_KEY": "k", "ALPACA_SECRET_KEY": "s"}
LIVE_NUMBER = "318264905"  # synthetic, live-looking: does not start with PA
LIVE_HOST_URLS = [  # (ALPACA_BASE_URL, the url_override it gives once both switches are on)
    ("https://api.alpaca.markets", "https://api.alpaca.markets"),
    ("https://api.alpaca.markets/", "https://api.alpaca.markets"),
    ("https://api.alpaca.markets/v2", "https://api.alpaca.markets"),
    ("https://API.Alpaca.MARKETS/v2/", "https://API.Alpaca.MARKETS"),
    ("http://api.alpaca.markets:443/v2", "http://api.alpaca.markets:443"),
    ("https://api.alpaca.markets./", "https://api.alpaca.markets."),
    ("  https://user@api.alpaca.markets:8443/v2  ", "https://user@api.alpaca.markets:8443"),
]
PAPER_HOST_URLS = ["https://paper-api.alpaca.markets", "https://Paper-API.alpaca.markets/v2/",
                   "http://paper-api.alpaca.markets:443/"]


def assert_one_sentence(text: str, prefix: str = "") -> None:
    """One line, one sentence (no '. X' inside), no traceback."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    body = lines[0]
    assert body.startswith(prefix) and body.endswith(".") and not re.search(r"\.\s+[A-Z]", body[:-1]), body


def assert_nothing_sent(fake: FakeAlpaca, ws, plan_before: bytes) -> None:
    assert fake.counts["account"] >= 1                 # the refusal came after reading the account...
    assert fake.orders == [] and fake.counts["orders_post"] == 0 and fake.counts["close_position"] == 0
    assert fake.counts["order_cancel"] == 0            # ...and before any write
    assert (ws / "pending_trades.json").read_bytes() == plan_before
    assert not list((ws / "archived_trades").glob("*.json")) and not (ws / "data" / "orders").exists()


# --- the endpoint: decided from the URL the run will really use --------------------------------

@pytest.mark.parametrize("url, override", LIVE_HOST_URLS)
def test_live_host_without_switches_is_refused(url, override):
    for live, paper_env in ((False, {}), (True, {}), (True, {"ALPACA_PAPER": "true"}), (False, {"ALPACA_PAPER": "false"})):
        with pytest.raises(BadInputError) as info:
            credentials_from_env(live, {**KEYS, "ALPACA_BASE_URL": url, **paper_env})
        assert info.value.exit_code == 2
        assert "ALPACA_PAPER=false" in str(info.value) and "--live" in str(info.value)
        assert_one_sentence(str(info.value))
    got = credentials_from_env(True, {**KEYS, "ALPACA_BASE_URL": url, "ALPACA_PAPER": "false"})
    assert got["paper"] is False and got["url_override"] == override


def test_live_host_without_a_scheme_is_still_the_live_host():
    with pytest.raises(BadInputError, match="live .*host api.alpaca.markets"):
        credentials_from_env(False, {**KEYS, "ALPACA_BASE_URL": "api.alpaca.markets/v2"})


@pytest.mark.parametrize("url", PAPER_HOST_URLS)
def test_live_switches_pointed_at_the_paper_host_are_refused(url):
    with pytest.raises(BadInputError, match="paper host paper-api.alpaca.markets") as info:
        credentials_from_env(True, {**KEYS, "ALPACA_BASE_URL": url, "ALPACA_PAPER": "false"})
    assert_one_sentence(str(info.value))
    assert credentials_from_env(False, {**KEYS, "ALPACA_BASE_URL": url})["paper"] is True


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:9", "127.0.0.1:9", "localhost:8080/v2"])
def test_a_base_url_that_is_not_http_is_refused(url):
    with pytest.raises(BadInputError, match="must be an http"):
        credentials_from_env(False, {**KEYS, "ALPACA_BASE_URL": url})


# --- the account: checked at the first read, before any order ---------------------------------

def broker(fake: FakeAlpaca, paper: bool) -> AlpacaBroker:
    return AlpacaBroker(fake.key, fake.secret, paper=paper, url_override=fake.url, timeout=10.0, read_attempts=2,
                        retry_wait=0.01)


@pytest.mark.parametrize("number", [None, "", "   "])
def test_an_account_without_a_number_is_refused(number):
    with FakeAlpaca(sample_prices(), account_number=number) as fake:
        for paper in (True, False):
            b = broker(fake, paper)
            with pytest.raises(BadInputError, match="no account number"):
                b.get_account()
            with pytest.raises(BadInputError, match="no account number"):
                b.submit_order(OrderRequest("MSFT", "buy", f"cid-{paper}", notional=100.0))
        assert fake.counts["orders_post"] == 0 and fake.orders == []


def test_an_order_before_any_account_read_checks_the_account_first():
    with FakeAlpaca(sample_prices(), account_number=LIVE_NUMBER) as fake:
        with pytest.raises(BadInputError, match="live .*expects paper"):
            broker(fake, paper=True).submit_order(OrderRequest("MSFT", "buy", "cid-paper", notional=100.0))
        with pytest.raises(BadInputError, match="live .*expects paper"):
            broker(fake, paper=True).cancel_order("00000000-0000-0000-0000-000000000000")
        assert fake.counts["orders_post"] == 0 and fake.counts["order_cancel"] == 0 and fake.counts["account"] == 2
        live = broker(fake, paper=False)    # the kind the switches name: trades, and the check costs no request
        live.get_account()
        reads = fake.counts["account"]
        live.submit_order(OrderRequest("MSFT", "buy", "cid-live", notional=100.0))
        assert fake.counts["orders_post"] == 1 and fake.counts["account"] == reads


@pytest.mark.parametrize("args", [("execute",), ("execute", "--dry-run")])
def test_paper_switches_but_live_account_is_exit_2_nothing_sent(tmp_path, validated_plan, forks, args):
    with make_fake(validated_plan, account_number=LIVE_NUMBER) as fake:
        ws = alpaca_workspace(tmp_path / "ws", validated_plan)
        plan_before = (ws / "pending_trades.json").read_bytes()
        r = run_prep(ws, prep_env(fake), *args, forks=forks)
        assert r.returncode == 2, r.stdout + r.stderr
        assert_one_sentence(r.stderr, "prep execute: ")
        assert "live (real-money) Alpaca account" in r.stderr and "use paper keys" in r.stderr
        assert_nothing_sent(fake, ws, plan_before)


def test_live_switches_but_paper_account_is_exit_2_nothing_sent(tmp_path, validated_plan, forks):
    with make_fake(validated_plan) as fake:                    # the fake's default number: PA...
        assert fake.account_number.startswith("PA")
        ws = alpaca_workspace(tmp_path / "ws", validated_plan)
        plan_before = (ws / "pending_trades.json").read_bytes()
        env = prep_env(fake, ALPACA_PAPER="false")
        r = run_prep(ws, env, "execute", "--live", forks=forks)
        assert r.returncode == 2, r.stdout + r.stderr
        assert_one_sentence(r.stderr, "prep execute: ")
        assert "reach a paper account" in r.stderr and "use live keys" in r.stderr
        assert_nothing_sent(fake, ws, plan_before)
        # The same switches against a live-looking account go through: the check tells the kinds apart.
        fake.account_number = LIVE_NUMBER
        r = run_prep(ws, env, "execute", "--live", forks=forks)
        assert r.returncode == 0, r.stderr
        assert fake.counts["orders_post"] + fake.counts["close_position"] == len(fake.orders) == 4
