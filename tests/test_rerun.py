"""Reruns of the same plan against the loopback Alpaca fake: an order the broker already holds is
never POSTed again, whether it is still open, partly filled or filled (DESIGN §7 "Idempotency").

The weights are the validated plan of 2021-04-20 (real bars), prices that day's real opens;
the starting account is synthetic (see fakes/alpaca_workspace.py): an exit (AAPL), a trim
(NUE) and two buys (FANG, FCX).  In every first run below the trim does not fill (it is
canceled after the sell timeout), so the buys are scaled down to the cash there (38.8 % of
their deltas): the rerun's fresh plan then names FANG and FCX again, under the same
client_order_ids, while the first run's orders are still at the broker.

Which path each case takes (``execution.follow_up_ids``, ``journal.submit_once``):
* a still-open order (new or partly filled) keeps its client_order_id and is *adopted*:
  ``submit_once`` returns the order the broker already has, sends nothing;
* a terminal order (filled, canceled) is followed up under ``<cid>-2`` for what is still missing.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from fakes import alpaca_workspace
from fakes.alpaca_server import ET
from fakes.alpaca_workspace import make_fake, market_values, weights_of

from trading_system.broker.alpaca import AlpacaBroker
from trading_system.config import ExecutionConfig
from trading_system.execute.rebalance import Journal, rebalance
from trading_system.execute.orders import default_guards

PLAN = "20210420-b5367119"
SINCE = dt.datetime(2021, 4, 20, tzinfo=ET)
MIN_ORDER = 100.0      # max($10, 0.1 % of the $100k equity): closer than this is on target
FIRST = ExecutionConfig(sell_fill_timeout_seconds=0.5, poll_interval_seconds=0.05)
TRIM, BUY, OTHER = "NUE", "FANG", "FCX"   # who starting_account makes trim and buy (asserted below)

validated_plan = alpaca_workspace.validated_plan   # the session fixture: the plan of 2021-04-20


def cid(phase: str, symbol: str, n: int = 1) -> str:
    base = f"prep-{PLAN}-{phase}-{symbol}"
    return base if n == 1 else f"{base}-{n}"


def broker(fake) -> AlpacaBroker:
    return AlpacaBroker(fake.key, fake.secret, url_override=fake.url, timeout=2, read_attempts=2, retry_wait=0.01)


def run(fake, plan, tmp_path, cfg: ExecutionConfig):
    """One `execute` of the plan; every run of a test shares the journal ``j.jsonl``."""
    journal = Journal(tmp_path / "j.jsonl")
    _, report = rebalance(weights_of(plan), broker(fake), cfg, PLAN, journal,
                          default_guards(cfg, tmp_path / "KILL_SWITCH"), since=SINCE)
    return report, journal


def intents(journal: Journal, client_order_id: str) -> int:
    return sum(e["event"] == "intent" and e.get("client_order_id") == client_order_id for e in journal.entries)


def order(fake, client_order_id: str) -> dict:
    (found,) = [o for o in fake.orders if o["client_order_id"] == client_order_id]
    return found


def target(plan, fake, symbol: str) -> float:
    return weights_of(plan)[symbol] * 0.98 * fake.equity()


def first_run_with_the_trim_unfilled(fake, plan, tmp_path):
    """Run 1: the trim never fills (canceled after 0.5 s), so both buys go out scaled to the cash."""
    fake.fill_fraction[TRIM] = 0.0
    report, _ = run(fake, plan, tmp_path, FIRST)
    assert order(fake, cid("s", TRIM))["status"] == "canceled"
    for sym in (BUY, OTHER):   # scaled: what is still missing is well over the minimum order
        assert target(plan, fake, sym) - float(order(fake, cid("b", sym))["notional"]) > 10 * MIN_ORDER
    del fake.fill_fraction[TRIM]   # the rerun's trim fills
    return report


def hold_until(fake, symbol: str, seconds: float) -> None:
    """The next order accepted in ``symbol`` fills ``seconds`` after it was accepted, not at once
    (``on_accept`` moves that one order's fill time, the fake's ``_fill_at``)."""
    def hook(o):
        if o["symbol"] == symbol:
            o["_fill_at"] = time.monotonic() + seconds
            fake.on_accept = None
    fake.on_accept = hook


def assert_on_target(plan, fake, *symbols: str) -> None:
    values = market_values(fake)
    for sym in symbols:
        assert values.get(sym, 0.0) == pytest.approx(target(plan, fake, sym), abs=MIN_ORDER), sym


def test_the_scenario_names_the_expected_symbols(validated_plan):
    from fakes.alpaca_workspace import sample_prices, starting_account

    _, _, who = starting_account(validated_plan, sample_prices())
    assert (who["trim"], who["buys"]) == (TRIM, [BUY, OTHER])


def test_rerun_adopts_a_buy_still_open_and_never_posts_it_again(validated_plan, tmp_path):
    """(a) FANG's first order is still open (nothing filled) when the rerun starts."""
    with make_fake(validated_plan) as fake:
        hold_until(fake, BUY, 2.5)   # FANG fills 2.5 s after it was accepted: after run 1, during run 2
        first_run_with_the_trim_unfilled(fake, validated_plan, tmp_path)
        first = order(fake, cid("b", BUY))
        assert first["status"] == "new" and BUY not in fake.positions
        patient = FIRST.model_copy(update={"sell_fill_timeout_seconds": 4.0})
        report, journal = run(fake, validated_plan, tmp_path, patient)
        # The fresh plan named FANG again under its first id; the open order was adopted, not sent.
        assert fake.posts_by_cid[cid("b", BUY)] == 1 and intents(journal, cid("b", BUY)) == 1
        assert cid("b", BUY, 2) not in fake.posts_by_cid
        fang = next(o for o in report.orders if o.symbol == BUY)
        assert fang.earlier_run and fang.status == "filled" and fang.broker_order_id == first["id"]
        # FANG holds that one order's shares, once; the trim and FCX were followed up under "-2".
        assert fake.positions[BUY] == pytest.approx(float(first["notional"]) / fake.prices[BUY], abs=1e-9)
        assert fake.posts_by_cid[cid("s", TRIM, 2)] == 1 and fake.posts_by_cid[cid("b", OTHER, 2)] == 1
        assert_on_target(validated_plan, fake, TRIM, OTHER)
        assert [s for s, _ in report.residual] == [BUY]   # the rest of FANG: the adopted order was smaller
        # Once that order is done, the next run sends the rest under "-2" and the account is on target.
        third, journal = run(fake, validated_plan, tmp_path, FIRST)
        assert third.reached_targets, third.summary()
        assert fake.posts_by_cid[cid("b", BUY)] == 1 and fake.posts_by_cid[cid("b", BUY, 2)] == 1
        assert_on_target(validated_plan, fake, *weights_of(validated_plan))
        assert max(fake.posts_by_cid.values()) == 1


def test_rerun_adopts_a_partly_filled_buy_and_never_posts_it_again(validated_plan, tmp_path):
    """(b) FANG's first order is half filled and still open (partially_filled) when the rerun starts."""
    with make_fake(validated_plan) as fake:
        fake.fill_fraction[BUY] = 0.5
        first_run_with_the_trim_unfilled(fake, validated_plan, tmp_path)
        first = order(fake, cid("b", BUY))
        half = round(float(first["notional"]) / fake.prices[BUY] * 0.5, 9)
        assert first["status"] == "partially_filled" and fake.positions[BUY] == pytest.approx(half, abs=1e-9)
        report, journal = run(fake, validated_plan, tmp_path, FIRST)
        assert fake.posts_by_cid[cid("b", BUY)] == 1 and intents(journal, cid("b", BUY)) == 1
        assert cid("b", BUY, 2) not in fake.posts_by_cid
        fang = next(o for o in report.orders if o.symbol == BUY)
        assert fang.earlier_run and fang.status == "partially_filled" and fang.open
        assert fake.positions[BUY] == pytest.approx(half, abs=1e-9)   # the half fill, once; nothing more bought
        assert_on_target(validated_plan, fake, TRIM, OTHER)
        assert not report.reached_targets and [s for s, _ in report.residual] == [BUY]
        # The rest of the order is canceled (by hand; a DAY order would expire at the close): the
        # next run sends what is missing under "-2" and the account is on target.
        broker(fake).cancel_order(first["id"])
        del fake.fill_fraction[BUY]
        third, _ = run(fake, validated_plan, tmp_path, FIRST)
        assert third.reached_targets, third.summary()
        assert fake.posts_by_cid[cid("b", BUY)] == 1 and fake.posts_by_cid[cid("b", BUY, 2)] == 1
        assert_on_target(validated_plan, fake, *weights_of(validated_plan))


def test_rerun_follows_up_a_filled_buy_under_a_new_id(validated_plan, tmp_path):
    """(c) FANG's and FCX's first orders filled (scaled down): the rerun buys the rest under "-2"."""
    with make_fake(validated_plan) as fake:
        first_run_with_the_trim_unfilled(fake, validated_plan, tmp_path)
        firsts = {s: order(fake, cid("b", s)) for s in (BUY, OTHER)}
        assert all(o["status"] == "filled" for o in firsts.values())
        report, journal = run(fake, validated_plan, tmp_path, FIRST)
        assert report.reached_targets, report.summary()
        for sym in (BUY, OTHER):
            assert fake.posts_by_cid[cid("b", sym)] == 1 and intents(journal, cid("b", sym)) == 1
            assert fake.posts_by_cid[cid("b", sym, 2)] == 1
            second = order(fake, cid("b", sym, 2))
            bought = float(firsts[sym]["filled_qty"]) + float(second["filled_qty"])
            assert fake.positions[sym] == pytest.approx(bought, abs=1e-9)   # two orders, each once
        assert fake.posts_by_cid[cid("s", TRIM)] == 1 and fake.posts_by_cid[cid("s", TRIM, 2)] == 1
        assert_on_target(validated_plan, fake, *weights_of(validated_plan))
        assert max(fake.posts_by_cid.values()) == 1 and fake.closes_by_symbol["AAPL"] == 1
