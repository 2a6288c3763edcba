"""Crash tests: `prep execute` (a real subprocess) is stopped at every step of its order
journal, and at every order the broker accepted before its answer came back; a rerun must
end where a clean run ends, without any order sent twice.

Two ways to die, both abrupt (no cleanup code runs):
* ``fakes/crash_prep.py N`` runs `prep` with ``Journal.append`` wrapped to call ``os._exit``
  right after the Nth line is fsynced (after an intent = before the send; after an answer = sent);
* the fake SIGKILLs the process after accepting its Nth order and before answering it (the
  worst moment: the order exists, the journal has only its intent).

Every run (the clean one, each crashing one and each rerun) is a process of its own, forked from
``fakes/prep_forkserver.py`` (which imported pandas, alpaca-py... once, never ``trading_system``)
and running ``python -m trading_system.cli`` / ``crash_prep.py`` as ``__main__``: the same
entry points, dying the same ways, at a third of the CPU of a fresh interpreter each.  Four
cases run at a time: a run waits on the fake (fills, polls, the open delay) about as long as it computes.
"""

import concurrent.futures
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from fakes.alpaca_workspace import (alpaca_workspace, make_fake, market_values, prep_env, run_prep, start_prep,
                                    validated_plan)  # noqa: F401

MIN_ORDER = 100.0   # max($10, 0.1 % of $100k equity): positions closer than this are on target
CRASH_PREP = Path(__file__).resolve().parent / "fakes" / "crash_prep.py"


def run_crashing_prep(forks, folder, env, line: int, *args: str) -> subprocess.CompletedProcess:
    """Run `prep` (``fakes/crash_prep.py``) so that it dies right after its ``line``-th journal line."""
    return forks.run([str(CRASH_PREP), str(line), "--config", str(folder / "config.yaml"), *args], folder, env)


def clean_run(forks, plan, folder):
    with make_fake(plan) as fake:
        ws = alpaca_workspace(folder, plan)
        r = run_prep(ws, prep_env(fake), "execute", forks=forks)
        assert r.returncode == 0, r.stderr
        journal = next((ws / "data" / "orders").glob("*.jsonl")).read_text().splitlines()
        return market_values(fake), len(journal), len(fake.orders)


def crash_then_rerun(forks, plan, folder, line: int | None = None, kill_at_order: int | None = None):
    """Run once with a crash, then again; return the fake's state and both exit codes."""
    with make_fake(plan) as fake:
        ws = alpaca_workspace(folder, plan)
        env = prep_env(fake)
        if line is not None:
            first = run_crashing_prep(forks, ws, env, line, "execute")
            code = first.returncode
        else:
            accepted, proc = [], {}
            ready = threading.Event()

            def kill(order):
                accepted.append(order["id"])
                if len(accepted) == kill_at_order:
                    ready.wait(30)
                    os.kill(proc["p"].pid, signal.SIGKILL)

            fake.on_accept = kill
            p = start_prep(ws, env, "execute", forks=forks)
            proc["p"] = p
            ready.set()
            p.communicate(timeout=120)
            code = p.returncode
            fake.on_accept = None
        second = run_prep(ws, env, "execute", forks=forks)
        return {"first": code, "second": second.returncode, "stderr": second.stderr,
                "values": market_values(fake), "posts": dict(fake.posts_by_cid),
                "closes": dict(fake.closes_by_symbol),
                "orders": [(o["symbol"], o["side"]) for o in fake.orders],
                "archived": len(list((ws / "archived_trades").glob("*.json"))),
                "plan_left": (ws / "pending_trades.json").exists()}


@pytest.mark.slow
def test_a_crash_at_any_step_then_a_rerun_ends_like_a_clean_run(forks, validated_plan, tmp_path):
    clean_values, journal_lines, n_orders = clean_run(forks, validated_plan, tmp_path / "clean")
    assert journal_lines >= 2 * n_orders  # an intent and an answer per order, at least
    cases = [("line", n) for n in range(1, journal_lines + 1)] + [("order", k) for k in range(1, n_orders + 1)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case: pool.submit(crash_then_rerun, forks, validated_plan, tmp_path / f"{case[0]}{case[1]}",
                                     *((case[1], None) if case[0] == "line" else (None, case[1])))
                   for case in cases}
        results = {case: f.result() for case, f in futures.items()}
    for case, r in results.items():
        assert r["first"] in (137, -signal.SIGKILL), (case, r)
        assert r["second"] == 0, (case, r["stderr"])
        assert r["archived"] == 1 and not r["plan_left"], case
        # No order sent twice: one POST per client_order_id, one close, one order per symbol and side.
        assert max(r["posts"].values()) == 1 and r["closes"] == {"AAPL": 1}, (case, r["posts"], r["closes"])
        assert len(r["orders"]) == len(set(r["orders"])) == n_orders, (case, r["orders"])
        # The same final positions as the clean run.
        assert set(r["values"]) == set(clean_values), case
        for sym, value in clean_values.items():
            assert r["values"][sym] == pytest.approx(value, abs=MIN_ORDER), (case, sym)
