"""Run the configured scanners of a phase on one night (DESIGN §10).

Each scanner runs in a forked child process under its ``timeout_seconds``: a scanner that hangs
(even in C code) or crashes the interpreter is killed or noticed, and cannot touch the run's own
state.  An exception, a timeout or a crash is logged and the scanner is tried once more; a run
whose two attempts failed, or whose module would not load, counts as a failed run.  After
``record.DISABLE_AFTER`` failed runs in a row the scanner is disabled until ``prep scanners
--enable NAME``.  A scanner never fails the nightly run: every problem is one line in
``ScanOutcome.lines`` (printed by the caller) and in the log.

``max_symbols`` keeps a scanner's first finds by its own ranking, with a line saying so.

Choice: the fork costs a few milliseconds a scanner; ``isolate=False`` runs in-process (no
timeout can be enforced there) for callers that run a scanner hundreds of times and whose
user is watching (``prep scan-backtest``).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
from typing import Any

from trading_system.errors import DataError
from trading_system.prepare.scanners import record
from trading_system.prepare.scanners.base import ScanContext, ScanResult
from trading_system.prepare.scanners.loader import Bound, ScannerLoadError, bind
from trading_system.prepare.scanners.settings import ScannerEntry

log = logging.getLogger(__name__)

#: Attempts per run: the first and one retry.
ATTEMPTS = 2


@dataclasses.dataclass
class ScannerRun:
    """One scanner on one night: what it found (after the cap) and how the run went."""

    name: str
    phase: str
    action: str
    symbols: list[str]
    metadata: dict[str, dict[str, Any]]
    execution_time_ms: float
    attempts: int
    skipped: bool = False
    error: str | None = None
    disabled: bool = False
    capped_from: int | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def summary(self) -> dict[str, Any]:
        """The run for the plan and the stats: no per-symbol metadata."""
        return {"name": self.name, "phase": self.phase, "action": self.action, "found": len(self.symbols),
                "symbols": self.symbols, "execution_time_ms": self.execution_time_ms, "attempts": self.attempts,
                "skipped": self.skipped, "error": self.error, "disabled": self.disabled,
                "capped_from": self.capped_from}


@dataclasses.dataclass
class ScanOutcome:
    """Every scanner run of one phase on one night, and the lines to print."""

    runs: list[ScannerRun]
    lines: list[str]

    def found_by(self, actions: tuple[str, ...] = ("add", "veto", "report")) -> dict[str, list[str]]:
        """symbol -> the names of the scanners (with one of ``actions``) that found it, symbols sorted."""
        out: dict[str, list[str]] = {}
        for run in self.runs:
            if run.action in actions:
                for s in run.symbols:
                    out.setdefault(s, []).append(run.name)
        return dict(sorted(out.items()))

    def reasons(self, action: str) -> dict[str, str]:
        """symbol -> why the scanners with ``action`` found it (their names and figures), for a veto."""
        out: dict[str, list[str]] = {}
        for run in self.runs:
            if run.action == action:
                for s in run.symbols:
                    meta = run.metadata.get(s, {})
                    why = meta.get("reason") or ", ".join(f"{k} {_fmt(v)}" for k, v in meta.items())
                    out.setdefault(s, []).append(f"{run.name}" + (f" ({why})" if why else ""))
        return {s: "; ".join(v) for s, v in out.items()}


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def run_scanners(entries: list[ScannerEntry], ctx: ScanContext, state_dir=None, isolate: bool = True
                 ) -> ScanOutcome:
    """Run the enabled ``entries`` whose phase is ``ctx.phase`` (all of them for ``backtest``).

    ``state_dir``: the ``data/scanners`` folder; None writes nothing (a dry run, ``prep scan``, a
    backtest) and ignores the disabled flags.  Never raises for a scanner's failure; an unreadable
    ``state.json`` is one line, and the run then writes no state over it.
    """
    wanted = [e for e in entries if e.enabled and (ctx.phase == "backtest" or e.phase == ctx.phase)]
    runs, lines = [], []
    state: dict[str, dict[str, Any]] = {}
    if state_dir is not None and wanted:
        try:
            state = record.read_state(state_dir)
        except DataError as exc:  # the scanners still run; nothing is written over the unreadable file
            lines.append(f"{exc} This run records no scanner state or stats.")
            state_dir = None
    if wanted:
        ctx.panel  # noqa: B018 (built once here, before the forks, so every child inherits it)
    for entry in wanted:
        if state.get(entry.name, {}).get("disabled"):
            lines.append(f"scanner {entry.name} is disabled after {record.DISABLE_AFTER} failed runs in a row "
                         f"(last: {state[entry.name].get('last_error')}); 'prep scanners --enable {entry.name}' "
                         "turns it back on")
            runs.append(ScannerRun(entry.name, entry.phase, entry.what, [], {}, 0.0, 0, disabled=True))
            continue
        run, notes = run_entry(entry, entries, ctx, isolate)
        runs.append(run)
        lines.extend(notes)
    for line in lines:
        log.warning("scanners: %s", line)
    if state_dir is not None and runs:
        when = ctx.now.isoformat()
        live = [r for r in runs if not r.disabled]
        new_state = record.update_state(state_dir, [{"name": r.name, "failed": r.failed, "error": r.error}
                                                    for r in live], when)
        for r in live:
            if r.failed and new_state[r.name].get("disabled"):
                lines.append(f"scanner {r.name} failed {record.DISABLE_AFTER} runs in a row and is now disabled; "
                             f"'prep scanners --enable {r.name}' turns it back on")
        record.append_stats(state_dir, [{"time": when, "session": str(ctx.session), **r.summary()} for r in live])
    return ScanOutcome(runs=runs, lines=lines)


def run_entry(entry: ScannerEntry, entries: list[ScannerEntry], ctx: ScanContext, isolate: bool = True
              ) -> tuple[ScannerRun, list[str]]:
    """One scanner on one night: load, up to ``ATTEMPTS`` attempts, the ``max_symbols`` cap.

    Returns the run and the lines to print (its problems). Never raises for the scanner's failure.
    """
    try:
        bound = bind(entry, entries)
    except ScannerLoadError as exc:
        return ScannerRun(entry.name, entry.phase, entry.what, [], {}, 0.0, 0, error=str(exc)), [str(exc)]
    notes: list[str] = []
    error = None
    for attempt in range(1, ATTEMPTS + 1):
        result, attempt_notes, error = (_forked if isolate else _in_process)(bound, ctx, entry.timeout_seconds)
        if error is None:
            notes.extend(attempt_notes)
            break
        notes.append(f"scanner {entry.name} failed (attempt {attempt} of {ATTEMPTS}): {error}")
    else:
        return ScannerRun(entry.name, entry.phase, entry.what, [], {}, 0.0, ATTEMPTS, error=error), notes
    assert result is not None
    symbols, capped = result.symbols, None
    if len(symbols) > entry.max_symbols:
        capped = len(symbols)
        notes.append(f"scanner {entry.name} found {capped} symbols; kept its top {entry.max_symbols} (max_symbols)")
        symbols = symbols[: entry.max_symbols]
    return ScannerRun(entry.name, entry.phase, entry.what, symbols, {s: result.metadata[s] for s in symbols},
                      result.execution_time_ms, attempt, skipped=result.skipped, capped_from=capped), notes


def _in_process(bound: Bound, ctx: ScanContext, timeout: float
                ) -> tuple[ScanResult | None, list[str], str | None]:
    """(result, notes, None) or (None, [], error sentence); no timeout is enforced."""
    try:
        result, notes = bound.run(ctx)
        return result, notes, None
    except Exception as exc:  # noqa: BLE001 (a scanner's failure is recorded, never raised)
        log.warning("scanner %s raised", bound.name, exc_info=True)
        return None, [], f"{exc.__class__.__name__}: {exc}"


def _child(bound: Bound, ctx: ScanContext, conn) -> None:
    """In the forked child: run, send ``("ok", result, notes)`` or ``("error", sentence)``."""
    try:
        result, notes = bound.run(ctx)
        conn.send(("ok", result, notes))
    except BaseException as exc:  # noqa: BLE001 (everything goes back to the parent as one sentence)
        try:
            conn.send(("error", f"{exc.__class__.__name__}: {exc}"))
        except Exception:  # noqa: BLE001 (an unpicklable answer: the parent sees the exit)
            pass
    finally:
        conn.close()


def _forked(bound: Bound, ctx: ScanContext, timeout: float) -> tuple[ScanResult | None, list[str], str | None]:
    """Run ``bound`` in a forked child; kill it after ``timeout`` seconds. See :func:`_in_process`."""
    fork = multiprocessing.get_context("fork")
    receive, send = fork.Pipe(duplex=False)
    child = fork.Process(target=_child, args=(bound, ctx, send), daemon=True, name=f"scanner-{bound.name}")
    child.start()
    send.close()
    try:
        if not receive.poll(timeout):
            child.kill()
            return None, [], f"timed out after {timeout:g} s"
        try:
            answer = receive.recv()
        except EOFError:
            child.join(5)
            return None, [], f"its process died without an answer (exit code {child.exitcode})"
    finally:
        receive.close()
        child.join(5)
    if answer[0] == "error":
        log.warning("scanner %s raised: %s", bound.name, answer[1])
        return None, [], answer[1]
    return answer[1], answer[2], None
