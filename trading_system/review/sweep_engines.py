"""Where a sweep's trials run: a local process pool (the default) or a Dask distributed cluster.

Both engines call the same trial function, ``run_trial(spec, source)``: one ``run_backtest`` in a
scratch folder of its own (removed after), on the bars ``source`` already in the worker's memory,
returning the trial's record, one line of ``trials.jsonl`` (``record_ok`` / ``record_failed``: a trial
that raises is a failed record, never an exception).  What differs is only how the bars reach a worker, once:

- ``LocalPool``: ``ProcessPoolExecutor`` whose initializer hands each worker process the bars (with
  the ``fork`` start method, as on Linux, the parent's copy is inherited and never pickled);
- ``DaskCluster``: ``Client(address, timeout=...)``, the bars sent to every worker with
  ``client.scatter(source, broadcast=True)`` and every trial given that one future, so they travel
  once per worker, not once per trial.

An engine is a context manager; ``submit(specs)`` starts every trial and yields each record as its
trial finishes (the caller appends it to ``trials.jsonl`` at once).  Leaving the ``with`` block
early (Ctrl-C, an error) cancels the trials not yet started.

One backtest at a time per process: ``CachedSource`` keeps caches between reads, so trials on
one worker process take turns on it (a Dask worker started with ``--nthreads 4`` still runs one
trial at a time; start workers with ``--nthreads 1`` and as many processes as cores).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import socket
import tempfile
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Iterator

from trading_system.errors import BadInputError, PrepError, RunFailure
from trading_system.marketdata.cached import CachedSource
from trading_system.review.backtest import fast_tmp, run_backtest
from trading_system.review.backtest_result import BUY_HOLD, SYSTEM, BacktestResult
from trading_system.review.forked import exit_with_parent
from trading_system.review.sweep import TrialSpec

log = logging.getLogger(__name__)

#: Seconds to reach the scheduler before ``--scheduler`` is called unreachable.
CONNECT_SECONDS = 10.0
#: Seconds to wait for the scheduler's first worker before the sweep is refused.
FIRST_WORKER_SECONDS = 30.0
#: Seconds without a single worker, trials still pending, before the sweep stops (done trials are kept).
NO_WORKER_SECONDS = 120.0
#: How often the Dask engine checks that it still has workers while it waits for trials.
POLL_SECONDS = 5.0

_SOURCE_LOCK = threading.Lock()          # one backtest at a time on a process's bars
_WORKER_SOURCE: CachedSource | None = None


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# ---------------------------------------------------------------------------------------- the records


def record_ok(spec: TrialSpec, result: BacktestResult, seconds: float, worker: str) -> dict:
    """A finished trial's line: its settings, the backtest's figures, the system's and BUY_HOLD's curves."""
    eq, gross, accounts = result.equity, result.gross, (SYSTEM, BUY_HOLD)
    return {"key": spec.key, "status": "ok", "settings": spec.settings, "start": str(spec.start), "end": str(spec.end),
            "risk_free_rate": spec.cfg.scoring.risk_free_rate,
            "figures": {name: result.figures[name] for name in accounts},
            "selections": {str(k): v for k, v in result.selections(SYSTEM).items()},
            "equity": {"session": [str(d) for d in eq.index], **{a: [float(v) for v in eq[a]] for a in accounts}},
            # the costs paid to date, session by session (dollars): the costs of any span of the curve
            "costs_paid": None if gross is None else {a: [float(v) for v in gross[a] - eq[a]] for a in accounts},
            "seconds": round(seconds, 3), "worker": worker, "error": None}


def record_failed(spec: TrialSpec, exc: BaseException, seconds: float, worker: str) -> dict:
    """A trial that raised: its settings and the error (class and message), to be tried again next run."""
    return {"key": spec.key, "status": "failed", "settings": spec.settings, "start": str(spec.start),
            "end": str(spec.end), "error": f"{exc.__class__.__name__}: {exc}",
            "exit_code": exc.exit_code if isinstance(exc, PrepError) else 1, "seconds": round(seconds, 3),
            "worker": worker}


# ---------------------------------------------------------------------------------------- the trial


def run_trial(spec: TrialSpec, source: CachedSource) -> dict:
    """One trial: ``run_backtest`` of ``spec`` over ``source`` in a scratch folder of its own -> its record.

    Requires: ``source`` holds the bars from the scan before ``spec.start`` to ``spec.end``.
    Sets: nothing outside the scratch folder, which is removed.  Never raises for a failed backtest:
    the error is the record's (``status: failed``).
    """
    with _SOURCE_LOCK:
        t0 = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory(prefix=f"prep-trial-{spec.key}-", dir=fast_tmp()) as tmp:
                result = run_backtest(cfg=spec.cfg, start=spec.start, end=spec.end, source=source,
                                      workdir=Path(tmp))
        except Exception as exc:  # a trial that raises is recorded, and the sweep goes on
            log.warning("sweep trial %s %s failed: %s", spec.key, spec.settings, exc, exc_info=True)
            return record_failed(spec, exc, time.perf_counter() - t0, _worker_name())
        return record_ok(spec, result, time.perf_counter() - t0, _worker_name())


def _lost(spec: TrialSpec, why: str) -> dict:
    """The record of a trial whose worker was lost (killed, out of memory) or that was cancelled."""
    return record_failed(spec, RunFailure(why), 0.0, "-")


# ---------------------------------------------------------------------------------------- local


def _init_worker(source: CachedSource) -> None:
    """A pool worker starts: keep the bars, and leave when the sweep's process dies (a ``kill -9`` of it
    would otherwise leave the worker waiting for work forever: it holds its own end of the queue)."""
    global _WORKER_SOURCE
    _WORKER_SOURCE = source
    threading.Thread(target=exit_with_parent, name="exit-with-parent", daemon=True).start()


def _pool_trial(spec: TrialSpec) -> dict:
    if _WORKER_SOURCE is None:
        raise RunFailure("the worker process has no bars (its initializer did not run)")
    return run_trial(spec, _WORKER_SOURCE)


class LocalPool:
    """``jobs`` worker processes on this machine, each handed the bars once by the pool's initializer."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.description = f"local process pool, {jobs} job{'s' if jobs != 1 else ''}"
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "LocalPool":
        return self

    def submit(self, specs: list[TrialSpec], source: CachedSource) -> Iterator[dict]:
        """Start every trial (the worker processes start now, before any other thread of the caller's),
        then yield each record as its trial finishes."""
        if not specs:
            return iter(())
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        self._pool = ProcessPoolExecutor(max_workers=min(self.jobs, len(specs)),
                                         mp_context=multiprocessing.get_context(method),
                                         initializer=_init_worker, initargs=(source,))
        futures = {self._pool.submit(_pool_trial, spec): spec for spec in specs}
        return (_outcome(f, futures[f]) for f in as_completed(futures))

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=kind is None, cancel_futures=True)
            self._pool = None


def _outcome(future: Future, spec: TrialSpec) -> dict:
    if future.cancelled():
        return _lost(spec, "cancelled")
    exc = future.exception()
    if exc is not None:  # the worker process died (BrokenProcessPool), not the backtest
        return _lost(spec, f"the worker running it was lost ({exc.__class__.__name__}: {exc})")
    return future.result()


# ---------------------------------------------------------------------------------------- Dask


def scheduler_address(address: str) -> str:
    """``tcp://HOST:PORT`` (``HOST:PORT`` gets ``tcp://``); ``tls://`` is kept.

    Raises:
        BadInputError: another scheme, no host, or no port in 1..65535.
    """
    full = address if "://" in address else f"tcp://{address}"
    parts = urllib.parse.urlsplit(full)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or port is None or not 0 < port < 65536:
        raise BadInputError(f"--scheduler {address} is not a Dask scheduler address; "
                            "write it as tcp://HOST:8786 (what 'dask scheduler' prints).")
    return full


class DaskCluster:
    """The Dask distributed cluster at ``address``: connected, and checked to have a worker, on entry."""

    def __init__(self, address: str, connect_seconds: float | None = None, first_worker_seconds: float | None = None):
        self.address = scheduler_address(address)
        self.connect_seconds = connect_seconds or CONNECT_SECONDS
        self.first_worker_seconds = first_worker_seconds or FIRST_WORKER_SECONDS
        self.description = f"Dask cluster at {self.address}"
        self.client: Any = None
        self._futures: list = []

    def __enter__(self) -> "DaskCluster":
        """Connect and wait for a worker.

        Raises:
            BadInputError: dask.distributed is not installed.
            RunFailure: the scheduler cannot be reached, or has no worker within ``first_worker_seconds``.
        """
        try:
            from distributed import Client
        except ImportError:
            raise BadInputError("--scheduler needs dask.distributed, which is not installed; "
                                "pip install 'prep[distributed]' (or drop --scheduler).") from None
        try:
            self.client = Client(self.address, timeout=self.connect_seconds, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise RunFailure(f"the Dask scheduler at {self.address} cannot be reached ({exc}); start it with "
                             "'dask scheduler' on that host, or drop --scheduler to run on this machine.") from None
        try:
            self.client.wait_for_workers(1, timeout=self.first_worker_seconds)
        except TimeoutError:
            self.client.close()
            wait = f"{self.first_worker_seconds:.0f} s"
            raise RunFailure(f"the Dask scheduler at {self.address} has no worker after {wait}; "
                             f"start one with 'dask worker {self.address}'.") from None
        self.description = f"Dask cluster at {self.address} ({len(self.client.nthreads())} workers)"
        return self

    def submit(self, specs: list[TrialSpec], source: CachedSource) -> Iterator[dict]:
        """Send the bars to every worker once, start every trial on that one copy, yield each record."""
        if not specs:
            return iter(())
        # broadcast: a copy on every worker now, so no trial waits for one (the Active Memory Manager
        # may later drop the copy of a worker left with nothing to run; a worker that then needs it
        # again gets it from a peer, still not from here).
        bars = self.client.scatter(source, broadcast=True, hash=False)
        run = uuid.uuid4().hex[:8]
        futures = {self.client.submit(run_trial, spec, bars, key=f"prep-trial-{spec.key}-{run}", pure=False): spec
                   for spec in specs}
        self._futures = [bars, *futures]
        return self._collect(futures)

    def _collect(self, futures: dict) -> Iterator[dict]:
        from distributed import wait

        pending, alone_since = set(futures), None
        while pending:
            try:
                with self.client.as_current():   # wait() asks for "the" client: this one, not a global default
                    done, pending = wait(list(pending), timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
            except TimeoutError:  # nothing finished in POLL_SECONDS: is anyone still working?
                alone_since = self._check_workers(alone_since, len(pending))
                continue
            alone_since = None
            for fut in done:
                yield _dask_outcome(fut, futures[fut])

    def _check_workers(self, alone_since: float | None, left: int) -> float | None:
        """The instant the cluster was first seen without a worker (None while it has some).

        Raises:
            RunFailure: the scheduler is gone, or there has been no worker for ``NO_WORKER_SECONDS``.
        """
        try:
            workers = len(self.client.nthreads())
        except Exception as exc:  # the scheduler itself went away
            raise RunFailure(f"lost the Dask scheduler at {self.address} ({exc.__class__.__name__}) with {left} "
                             "trials left; the finished ones are saved: run the sweep again to resume.") from None
        if workers:
            return None
        now = time.monotonic()
        if alone_since is not None and now - alone_since > NO_WORKER_SECONDS:
            raise RunFailure(f"the Dask cluster at {self.address} has had no worker for {NO_WORKER_SECONDS:.0f} s "
                             f"with {left} trials left; the finished ones are saved: start workers and run the "
                             "sweep again to resume.")
        return alone_since if alone_since is not None else now

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if self.client is None:
            return
        try:
            if self._futures:
                self.client.cancel(self._futures)
        finally:
            self.client.close()
            self.client = None


def _dask_outcome(future: Any, spec: TrialSpec) -> dict:
    if future.status == "finished":
        return future.result()
    if future.status == "cancelled":
        return _lost(spec, "cancelled")
    exc = future.exception()  # the task never returned: its worker died (KilledWorker) or the result was lost
    return _lost(spec, f"the worker running it was lost ({exc.__class__.__name__}: {exc})")
