"""The two-phase rebalance through the real alpaca-py against the loopback fake.

The weights are the validated plan of 2021-04-20 (real bars); prices are that day's real
opens; the starting account is synthetic (see fakes/alpaca_workspace.py).
"""

import datetime as dt
import json

import pytest

from fakes.alpaca_server import ET
from fakes.alpaca_workspace import make_fake, market_values, sample_prices, starting_account, validated_plan, weights_of  # noqa: F401
from trading_system.broker.alpaca import AlpacaBroker
from trading_system.config import ExecutionConfig
from trading_system.errors import BrokerError
from trading_system.execute.rebalance import Journal, rebalance
from trading_system.execute.orders import default_guards

CFG = ExecutionConfig(sell_fill_timeout_seconds=2.0, poll_interval_seconds=0.05)
PLAN = "20210420-b5367119"
SINCE = dt.datetime(2021, 4, 20, tzinfo=ET)


def run(fake, plan, tmp_path, cfg=CFG, journal="j.jsonl", prices=None):
    b = AlpacaBroker(fake.key, fake.secret, url_override=fake.url, timeout=2, read_attempts=2, retry_wait=0.01)
    b.retry_wait = 0.01
    j = Journal(tmp_path / journal)
    _, report = rebalance(weights_of(plan), b, cfg, PLAN, j, default_guards(cfg, tmp_path / "KILL_SWITCH"),
                          prices=prices, since=SINCE)
    return report, j


def events(j: Journal) -> list[tuple[str, str]]:
    return [(e["event"], e.get("client_order_id", "").rsplit("-", 1)[-1]) for e in j.entries]


def test_sells_fill_before_any_buy_and_buys_fit_the_cash(validated_plan, tmp_path):
    with make_fake(validated_plan) as fake:
        _, _, who = starting_account(validated_plan, fake.prices)
        report, journal = run(fake, validated_plan, tmp_path)
        assert report.reached_targets and report.residual == []
        sides = [o["side"] for o in fake.orders]
        assert sides == ["sell", "sell", "buy", "buy"]
        last_sell_fill = max(o["filled_at"] for o in fake.orders if o["side"] == "sell")
        assert all(o["submitted_at"] > last_sell_fill for o in fake.orders if o["side"] == "buy")
        assert "AAPL" not in fake.positions and fake.closes_by_symbol["AAPL"] == 1
        # Every name ends within the minimum order ($100 on $100k) of its target.
        equity = fake.equity()
        values = market_values(fake)
        for sym, w in weights_of(validated_plan).items():
            assert values[sym] == pytest.approx(w * 0.98 * equity, abs=100), sym
        assert fake.cash >= 0.02 * equity - 1
        # One list request per poll, no per-order lookups while waiting.
        assert fake.counts["order_by_cid"] == 0 and fake.counts["order_get"] == 0
        assert events(journal)[:4] == [("intent", "AAPL"), ("answer", "AAPL"), ("intent", "NUE"), ("answer", "NUE")]
        assert report.account_before.equity == pytest.approx(100_000, abs=0.01)


@pytest.mark.parametrize("fraction", [0.5, 0.0])
def test_a_partly_filled_sell_is_canceled_and_recorded(validated_plan, tmp_path, fraction):
    with make_fake(validated_plan) as fake:
        fake.fill_fraction["NUE"] = fraction   # half filled, or not at all
        report, journal = run(fake, validated_plan, tmp_path, cfg=CFG.model_copy(update={"sell_fill_timeout_seconds": 0.5}))
        nue = next(o for o in report.orders if o.symbol == "NUE")
        assert nue.canceled and nue.status == "canceled" and nue.error_kind == "unfilled"
        assert nue.filled_qty == pytest.approx(round(nue.qty * fraction, 9))
        assert fake.orders[1]["status"] == "canceled" and float(fake.orders[1]["filled_qty"]) == nue.filled_qty
        assert ("canceled", "NUE") in events(journal)
        assert not report.reached_targets and "NUE" in dict(report.residual)
        # Phase 2 was sized from the cash really freed: the buys still fit.
        assert fake.cash >= 0


def test_a_504_on_an_accepted_order_is_looked_up_not_resent(validated_plan, tmp_path):
    with make_fake(validated_plan) as fake:
        _, _, who = starting_account(validated_plan, fake.prices)
        fake.fault("orders_post", 504, body="", accept=True, symbol=who["buys"][0])
        report, journal = run(fake, validated_plan, tmp_path)
        assert report.reached_targets
        assert max(fake.posts_by_cid.values()) == 1
        assert ("uncertain", who["buys"][0]) in events(journal) and ("found", who["buys"][0]) in events(journal)


def test_a_500_on_a_refused_post_is_looked_up_then_sent_once(validated_plan, tmp_path):
    with make_fake(validated_plan) as fake:
        _, _, who = starting_account(validated_plan, fake.prices)
        fake.fault("orders_post", 500, accept=False, symbol=who["trim"])
        report, journal = run(fake, validated_plan, tmp_path)
        assert report.reached_targets
        cid = f"prep-{PLAN}-s-{who['trim']}"
        assert fake.posts_by_cid[cid] == 2 and sum(o["client_order_id"] == cid for o in fake.orders) == 1
        assert [e for e, s in events(journal) if s == who["trim"]] == ["intent", "uncertain", "absent", "intent", "answer"]


def test_a_dropped_connection_on_a_close_is_found_by_symbol(validated_plan, tmp_path):
    with make_fake(validated_plan) as fake:
        fake.fault("close_position", drop=True, accept=True)
        report, journal = run(fake, validated_plan, tmp_path)
        assert report.reached_targets and fake.closes_by_symbol["AAPL"] == 1
        aapl = next(o for o in report.orders if o.symbol == "AAPL")
        assert aapl.status == "filled" and aapl.broker_client_order_id != aapl.client_order_id


def test_refusals_are_recorded_per_order_and_summarised(validated_plan, tmp_path):
    with make_fake(validated_plan) as fake:
        _, _, who = starting_account(validated_plan, fake.prices)
        b1, b2 = who["buys"]
        fake.fault("orders_post", 403, body=json.dumps({"code": 40310000, "message": "insufficient buying power"}),
                   symbol=b1)
        fake.reject_symbols.add(b2)
        report, _ = run(fake, validated_plan, tmp_path)
        errors = report.errors()
        assert errors == {"buying_power": [b1], "rejected": [b2]}
        assert not report.reached_targets
        assert f"buying power: {b1}" in report.summary() and f"rejected: {b2}" in report.summary()


def test_not_fractionable_assets_get_whole_shares(validated_plan, tmp_path):
    with make_fake(validated_plan) as fake:
        _, _, who = starting_account(validated_plan, fake.prices)
        whole = who["buys"][1]
        fake.fractionable[whole] = False   # synthetic flag: the real asset is fractionable
        report, _ = run(fake, validated_plan, tmp_path, prices=sample_prices())
        order = next(o for o in fake.orders if o["symbol"] == whole)
        assert order["notional"] is None and float(order["qty"]) == int(float(order["qty"])) > 0
        assert report.reached_targets  # under one share off target is under the minimum order


def test_an_order_the_broker_has_is_never_sent_again(validated_plan, tmp_path):
    with make_fake(validated_plan) as fake:
        _, _, who = starting_account(validated_plan, fake.prices)
        report, journal = run(fake, validated_plan, tmp_path)
        posts = sum(fake.posts_by_cid.values())
        # The same plan again (a rerun after the archive was lost): it finds every order, sends nothing.
        again, _ = run(fake, validated_plan, tmp_path)
        assert sum(fake.posts_by_cid.values()) == posts and sum(fake.closes_by_symbol.values()) == 1
        assert again.reached_targets


def test_blocked_account_and_kill_switch_send_nothing(validated_plan, tmp_path):
    with make_fake(validated_plan) as fake:
        fake.account_flags["trading_blocked"] = True
        with pytest.raises(BrokerError, match="blocked"):
            run(fake, validated_plan, tmp_path)
        fake.account_flags["trading_blocked"] = False
        (tmp_path / "KILL_SWITCH").write_text("stop")
        with pytest.raises(BrokerError, match="kill switch"):
            run(fake, validated_plan, tmp_path)
        assert fake.orders == [] and fake.counts["orders_post"] == 0 and fake.counts["close_position"] == 0
