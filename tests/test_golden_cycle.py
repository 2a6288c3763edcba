"""One real night end to end: prepare 2021-04-19 20:00, validate 09:00 and execute 09:31 on 2021-04-20.

The plan, the orders and the archive are compared with checked-in expectations in
tests/golden/. To refresh them after an intended change: PREP_UPDATE_GOLDEN=1 pytest tests/test_golden_cycle.py,
then read the diff before committing it.
"""

import json
import os
from pathlib import Path


GOLDEN = Path(__file__).parent / "golden" / "cycle_2021-04-20.json"


def _r(x, nd=6):
    return None if x is None else round(float(x), nd)


def summarise(plan: dict, archive: dict, archive_name: str, outputs: list[str]) -> dict:
    vr = archive["plan"]["validation_results"]
    ex = archive["execution"]
    return {
        "plan_id": plan["plan_id"],
        "scan_session": plan["scan_session"],
        "target_session": plan["target_session"],
        "market_open_time": plan["market_open_time"],
        "scan_summary": plan["scan_summary"],
        "strategies": {n: {"allocations": {s: _r(w) for s, w in st["allocations"].items()},
                           "original_scores": {s: _r(v, 4) for s, v in st["original_scores"].items()}}
                       for n, st in plan["strategies"].items()},
        "checks": {s: {"current_score": _r(c["current_score"], 4), "retention": _r(c["retention"], 4),
                       "passed": c["passed"], "price": c["price"], "price_source": c["price_source"]}
                   for s, c in vr["checks"].items()},
        "selected_strategy": vr["selected_strategy"],
        "selection_reason": vr["selection_reason"],
        "validated_allocations": {s: _r(w) for s, w in
                                  vr["validated_strategies"][vr["selected_strategy"]]["validated_allocations"].items()},
        "orders_executed": vr["orders_executed"],
        "archive_name": archive_name,
        "archive_status": archive["status"],
        "orders": [{k: (_r(v) if isinstance(v, float) else v) for k, v in o.items()} for o in ex["orders"]],
        "account_before": {k: _r(v, 2) for k, v in ex["account_before"].items()},
        "account_after": {k: _r(v, 2) for k, v in ex["account_after"].items()},
        "reached_targets": ex["reached_targets"],
    }


def test_nightly_cycle_matches_golden(prep):
    outputs = []
    for as_of, cmd in (("2021-04-19T20:00", "prepare"), ("2021-04-20T09:00", "validate"),
                       ("2021-04-20T09:31", "execute")):
        r = prep("--as-of", as_of, cmd)
        assert r.exit_code == 0, r.output
        outputs.append(r.output)
        if cmd == "prepare":
            plan = prep.plan()
    archives = sorted((prep.folder / "archived_trades").glob("*.json"))
    assert len(archives) == 1
    archive = json.loads(archives[0].read_text())
    got = summarise(plan, archive, archives[0].name, outputs)
    # The plan inside the archive is the evening plan plus the morning's results, unchanged otherwise.
    assert archive["plan"]["strategies"] == plan["strategies"]
    assert not (prep.folder / "pending_trades.json").exists()
    # What a trader reads: universe size, buckets, the strategy chosen, the orders.
    assert "universe 507 symbols" in outputs[0] and "CORE" in outputs[0]
    assert f"selected {got['selected_strategy']}" in outputs[1]
    assert "archived to" in outputs[2]
    scan = json.loads((prep.folder / "data" / "scan_results.json").read_text())
    assert len(scan["tickers"]) == plan["scan_summary"]["total_tickers_scanned"]
    if os.environ.get("PREP_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=1) + "\n")
    expected = json.loads(GOLDEN.read_text())
    assert got == expected
    # A second execute says the plan was executed (and where its archive is) and sends nothing.
    r = prep("--as-of", "2021-04-20T09:40", "execute")
    assert r.exit_code == 0 and "was already executed" in r.output
    account = json.loads((prep.folder / "data" / "sim_account.json").read_text())
    assert len(account["orders"]) == len(expected["orders"])
