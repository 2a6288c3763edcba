import json

import pytest

from trading_system.errors import LockHeldError, PlanError
from trading_system.plan import load_plan, plan_lock, write_json_atomic


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
