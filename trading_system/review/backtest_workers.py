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
nights.  (Known limit of CPython's pool: a worker killed in the millisecond it spends writing a chunk's
results leaves the pool reading the rest of them forever; that chunk's wait still ends at
``CHUNK_SECONDS`` with the RunFailure, but the process may then need an interrupt to exit.)
Workers leave when the backtest's process dies (``exit_with_parent``).  Without ``fork``
(not Linux) or with ``workers`` 0, the engine computes in-process.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import datetime as dt
import multiprocessing
import os
import threading

from trading_system.errors import RunFailure
from trading_system.review.backtest_batch import BatchNights, ChunkResult
from trading_system.review.forked import exit_with_parent

#: Seconds a worker may take over one chunk of nights before the backtest stops.
CHUNK_SECONDS = 900.0

_BATCH: BatchNights | None = None


def default_workers() -> int:
    """``prep backtest``'s default: the core count, at most 4 (0 on one core: the work stays here)."""
    cores = os.cpu_count() or 1
    return 0 if cores < 2 else min(cores, 4)


def can_fork() -> bool:
    """Whether worker processes can inherit the bars (the ``fork`` start method, as on Linux)."""
    return "fork" in multiprocessing.get_all_start_methods()


def _init(batch: BatchNights) -> None:
    global _BATCH
    _BATCH = batch
    threading.Thread(target=exit_with_parent, name="exit-with-parent", daemon=True).start()


def _chunk(nights: list[dt.date]) -> ChunkResult:
    """In a worker: ``BatchNights.compute`` of ``nights``."""
    if _BATCH is None:
        raise RunFailure("the evening worker has no bars (its initializer did not run)")
    return _BATCH.compute(nights)


class EveningWorkers:
    """``batch``'s chunks of nights computed ahead on ``workers`` forked processes; ``batch.fetch``
    waits for them, in order.  A context manager: leaving it stops the workers and gives ``batch``
    its own ``fetch`` back."""

    def __init__(self, batch: BatchNights, workers: int):
        # Nothing is computed here first: the first chunk's scans would keep this process busy while
        # the workers wait.  Each worker reads the earnings file and the index bars itself (~40 ms).
        self._batch, self._own = batch, batch.fetch
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("fork"), initializer=_init, initargs=(batch,))
        self._futures = [self._pool.submit(_chunk, chunk) for chunk in batch.chunks]
        batch.fetch = self._fetch

    def __enter__(self) -> "EveningWorkers":
        return self

    def __exit__(self, *exc: object) -> None:
        self._batch.fetch = self._own
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _fetch(self, index: int) -> ChunkResult:
        """Chunk ``index``'s results, waited for at most ``CHUNK_SECONDS``.

        Raises:
            RunFailure: the worker died, or overran the deadline.
        """
        nights = self._batch.chunks[index]
        try:
            return self._futures[index].result(timeout=CHUNK_SECONDS)
        except concurrent.futures.TimeoutError:
            raise RunFailure(f"the evenings of {nights[0]} to {nights[-1]} took more than {CHUNK_SECONDS:g} s "
                             "on a worker process; the backtest stopped (run it with --workers 0 to compute "
                             "them in this process).") from None
        except concurrent.futures.process.BrokenProcessPool as exc:
            raise RunFailure(f"the worker process computing the evenings of {nights[0]} to {nights[-1]} was lost "
                             f"({exc}); the backtest stopped.") from None
