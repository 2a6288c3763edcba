"""Issue 8, items 3, 4, 5 (coverage), 7 and 8: settings in range, guards that fit the account,
incomplete data refused, state never replaced without a word, a plan kept until its job is done.

Every run goes through the real command line on the bundled real bars (data/sample) or
against the loopback Alpaca fake; accounts at the fake are synthetic (see alpaca_workspace).
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from conftest import SAMPLE, Prep, write_config
from fakes.alpaca_workspace import (alpaca_workspace, make_fake, prep_env, run_prep, start_prep,  # noqa: F401
                                    starting_account)
from fakes.alpaca_workspace import validated_plan  # noqa: F401  (session fixture)

EVENING, MORNING, OPEN = "2021-04-19T20:00", "2021-04-20T09:00", "2021-04-20T09:31"


def archives(folder) -> dict[str, str]:
    """{archive file name: its status} in the workspace's archived_trades/."""
    return {p.name: json.loads(p.read_text())["status"] for p in sorted((folder / "archived_trades").glob("*.json"))}


# --- item 3: every number in range, refused at load ------------------------------------------

@pytest.mark.parametrize("extra, key, shown", [
    ("execution:\n  max_order_notional: nan\n", "execution.max_order_notional", "'nan'"),
    ("execution:\n  max_run_turnover: .inf\n", "execution.max_run_turnover", "inf"),
    ("execution:\n  poll_interval_seconds: -1\n", "execution.poll_interval_seconds", "-1"),
    ("execution:\n  sell_fill_timeout_seconds: .nan\n", "execution.sell_fill_timeout_seconds", "nan"),
    ("execution:\n  min_order_dollars: -100\n", "execution.min_order_dollars", "-100"),
    ("scoring:\n  periods_per_year: 0\n", "scoring.periods_per_year", "0"),
    ("scoring:\n  weights:\n    sharpe: -50\n", "scoring.weights.sharpe", "-50"),
    ("strategies:\n  top_core: -1\n", "strategies.top_core", "-1"),
    ("strategies:\n  benchmarks: {SPY: .nan, QQQ: 0.4}\n", "strategies.benchmarks.SPY", "nan"),
    ("strategies:\n  benchmarks: {SPY: 1.2, QQQ: -0.2}\n", "strategies.benchmarks", "1.2"),
    ("validation:\n  retention_threshold: 85\n", "validation.retention_threshold", "85"),
    ("validation:\n  max_unpriced_fraction: 1.5\n", "validation.max_unpriced_fraction", "1.5"),
    ("data:\n  min_coverage: 0\n", "data.min_coverage", "0"),
    ("scoring:\n  lookback: 1\n", "scoring.lookback", "1"),
])
def test_settings_out_of_range_are_refused_at_load(prep, extra, key, shown):
    write_config(prep.folder, extra)
    r = prep("--as-of", EVENING, "prepare")
    assert r.exit_code == 2, r.output
    assert f"'{key}" in r.output and shown in r.output and "Traceback" not in r.output
    assert not (prep.folder / "pending_trades.json").exists()


def test_a_percent_where_a_fraction_belongs_says_so(prep):
    write_config(prep.folder, "validation:\n  retention_threshold: 85\n")
    r = prep("--as-of", EVENING, "prepare")
    assert "less than or equal to 1" in r.output and "not a percent" in r.output


# --- item 4: guards relative to equity; the dry run shows everything --------------------------

def test_caps_that_block_ordinary_accounts_do_not_block_the_demo_night(prep):
    """The default guards let the real 2021-04-20 rebalance of a $100k account through (the old
    absolute $100k/$250k defaults are gone; the limits scale with equity)."""
    for as_of, cmd in ((EVENING, "prepare"), (MORNING, "validate"), (OPEN, "execute")):
        r = prep("--as-of", as_of, cmd)
        assert r.exit_code == 0, r.output


def test_dry_run_prints_every_order_and_marks_what_a_guard_would_refuse(prep):
    write_config(prep.folder, "execution:\n  max_order_notional: 5000\n")
    for as_of, cmd in ((EVENING, "prepare"), (MORNING, "validate")):
        assert prep("--as-of", as_of, cmd).exit_code == 0
    weights = prep.plan()["validation_results"]
    weights = weights["validated_strategies"][weights["selected_strategy"]]["validated_allocations"]
    r = prep("--as-of", OPEN, "execute", "--dry-run")
    assert r.exit_code == 1, r.output
    for sym in weights:                       # the full order list is shown ...
        assert sym in r.output
    assert "REFUSED by" in r.output                                             # ... and marked
    assert "dry run: a live run would not go through as planned" in " ".join(r.output.split())
    assert "execution.max_order_notional refuses" in " ".join(r.output.split())
    assert (prep.folder / "pending_trades.json").exists() and not (prep.folder / "archived_trades").exists()
    live = prep("--as-of", OPEN, "execute")   # the live run is refused before any order
    assert live.exit_code == 1 and "pre-trade check refused the run, nothing was sent" in live.output
    assert not (prep.folder / "data" / "sim_account.json").exists()


# --- item 5: a session with too few bars is a data failure -------------------------------------

def test_session_coverage_under_min_coverage_writes_no_plan(tmp_path):
    """Real bars of data/sample with 2021-04-19 cut to 100 symbols (an incomplete answer)."""
    sample = tmp_path / "sample"
    shutil.copytree(SAMPLE, sample)
    bars = pd.read_parquet(sample / "bars.parquet")
    day = bars["date"] == pd.Timestamp("2021-04-19").date()
    keep = set(sorted(bars.loc[day, "symbol"])[:100])
    bars[~day | bars["symbol"].isin(keep)].to_parquet(sample / "bars.parquet", index=False)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "config.yaml").write_text(f"data:\n  sample_dir: {sample}\n"
                                    f"universe:\n  constituents_file: {sample / 'constituents.csv'}\n")
    prep = Prep(ws)
    r = prep("--as-of", EVENING, "prepare")
    assert r.exit_code == 1, r.output
    assert "only 100 of 507" in r.output and "data.min_coverage" in r.output
    assert not (ws / "pending_trades.json").exists() and not (ws / "data" / "scan_results.json").exists()
    (ws / "config.yaml").write_text(f"data:\n  sample_dir: {sample}\n  min_coverage: 0.15\n"
                                    f"universe:\n  constituents_file: {sample / 'constituents.csv'}\n")
    assert prep("--as-of", EVENING, "prepare").exit_code == 0   # the user may accept it, knowingly


# --- item 7: state replaced without a word ---------------------------------------------------

def test_prepare_after_validate_is_refused_unless_forced(prep):
    for as_of, cmd in ((EVENING, "prepare"), (MORNING, "validate")):
        assert prep("--as-of", as_of, cmd).exit_code == 0
    before = (prep.folder / "pending_trades.json").read_text()
    r = prep("--as-of", "2021-04-20T06:00", "prepare")
    assert r.exit_code == 2 and "already validated" in r.output and "--force" in r.output
    assert (prep.folder / "pending_trades.json").read_text() == before
    r = prep("--as-of", "2021-04-20T06:00", "prepare", "--force")
    assert r.exit_code == 0, r.output
    assert prep.plan()["validation_results"] is None
    [(name, status)] = archives(prep.folder).items()
    assert status == "replaced"
    replaced = json.loads((prep.folder / "archived_trades" / name).read_text())["plan"]
    assert replaced["validation_results"] == json.loads(before)["validation_results"]


def test_prepare_with_an_earlier_as_of_keeps_the_newer_plan(prep):
    assert prep("--as-of", EVENING, "prepare").exit_code == 0
    before = (prep.folder / "pending_trades.json").read_text()
    r = prep("--as-of", "2021-04-16T20:00", "prepare")
    assert r.exit_code == 2 and "later than this scan's 2021-04-19" in r.output
    assert (prep.folder / "pending_trades.json").read_text() == before
    assert prep("--as-of", EVENING, "prepare").exit_code == 0   # the same evening again: allowed, same plan
    assert (prep.folder / "pending_trades.json").read_bytes() != b"" and archives(prep.folder) == {}


def test_prepare_during_market_hours_is_refused_unless_forced(prep):
    r = prep("--as-of", "2021-04-20T10:15", "prepare")
    assert r.exit_code == 2 and "session 2021-04-20 is already trading" in r.output
    assert not (prep.folder / "pending_trades.json").exists()
    r = prep("--as-of", "2021-04-20T10:15", "prepare", "--force")
    assert r.exit_code == 0 and prep.plan()["target_session"] == "2021-04-20"


# --- item 8: a transient broker error keeps the plan for a rerun ------------------------------

def test_a_transient_broker_error_keeps_the_plan_and_a_rerun_finishes(tmp_path, validated_plan, forks):
    with make_fake(validated_plan) as fake:
        _, _, who = starting_account(validated_plan, fake.prices)
        fake.fault("orders_post", 500, times=3, symbol=who["trim"])   # three 500s: every send of the trim
        ws = alpaca_workspace(tmp_path / "ws", validated_plan)
        first = run_prep(ws, prep_env(fake), "execute", forks=forks)
        assert first.returncode == 1, first.stderr
        assert "did not reach its targets" in first.stderr and "Traceback" not in first.stderr
        assert "the plan is kept: run 'prep execute' again" in " ".join(first.stderr.split())
        assert (ws / "pending_trades.json").exists()
        assert list(archives(ws).values()) == ["incomplete"]
        again = run_prep(ws, prep_env(fake), "--as-of", MORNING, "validate", forks=forks)   # a new choice could undo run 1
        assert again.returncode == 2 and "orders were already sent" in again.stderr
        second = run_prep(ws, prep_env(fake), "execute", forks=forks)
        assert second.returncode == 0, second.stdout + second.stderr
        assert not (ws / "pending_trades.json").exists()
        assert sorted(archives(ws).values()) == ["executed", "incomplete"]
        cids = [o["client_order_id"] for o in fake.orders]
        assert len(cids) == len(set(cids))                     # no client_order_id placed twice
        plan_id = validated_plan["plan_id"]
        assert cids.count(f"prep-{plan_id}-s-{who['trim']}") == 1   # the trim, placed by the rerun
        # The first run's buys were scaled to the cash there; the rerun tops them up under the
        # next id of their series (their first orders are filled, so their ids are spent).
        assert {c for c in cids if c.endswith("-2")} == {f"prep-{plan_id}-b-{s}-2" for s in who["buys"]}


def test_a_dry_run_never_reaches_the_real_broker_and_no_buy_goes_out_after_the_close(tmp_path):
    """Review findings: a dry run is a DryRunBroker (``rebalance`` has no flag that could pair
    "dry" with a real broker), and buys are not sent once the market has closed (a DAY order
    would queue for the next session)."""
    import datetime as dt

    from trading_system.broker.dryrun import DryRunBroker
    from trading_system.broker.simulated import SimulatedBroker
    from trading_system.config import ExecutionConfig
    from trading_system.execute.rebalance import Journal, rebalance
    from trading_system.marketdata.store import BarStore
    from trading_system.execute.orders import default_guards

    cfg = ExecutionConfig()
    store = BarStore(SAMPLE)
    account = tmp_path / "acct.json"
    real = SimulatedBroker(store, account, dt.date(2021, 4, 20), 100_000.0)
    _, dry = rebalance({"AAPL": 0.5, "MSFT": 0.5}, DryRunBroker(real), cfg, "20210420-00000001", Journal(None),
                       default_guards(cfg, tmp_path / "KILL"))
    assert {o.status for o in dry.orders} == {"dry_run"} and not account.exists()
    assert real.get_positions() == {}
    _, late = rebalance({"AAPL": 0.5, "MSFT": 0.5}, real, cfg, "20210420-00000002", Journal(None),
                        default_guards(cfg, tmp_path / "KILL"), market_open=lambda: False)
    assert late.orders == [] and real.get_positions() == {}
    assert {s for s, _, why in late.skipped if "market closed" in why} == {"AAPL", "MSFT"}


def test_prepare_and_validate_at_once_never_drop_a_validation(tmp_path, forks):
    """Item 7, concurrently: whichever takes the plan lock first, a validation that reported
    success is still in the plan afterwards (prepare refuses it, or validate ran on the new plan).
    Two `prep` processes of their own (children of the fork server, see conftest ``forks``)."""
    write_config(tmp_path)
    prep = Prep(tmp_path)
    assert prep("--as-of", EVENING, "prepare").exit_code == 0
    env = prep_env(None)
    for _ in range(2):
        procs = [start_prep(tmp_path, env, "--as-of", MORNING, "validate", forks=forks),
                 start_prep(tmp_path, env, "--as-of", "2021-04-20T06:00", "prepare", forks=forks)]
        (v_out, v_err), (p_out, p_err) = (p.communicate(timeout=120) for p in procs)
        validated_ok, prepared_ok = procs[0].returncode == 0, procs[1].returncode == 0
        plan = prep.plan()
        assert not (validated_ok and prepared_ok and plan["validation_results"] is None), (v_err, p_err)
        if validated_ok and not prepared_ok:
            assert "already validated" in p_err or "another prep run" in p_err
            assert plan["validation_results"] is not None
        assert "Traceback" not in v_err + p_err
