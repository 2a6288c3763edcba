"""`prep execute` with broker alpaca: the real CLI (in-process or as a subprocess) against the fake.

The clock is the broker's: the fake's clock is set on 2021-04-20, the session the plan
(made from the real bars of data/sample) was prepared for.
"""

import datetime as dt
import json
import time

import pytest

from conftest import Prep
from fakes.alpaca_server import ET
from fakes.alpaca_workspace import (alpaca_workspace, make_fake, prep_env, run_prep, start_prep,
                                    starting_account, validated_plan)  # noqa: F401


@pytest.fixture
def alpaca_prep(tmp_path, validated_plan, monkeypatch):
    """(Prep, fake) with the fake's keys in the environment; the fake is stopped after the test."""
    fakes = []

    def make(**kw):
        fake = make_fake(validated_plan, **kw).__enter__()
        fakes.append(fake)
        for k in ("PREP_AS_OF", "ALPACA_PAPER"):
            monkeypatch.delenv(k, raising=False)
        for k, v in fake.env().items():
            monkeypatch.setenv(k, v)
        return Prep(alpaca_workspace(tmp_path, validated_plan)), fake

    yield make
    for f in fakes:
        f.__exit__(None, None, None)


def test_clean_run_archives_every_order_and_no_secret(tmp_path, validated_plan, forks):
    with make_fake(validated_plan) as fake:
        ws = alpaca_workspace(tmp_path / "ws", validated_plan)
        r = run_prep(ws, prep_env(fake), "-v", "execute", forks=forks)
        assert r.returncode == 0, r.stderr
        archive = json.loads(next((ws / "archived_trades").glob("*.json")).read_text())
        ex = archive["execution"]
        assert ex["broker"] == "alpaca" and ex["reached_targets"] is True
        assert ex["account_before"]["equity"] == pytest.approx(100_000, abs=0.01)
        assert ex["account_after"]["cash"] == pytest.approx(fake.cash, abs=0.01)
        by_id = {o["id"]: o for o in fake.orders}
        assert len(ex["orders"]) == len(fake.orders) == 4
        for o in ex["orders"]:
            sent = by_id[o["broker_order_id"]]
            assert o["broker_client_order_id"] == sent["client_order_id"] and o["status"] == sent["status"] == "filled"
            assert o["filled_qty"] == pytest.approx(float(sent["filled_qty"]))
            assert o["filled_avg_price"] == pytest.approx(float(sent["filled_avg_price"]))
            assert "canceled" in o and (o["qty"] is not None or o["notional"] is not None or o["close_position"])
        assert not (ws / "pending_trades.json").exists()
        files = [*ws.rglob("*.json"), *ws.rglob("*.jsonl"), *ws.rglob("*.log")]
        assert len(files) >= 3
        for text in [r.stdout, r.stderr, *(f.read_text() for f in files)]:
            assert fake.key not in text and fake.secret not in text


def test_waits_for_the_open_and_says_so(alpaca_prep):
    prep, fake = alpaca_prep(now=dt.datetime(2021, 4, 20, 9, 29, 58, tzinfo=ET))
    r = prep("execute")
    assert r.exit_code == 0, r.output
    assert "waiting for the open: orders go out at 09:30:00 ET" in r.output
    first = min(o["submitted_at"] for o in fake.orders)
    assert first >= "2021-04-20T13:30:00.2"   # UTC: 09:30 ET + the 0.2 s open delay


@pytest.mark.parametrize("now, words", [
    (dt.datetime(2021, 4, 20, 8, 0, tzinfo=ET), "more than 45 minutes away"),
    (dt.datetime(2021, 4, 20, 16, 30, tzinfo=ET), "closed at 16:00"),
])
def test_outside_the_wait_window_sends_nothing(alpaca_prep, now, words):
    prep, fake = alpaca_prep(now=now)
    r = prep("execute")
    assert r.exit_code == 1 and words in r.output and "nothing was sent" in r.output
    assert fake.orders == [] and (prep.folder / "pending_trades.json").exists()


def test_as_of_and_live_without_flag_are_refused(alpaca_prep, monkeypatch):
    prep, fake = alpaca_prep()
    r = prep("--as-of", "2021-04-20T09:35", "execute")
    assert r.exit_code == 2 and "cannot replay a real broker account" in r.output
    monkeypatch.setenv("ALPACA_PAPER", "false")
    r = prep("execute")
    assert r.exit_code == 2 and "add --live" in r.output and "Traceback" not in r.output
    assert fake.counts["account"] == 0 and fake.orders == []


def test_dry_run_prints_the_plan_against_the_account_and_sends_nothing(alpaca_prep):
    prep, fake = alpaca_prep()
    _, _, who = starting_account(json.loads((prep.folder / "pending_trades.json").read_text()), fake.prices)
    r = prep("execute", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "dry run: nothing sent" in r.output
    for sym in (who["close"], who["trim"], *who["buys"]):
        assert sym in r.output
    assert fake.orders == [] and fake.counts["orders_post"] == 0 and fake.counts["close_position"] == 0
    assert (prep.folder / "pending_trades.json").exists() and not (prep.folder / "data" / "orders").exists()


def test_exit_code_says_the_targets_were_missed(alpaca_prep):
    prep, fake = alpaca_prep()
    _, _, who = starting_account(json.loads((prep.folder / "pending_trades.json").read_text()), fake.prices)
    fake.reject_symbols.add(who["buys"][0])
    r = prep("execute")
    assert r.exit_code == 1
    assert f"did not reach its targets (rejected: {who['buys'][0]}" in " ".join(r.output.split())


def test_two_runs_at_once_one_waits_for_the_lock(tmp_path, validated_plan, forks):
    # Fills 1.5 s after acceptance (under the 3 s fill wait): the first run holds the lock for
    # ~3 s after its first order, time enough for a second process to start on a busy machine (a child
    # of the fork server is at the lock in ~0.4 CPU-s, not the ~1.5 of a fresh interpreter).
    with make_fake(validated_plan, fill_delay=1.5) as fake:
        ws = alpaca_workspace(tmp_path / "ws", validated_plan)
        env = prep_env(fake)
        first = start_prep(ws, env, "execute", forks=forks)
        try:
            deadline = time.monotonic() + 60
            while not fake.orders and first.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)   # until the first run is inside its rebalance (it holds the lock)
            assert fake.orders, "the first run never sent an order"
            second = run_prep(ws, env, "execute", forks=forks)
            assert second.returncode == 1 and "another prep run holds" in second.stderr
        finally:
            out, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        assert max(fake.posts_by_cid.values()) == 1 and fake.closes_by_symbol["AAPL"] == 1
