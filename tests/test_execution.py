"""Two-phase rebalance against the simulated broker, which fills at real session opens."""

import datetime as dt
import json

import pytest

from trading_system.broker.dryrun import DryRunBroker
from trading_system.broker.simulated import SimulatedBroker
from trading_system.config import ExecutionConfig
from trading_system.errors import BrokerError
from trading_system.execute.rebalance import Journal, rebalance
from trading_system.marketdata.store import BarStore
from trading_system.execute.orders import default_guards
from conftest import SAMPLE

SESSION = dt.date(2021, 4, 20)
CFG = ExecutionConfig(max_order_notional=200_000.0)
PLAN = "20210420-abcdef12"


@pytest.fixture
def store():
    return BarStore(SAMPLE)


def broker(store, tmp_path, session=SESSION, cash=100_000.0):
    return SimulatedBroker(store, tmp_path / "acct.json", session, cash)


def guards(tmp_path):
    return default_guards(CFG, tmp_path / "KILL_SWITCH")


def test_sells_first_then_buys_from_the_cash_there(store, tmp_path):
    b = broker(store, tmp_path)
    _, first = rebalance({"AAPL": 0.5, "MSFT": 0.5}, b, CFG, PLAN, Journal(tmp_path / "j1.jsonl"), guards(tmp_path))
    assert [o.side for o in first.orders] == ["buy", "buy"]
    assert first.reached_targets
    aapl_open = store.session_bars(SESSION, ["AAPL"]).loc["AAPL", "open"]
    assert first.orders[0].filled_avg_price == pytest.approx(aapl_open)
    # Next plan drops AAPL for KO: AAPL is closed out in phase 1, KO bought in phase 2.
    _, second = rebalance({"KO": 0.5, "MSFT": 0.5}, b, CFG, "20210420-00000002", Journal(tmp_path / "j2.jsonl"),
                          guards(tmp_path))
    assert [(o.phase, o.symbol) for o in second.orders][0] == ("sell", "AAPL")
    assert second.orders[0].close_position
    assert "AAPL" not in b.get_positions()
    assert second.account_after.cash >= 0
    assert second.account_after.cash == pytest.approx(0.02 * second.account_after.equity, abs=CFG.min_order_dollars * 2)


def test_rerun_never_sends_an_order_twice(store, tmp_path):
    b = broker(store, tmp_path)
    journal = tmp_path / "j.jsonl"
    _, first = rebalance({"AAPL": 0.5, "MSFT": 0.5}, b, CFG, PLAN, Journal(journal), guards(tmp_path))
    sent = len(json.loads((tmp_path / "acct.json").read_text())["orders"])
    # Crash after the first intent only: cut the journal back to its first line and run again.
    lines = journal.read_text().splitlines()
    journal.write_text(lines[0] + "\n")
    again = broker(store, tmp_path)
    _, second = rebalance({"AAPL": 0.5, "MSFT": 0.5}, again, CFG, PLAN, Journal(journal), guards(tmp_path))
    assert len(json.loads((tmp_path / "acct.json").read_text())["orders"]) == sent
    # The rerun sends nothing: its only order is the first run's AAPL buy, found by its client id.
    assert [(o.symbol, o.status, o.earlier_run, o.broker_order_id) for o in second.orders] == [
        ("AAPL", "filled", True, first.orders[0].broker_order_id)]
    assert [e["event"] for e in Journal(journal).entries] == ["intent", "found", "done"]
    assert again.holdings == b.holdings and second.reached_targets


def test_crash_between_intent_and_send_sends_exactly_once(store, tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    journal.append("intent", client_order_id=f"prep-{PLAN}-b-AAPL")   # written, then the process died
    b = broker(store, tmp_path)
    _, report = rebalance({"AAPL": 1.0}, b, CFG, PLAN, Journal(tmp_path / "j.jsonl"), guards(tmp_path))
    assert [o.status for o in report.orders] == ["filled"]
    assert len(json.loads((tmp_path / "acct.json").read_text())["orders"]) == 1


def test_torn_journal_line_is_ignored(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text('{"event": "intent", "client_order_id": "a"}\n{"event": "inte')
    assert list(Journal(path).intents()) == ["a"]


def test_dry_run_sends_nothing_and_sizes_buys_from_freed_cash(store, tmp_path):
    b = broker(store, tmp_path)
    rebalance({"AAPL": 1.0}, b, CFG, PLAN, Journal(None), guards(tmp_path))
    before = (tmp_path / "acct.json").read_text()
    dry = DryRunBroker(broker(store, tmp_path))
    _, report = rebalance({"MSFT": 1.0}, dry, CFG, "20210420-00000002", Journal(None), guards(tmp_path))
    assert [(o.side, o.symbol, o.status) for o in report.orders] == [("sell", "AAPL", "dry_run"), ("buy", "MSFT", "dry_run")]
    assert report.orders[1].notional == pytest.approx(0.98 * report.account_before.equity, abs=1.0)
    assert (tmp_path / "acct.json").read_text() == before


def test_splits_roll_into_the_simulated_positions(store, tmp_path):
    # Bought AAPL on 2020-08-28 (pre-split); on 2020-08-31 the 4:1 split quadruples the shares.
    b = broker(store, tmp_path, session=dt.date(2020, 8, 28))
    rebalance({"AAPL": 1.0}, b, CFG, PLAN, Journal(None), guards(tmp_path))
    qty = b.get_positions()["AAPL"].qty
    later = broker(store, tmp_path, session=dt.date(2020, 8, 31))
    assert later.get_positions()["AAPL"].qty == pytest.approx(qty * 4)


def test_guard_refusal_sends_nothing(store, tmp_path):
    b = broker(store, tmp_path)
    cfg = CFG.model_copy(update={"max_order_notional": 10_000.0})
    with pytest.raises(BrokerError, match="per-order limit"):
        rebalance({"AAPL": 1.0}, b, cfg, PLAN, Journal(tmp_path / "j.jsonl"), default_guards(cfg, tmp_path / "K"))
    assert not (tmp_path / "j.jsonl").exists() and not (tmp_path / "acct.json").exists()
