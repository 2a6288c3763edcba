import json

import pytest

from trading_system.errors import LockHeldError, PlanError
from trading_system.state.atomic import write_json_atomic
from trading_system.state.plan import load_plan, plan_lock


def test_missing_plan_is_none(tmp_path):
    assert load_plan(tmp_path / "pending_trades.json") is None


def test_corrupt_json_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "pending_trades.json"
    path.write_text('{"plan_id": "20210420-')
    with pytest.raises(PlanError, match="not valid JSON"):
        load_plan(path)
    assert path.read_text() == '{"plan_id": "20210420-'


def test_hand_broken_plan_names_the_field(tmp_path):
    path = tmp_path / "pending_trades.json"
    write_json_atomic(path, {"schema_version": 1, "plan_id": "nope"})
    with pytest.raises(PlanError, match="plan_id"):
        load_plan(path)


def test_atomic_write_leaves_no_temp_file(tmp_path):
    path = tmp_path / "x.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_lock_refuses_a_second_run(tmp_path):
    path = tmp_path / "pending_trades.json"
    with plan_lock(path):
        with pytest.raises(LockHeldError, match="another prep run"):
            with plan_lock(path):
                pass
    with plan_lock(path):  # released after the first run
        pass


# --- issue 8 item 6: plan contents are checked on load; nothing broken is ever written --------------

import copy  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import threading  # noqa: E402

from fakes.alpaca_workspace import validated_plan  # noqa: E402,F401  (the real plan, made by the CLI)
from trading_system.state.plan import Plan, save_plan  # noqa: E402


def _write(tmp_path, plan: dict):
    path = tmp_path / "pending_trades.json"
    path.write_text(json.dumps(plan))   # json.dumps writes NaN / Infinity as bare constants
    return path


def _prepared(validated: dict) -> dict:
    return {**copy.deepcopy(validated), "validation_results": None}


def _selected(plan: dict) -> dict:
    vr = plan["validation_results"]
    return vr["validated_strategies"][vr["selected_strategy"]]["validated_allocations"]


def test_item6_real_plans_load_and_round_trip(tmp_path, validated_plan):  # noqa: F811
    for plan in (_prepared(validated_plan), copy.deepcopy(validated_plan)):
        loaded = load_plan(_write(tmp_path, plan))
        save_plan(tmp_path / "again.json", loaded)
        assert load_plan(tmp_path / "again.json") == loaded


@pytest.mark.parametrize("value", [math.nan, math.inf, -0.1, 1.5])
def test_item6_evening_weight_must_be_finite_in_0_1(tmp_path, validated_plan, value):  # noqa: F811
    plan = _prepared(validated_plan)
    plan["strategies"]["TACTICAL"]["allocations"]["EXR"] = value
    with pytest.raises(PlanError, match=r"strategies\.TACTICAL\.allocations\.EXR"):
        load_plan(_write(tmp_path, plan))


@pytest.mark.parametrize("value", [math.nan, -0.05, 1.2])
def test_item6_validated_weight_must_be_finite_in_0_1(tmp_path, validated_plan, value):  # noqa: F811
    plan = copy.deepcopy(validated_plan)
    weights = _selected(plan)
    first, second = list(weights)[:2]
    if math.isfinite(value):  # keep the sum at 1, so only the range can refuse it
        weights[second] += weights[first] - value
    weights[first] = value
    with pytest.raises(PlanError, match=rf"validated_allocations\.{first}"):
        load_plan(_write(tmp_path, plan))


def test_item6_validated_weights_must_sum_to_1(tmp_path, validated_plan):  # noqa: F811
    plan = copy.deepcopy(validated_plan)
    weights = _selected(plan)
    for s in weights:
        weights[s] *= 5
    with pytest.raises(PlanError, match=r"validated_allocations must sum to 1 \(they sum to 5\.0"):
        load_plan(_write(tmp_path, plan))


def test_item6_every_allocation_needs_an_original_score(tmp_path, validated_plan):  # noqa: F811
    plan = _prepared(validated_plan)
    del plan["strategies"]["SPEC"]["original_scores"]["WFC"]
    with pytest.raises(PlanError, match=r"strategies\.SPEC: original_scores has no entry for WFC"):
        load_plan(_write(tmp_path, plan))
    plan = _prepared(validated_plan)
    plan["strategies"]["SPEC"]["original_scores"]["WFC"] = None
    with pytest.raises(PlanError, match=r"strategies\.SPEC\.original_scores has no score for WFC"):
        load_plan(_write(tmp_path, plan))
    plan = _prepared(validated_plan)
    plan["strategies"]["BUY_HOLD"]["original_scores"]["SPY"] = None   # an unscored benchmark is allowed
    assert load_plan(_write(tmp_path, plan)) is not None


def test_item6_selected_strategy_needs_a_validated_entry(tmp_path, validated_plan):  # noqa: F811
    plan = copy.deepcopy(validated_plan)
    vr = plan["validation_results"]
    del vr["validated_strategies"][vr["selected_strategy"]]
    with pytest.raises(PlanError, match=r"validation_results\.selected_strategy \w+ has no entry"):
        load_plan(_write(tmp_path, plan))


def test_item6_validated_names_are_a_subset_of_the_evening_names(tmp_path, validated_plan):  # noqa: F811
    plan = copy.deepcopy(validated_plan)
    vs = plan["validation_results"]["validated_strategies"]["TACTICAL"]["validated_allocations"]
    vs["AAPL"] = vs.pop("EXR")   # a name the evening never picked
    with pytest.raises(PlanError, match=r"TACTICAL\.validated_allocations holds AAPL"):
        load_plan(_write(tmp_path, plan))


def test_item6_checks_cover_the_validated_names(tmp_path, validated_plan):  # noqa: F811
    plan = copy.deepcopy(validated_plan)
    del plan["validation_results"]["checks"]["EXR"]
    with pytest.raises(PlanError, match=r"validation_results\.checks has no check for EXR"):
        load_plan(_write(tmp_path, plan))
    plan = copy.deepcopy(validated_plan)
    plan["validation_results"]["checks"]["EXR"]["passed"] = False
    with pytest.raises(PlanError, match=r"keeps EXR, whose check did not pass"):
        load_plan(_write(tmp_path, plan))


@pytest.mark.parametrize("where", [("tickers", "EXR", "sharpe"), ("validation_results", "checks", "EXR", "price")])
def test_item6_nan_in_any_float_field_is_refused(tmp_path, validated_plan, where):  # noqa: F811
    plan = copy.deepcopy(validated_plan)
    node = plan
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = math.inf
    with pytest.raises(PlanError, match=r"\.".join(where) + ": Input should be a finite number"):
        load_plan(_write(tmp_path, plan))


def test_item6_nan_is_never_written_as_null(tmp_path, validated_plan):  # noqa: F811
    plan = Plan.model_validate(copy.deepcopy(validated_plan))
    broken = plan.model_copy(update={"config": {**plan.config, "x": math.nan}})   # config is free-form
    with pytest.raises(ValueError, match="NaN or an infinity"):
        save_plan(tmp_path / "p.json", broken)
    with pytest.raises(ValueError, match="NaN or an infinity"):
        write_json_atomic(tmp_path / "scan.json", {"tickers": [{"score": math.inf}]})
    assert list(tmp_path.iterdir()) == []   # nothing written, no temp file left
    write_json_atomic(tmp_path / "scan.json", {"tickers": [{"score": None}]})   # an explicit gap is fine
    assert json.loads((tmp_path / "scan.json").read_text()) == {"tickers": [{"score": None}]}


def test_item6_a_plan_skipping_validation_is_not_written(tmp_path, validated_plan):  # noqa: F811
    plan = Plan.model_validate(copy.deepcopy(validated_plan))
    vr = plan.validation_results
    bad = vr.model_copy(update={"validated_strategies": {k: v for k, v in vr.validated_strategies.items()
                                                         if k != vr.selected_strategy}})
    with pytest.raises(ValueError, match="selected_strategy"):
        save_plan(tmp_path / "p.json", plan.model_copy(update={"validation_results": bad}))
    assert not (tmp_path / "p.json").exists()


# --- issue 8 item 11: a plan path that is not a readable regular file ------------------------------

def test_item11_plan_that_is_a_directory_is_refused(tmp_path):
    (tmp_path / "pending_trades.json").mkdir()
    with pytest.raises(PlanError, match="not a regular file"):
        load_plan(tmp_path / "pending_trades.json")


def test_item11_plan_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    path = tmp_path / "pending_trades.json"
    os.mkfifo(path)
    outcome = []

    def load():
        try:
            load_plan(path)
        except PlanError as exc:
            outcome.append(exc)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # blocked in open(): let it go, then fail
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        t.join(5)
        pytest.fail("load_plan blocked on a FIFO")
    assert outcome and "not a regular file" in str(outcome[0])


def test_item11_unreadable_plan_is_refused(tmp_path, monkeypatch):
    # Tests run as root, where chmod 000 still reads: the read itself is made to fail as it would.
    path = _write(tmp_path, {"plan_id": "x"})

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(path), "read_bytes", denied)
    with pytest.raises(PlanError, match="cannot be read \\(Permission denied\\)"):
        load_plan(path)
