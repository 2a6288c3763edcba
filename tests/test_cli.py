"""The command line on the bundled real data: exit codes, one-line errors, nothing lost."""

import json

import pytest

from conftest import write_config

EVENING, MORNING, OPEN = "2021-04-19T20:00", "2021-04-20T09:00", "2021-04-20T09:31"


def test_no_config_is_exit_2_without_traceback(tmp_path, prep):
    (prep.folder / "config.yaml").unlink()
    r = prep("--as-of", EVENING, "prepare")
    assert r.exit_code == 2
    assert "config file" in r.output and "not found" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("extra, words", [
    ("scoring:\n  lookbak: 60\n", "unknown key 'scoring.lookbak'"),
    ("validation:\n  retention_threshold: high\n", "invalid value for 'validation.retention_threshold'"),
    ("strategies:\n  benchmarks: {SPY: 0.5}\n", "sum to 1"),
    ("scoring: [1, 2\n", "not valid YAML"),
])
def test_bad_config_is_exit_2_and_names_the_key(prep, extra, words):
    write_config(prep.folder, extra)
    r = prep("--as-of", EVENING, "prepare")
    assert r.exit_code == 2, r.output
    assert words in r.output
    assert not (prep.folder / "pending_trades.json").exists()


def test_as_of_outside_the_data(prep):
    r = prep("--as-of", "2022-03-01T20:00", "prepare")
    assert r.exit_code == 2
    assert "outside the sample data" in r.output
    r = prep("--as-of", "yesterday", "prepare")
    assert r.exit_code == 2 and "ISO 8601" in r.output


def test_corrupt_plan_is_refused_and_kept(prep):
    assert prep("--as-of", EVENING, "prepare").exit_code == 0
    path = prep.folder / "pending_trades.json"
    plan = json.loads(path.read_text())
    plan["strategies"]["TACTICAL"]["allocations"]["EXR"] = 0.9   # hand-edited: no longer sums to 1
    path.write_text(json.dumps(plan))
    before = path.read_text()
    for cmd in ("validate", "execute"):
        r = prep("--as-of", MORNING, cmd)
        assert r.exit_code == 2 and "not a valid plan" in r.output and "sum to 1" in r.output
    path.write_text(before[:100])
    r = prep("--as-of", MORNING, "validate")
    assert r.exit_code == 2 and "not valid JSON" in r.output
    assert path.read_text() == before[:100]


def test_stale_plan_is_refused(prep):
    assert prep("--as-of", EVENING, "prepare").exit_code == 0
    before = (prep.folder / "pending_trades.json").read_text()
    r = prep("--as-of", "2021-04-21T09:00", "validate")
    assert r.exit_code == 2 and "prepared for session 2021-04-20" in r.output and "stale" in r.output
    assert (prep.folder / "pending_trades.json").read_text() == before


def test_holiday_morning_keeps_the_plan(prep):
    # Thursday 2021-04-01 evening -> Monday 2021-04-05 (Good Friday is a holiday).
    assert prep("--as-of", "2021-04-01T20:00", "prepare").exit_code == 0
    assert prep.plan()["target_session"] == "2021-04-05"
    for cmd in ("validate", "execute"):
        r = prep("--as-of", "2021-04-02T09:00", cmd)
        assert r.exit_code == 0 and "not a trading session" in r.output
    assert prep.plan()["validation_results"] is None


def test_nothing_pending_is_exit_0(prep):
    r = prep("--as-of", MORNING, "validate")
    assert r.exit_code == 0 and "no pending plan" in r.output


def test_execute_before_validate_is_exit_2(prep):
    prep("--as-of", EVENING, "prepare")
    r = prep("--as-of", OPEN, "execute")
    assert r.exit_code == 2 and "run 'prep validate' first" in r.output


def test_too_early_sends_nothing(prep):
    prep("--as-of", EVENING, "prepare")
    prep("--as-of", "2021-04-20T08:00", "validate")
    r = prep("--as-of", "2021-04-20T08:00", "execute")
    assert r.exit_code == 1 and "more than 45 minutes away" in r.output
    assert (prep.folder / "pending_trades.json").exists()
    assert not (prep.folder / "data" / "orders").exists()


def test_dry_runs_write_nothing(prep):
    r = prep("--as-of", EVENING, "prepare", "--dry-run")
    assert r.exit_code == 0 and "dry run" in r.output
    assert not (prep.folder / "pending_trades.json").exists()
    prep("--as-of", EVENING, "prepare")
    before = (prep.folder / "pending_trades.json").read_text()
    assert prep("--as-of", MORNING, "validate", "--dry-run").exit_code == 0
    assert (prep.folder / "pending_trades.json").read_text() == before
    prep("--as-of", MORNING, "validate")
    validated = (prep.folder / "pending_trades.json").read_text()
    r = prep("--as-of", OPEN, "execute", "--dry-run")
    assert r.exit_code == 0 and "dry run: nothing sent" in r.output and "dry_run" in r.output
    assert (prep.folder / "pending_trades.json").read_text() == validated
    assert not (prep.folder / "archived_trades").exists()
    assert not (prep.folder / "data" / "sim_account.json").exists()
    assert not (prep.folder / "data" / "orders").exists()


def test_waits_for_the_open_when_close(prep):
    prep("--as-of", EVENING, "prepare")
    prep("--as-of", MORNING, "validate")
    r = prep("--as-of", MORNING, "execute")   # 30 minutes before the open: waits (frozen clock jumps)
    assert r.exit_code == 0, r.output
    assert "waiting for the open" in r.output and "09:30:05" in r.output


def test_kill_switch_stops_every_order(prep):
    prep("--as-of", EVENING, "prepare")
    prep("--as-of", MORNING, "validate")
    (prep.folder / "KILL_SWITCH").touch()
    r = prep("--as-of", OPEN, "execute")
    assert r.exit_code == 1 and "kill switch" in r.output and "nothing was sent" in r.output
    assert (prep.folder / "pending_trades.json").exists()
    assert not (prep.folder / "data" / "sim_account.json").exists()


def test_log_file_is_written(prep):
    prep("--as-of", "2022-03-01T20:00", "prepare")
    log = (prep.folder / "logs" / "pre_market_prep.log").read_text()
    assert "prep prepare failed" in log and "Traceback" in log   # details go to the log, not the screen


def test_gap_down_morning_rejects_and_renormalises(prep):
    # Real night: Friday 2020-02-21 evening -> Monday 2020-02-24, when the market gapped down.
    assert prep("--as-of", "2020-02-21T20:00", "prepare").exit_code == 0
    r = prep("--as-of", "2020-02-24T09:00", "validate")
    assert r.exit_code == 0, r.output
    vr = prep.plan()["validation_results"]
    rejected = {s for s, c in vr["checks"].items() if not c["passed"]}
    assert rejected, "a gap-down morning should reject some picks"
    for c in vr["checks"].values():
        assert c["passed"] == (c["retention"] >= 0.85)
        assert c["price_source"] == "sample:session_open"
        assert c["current_score"] == pytest.approx(c["retention"] * c["original_score"])
    for v in vr["validated_strategies"].values():
        assert set(v["validated_allocations"]).isdisjoint(rejected)
        if v["validated_allocations"]:
            assert sum(v["validated_allocations"].values()) == pytest.approx(1.0)
    contestants = {n: v["validation_rate"] for n, v in vr["validated_strategies"].items()
                   if n != "BUY_HOLD" and v["contestant"]}
    assert vr["selected_strategy"] == max(contestants, key=contestants.get)
    assert "REJECT" in r.output
