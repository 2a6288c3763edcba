"""The batch engine's evenings on worker processes (DESIGN §12, "Speed": the nights may be scored in parallel).

A night's evening (its scan, regime, earnings gate, strategies and plan id) and the next morning's
re-score depend only on the bars, never on an account.  ``EveningWorkers`` computes them ahead,
``CHUNK`` nights per task, on ``workers`` processes forked from the backtest's, so they inherit the
loaded bars (nothing is pickled on the way in; the plans and scores come back pickled, a few kB a
night).  The main process takes them in order and trades the accounts one session after another,
so the decisions are the in-process engine's (``tests/test_backtest_batch.py`` compares both with
the nightly engine).

A night that fails (``DataError``, ``TooLittleHistory``...) comes back as that night's outcome and is
raised when the main process reaches it, as the in-process engine raises it.  A worker that dies
(killed, out of memory) or a chunk that overruns ``CHUNK_SECONDS`` is a ``RunFailure`` naming the
nights.  Workers leave when the backtest's process dies (``exit_with_parent``).  Without ``fork``
(not Linux) or with ``workers`` 0, the engine computes in-process.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import multiprocessing
import os
import threading
from collections.abc import Mapping
from typing import Any

import pandas as pd

from trading_system import sessions
from trading_system.config import Config
from trading_system.errors import PrepError, RunFailure
from trading_system.prepare.scan_batch import CHUNK
from trading_system.review.backtest_batch import BatchNights, EveningPlan
from trading_system.review.forked import exit_with_parent
from trading_system.validate.run import MorningScores

#: Seconds a worker may take over one chunk of nights before the backtest stops.
CHUNK_SECONDS = 900.0

Outcome = Any   # an EveningPlan / MorningScores, or the PrepError computing it raised

_STATE: tuple[BatchNights, dict[str, Config], dt.date] | None = None


def default_workers() -> int:
    """``prep backtest``'s default: the core count, at most 4 (0 on one core: the work stays here)."""
    cores = os.cpu_count() or 1
    return 0 if cores < 2 else min(cores, 4)


def can_fork() -> bool:
    """Whether worker processes can inherit the bars (the ``fork`` start method, as on Linux)."""
    return "fork" in multiprocessing.get_all_start_methods()


def _init(batch: BatchNights, configs: dict[str, Config], last_day: dt.date) -> None:
    global _STATE
    _STATE = (batch, configs, last_day)
    threading.Thread(target=exit_with_parent, name="exit-with-parent", daemon=True).start()


def _chunk(nights: list[dt.date]) -> list[tuple[dt.date, dict[str, Outcome], dict[tuple[str, dt.date], Outcome]]]:
    """In a worker: each night's evening for every scanning account, and the next morning's re-score of
    each plan (the morning's history left out: the batch engine reads only the quotes and scores)."""
    if _STATE is None:
        raise RunFailure("the evening worker has no bars (its initializer did not run)")
    batch, configs, last_day = _STATE
    out = []
    for night in nights:
        plans: dict[str, Outcome] = {}
        scores: dict[tuple[str, dt.date], Outcome] = {}
        day = sessions.next_session(night)
        for name, cfg in configs.items():
            try:
                plan = plans[name] = batch.evening(cfg, night)
            except PrepError as exc:
                plans[name] = exc
                continue
            if day <= last_day and (plan.plan_id, day) not in scores:
                try:
                    full = batch.morning_scores(cfg, plan, day)
                    scores[(plan.plan_id, day)] = dataclasses.replace(full, history=pd.DataFrame())
                except PrepError as exc:
                    scores[(plan.plan_id, day)] = exc
        out.append((night, plans, scores))
    return out


class EveningWorkers:
    """The evenings of ``nights`` (and the next mornings' re-scores) computed ahead on ``workers``
    forked processes; ``evening(name, night)`` / ``scores(plan_id, day)`` wait for them in order.

    Requires: ``configs`` the accounts that scan (account -> config), ``last_day`` the backtest's
    last session (no re-score after it).  A context manager: leaving it stops the workers.
    """

    def __init__(self, batch: BatchNights, configs: Mapping[str, Config], nights: list[dt.date],
                 last_day: dt.date, workers: int):
        # The first evening here, before the fork: every worker inherits what it loaded and cached once
        # (the earnings file, the index bars, the calendar's lookups, the first chunk's scans).
        for cfg in configs.values():
            try:
                batch.evening(cfg, nights[0])
            except PrepError:
                pass  # the worker meets it again, and it is raised in its turn
        self._chunk_of = {night: i // CHUNK for i, night in enumerate(nights)}
        self._chunks = [nights[i:i + CHUNK] for i in range(0, len(nights), CHUNK)]
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("fork"),
            initializer=_init, initargs=(batch, dict(configs), last_day))
        self._futures = [self._pool.submit(_chunk, chunk) for chunk in self._chunks]
        self._plans: dict[tuple[str, dt.date], Outcome] = {}
        self._scores: dict[tuple[str, dt.date], Outcome] = {}
        self._taken: set[int] = set()

    def __enter__(self) -> "EveningWorkers":
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def evening(self, name: str, night: dt.date) -> EveningPlan:
        """The evening plan of account ``name`` on ``night``.  Raises what computing it raised."""
        return self._outcome(self._plans, (name, night), night)

    def scores(self, plan_id: str, day: dt.date, night: dt.date) -> MorningScores:
        """The re-score of plan ``plan_id`` (made on ``night``) at ``day``'s open.  Raises what computing it raised."""
        return self._outcome(self._scores, (plan_id, day), night)

    def _outcome(self, store: dict, key: tuple, night: dt.date) -> Any:
        self._take(self._chunk_of[night])
        value = store[key]
        if isinstance(value, PrepError):
            raise value
        return value

    def _take(self, index: int) -> None:
        """Wait (at most ``CHUNK_SECONDS``) for chunk ``index`` and keep its outcomes.

        Raises:
            RunFailure: the worker died, or overran the deadline.
        """
        if index in self._taken:
            return
        nights = self._chunks[index]
        try:
            results = self._futures[index].result(timeout=CHUNK_SECONDS)
        except concurrent.futures.TimeoutError:
            raise RunFailure(f"the evenings of {nights[0]} to {nights[-1]} took more than {CHUNK_SECONDS:g} s "
                             "on a worker process; the backtest stopped (run it with --workers 0 to compute "
                             "them in this process).") from None
        except concurrent.futures.process.BrokenProcessPool as exc:
            raise RunFailure(f"the worker process computing the evenings of {nights[0]} to {nights[-1]} was lost "
                             f"({exc}); the backtest stopped.") from None
        for night, plans, scores in results:
            self._plans.update({(name, night): plan for name, plan in plans.items()})
            self._scores.update(scores)
        self._taken.add(index)
