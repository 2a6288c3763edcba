"""The cron path: no --as-of, the wall clock pinned by freezegun at 20:00 and 09:00 ET.

The plan, the morning's choice and the orders must be those of the --as-of replay of the
same night (the golden cycle), so a replay is exactly what cron would have done.
"""

import json
from pathlib import Path

from freezegun import freeze_time

GOLDEN = json.loads((Path(__file__).parent / "golden" / "cycle_2021-04-20.json").read_text())


def _warm_imports(prep):
    """Load every lazily imported module (pandas/pyarrow C extensions) before time is frozen."""
    assert prep("--as-of", "2021-04-19T20:00", "prepare", "--dry-run").exit_code == 0


def test_cron_times_on_the_wall_clock_match_the_replay(prep, monkeypatch):
    monkeypatch.delenv("PREP_AS_OF", raising=False)
    _warm_imports(prep)
    with freeze_time("2021-04-20 00:00:00"):            # 20:00 EDT on 2021-04-19
        r = prep("prepare")
    assert r.exit_code == 0, r.output
    plan = prep.plan()
    assert (plan["scan_session"], plan["target_session"]) == ("2021-04-19", "2021-04-20")
    assert plan["plan_id"] == GOLDEN["plan_id"]
    with freeze_time("2021-04-20 13:00:00"):            # 09:00 EDT
        r = prep("validate")
    assert r.exit_code == 0, r.output
    assert prep.plan()["validation_results"]["selected_strategy"] == GOLDEN["selected_strategy"]
    with freeze_time("2021-04-20 13:31:00"):            # 09:31 EDT, the market is open: no wait
        r = prep("execute")
    assert r.exit_code == 0, r.output
    archive = json.loads(next((prep.folder / "archived_trades").glob("*.json")).read_text())
    sent = [(o["symbol"], o["side"], o["notional"]) for o in archive["execution"]["orders"]]
    assert sent == [(o["symbol"], o["side"], o["notional"]) for o in GOLDEN["orders"]]


def test_a_weekend_morning_on_the_wall_clock_keeps_the_plan(prep, monkeypatch):
    monkeypatch.delenv("PREP_AS_OF", raising=False)
    _warm_imports(prep)
    with freeze_time("2021-04-17 00:30:00"):            # Friday 2021-04-16, 20:30 EDT
        assert prep("prepare").exit_code == 0
    assert prep.plan()["target_session"] == "2021-04-19"
    with freeze_time("2021-04-17 13:00:00"):            # Saturday 09:00 EDT
        r = prep("validate")
    assert r.exit_code == 0 and "not a trading session" in r.output
    assert prep.plan()["validation_results"] is None
