"""Progress of long work (a Polygon fill, a backtest): a live bar on a terminal, plain lines elsewhere.

A ``Reporter`` follows one task at a time through ``begin(total, note)``, ``update(done, note)``
and ``end(ok)`` (or ``with reporter.task(total, note):``), and shows it in one of two ways:

- stdout is a terminal (``isatty()``, and rich finds it interactive): a rich progress bar
  (done / total, the note, elapsed, time left), removed when the task ends;
- otherwise (cron, pipes): a plain line when the task starts, one per ~10 % of the total and
  one at the end, e.g. ``polygon fill: 28/276 sessions (10 %), 28 requests, 5 s elapsed, ETA 45 s``,
  printed on stdout (cron mails it) when the task has at least ``min_total`` steps.

The same lines always go to the log (INFO), whatever the output is.  ``Reporter(echo=False)``
(``log_only``) never writes to stdout or the terminal: for callers that want silence.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Callable, Iterator, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

log = logging.getLogger(__name__)


class ProgressSink(Protocol):
    """What long work reports to: one task at a time, ``done`` counted from 0 to ``total``."""

    def begin(self, total: int, note: str = "") -> None: ...

    def update(self, done: int, note: str = "") -> None: ...

    def end(self, ok: bool = True) -> None: ...


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``: a time span for a person to read."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def is_live(console: Console) -> bool:
    """Whether ``console`` writes to a terminal a bar can redraw: a real TTY (``isatty()``), not a dumb one.

    ``FORCE_COLOR`` alone does not make a cron job's mail a terminal.
    """
    isatty = getattr(console.file, "isatty", None)
    try:
        return bool(isatty and isatty()) and console.is_interactive
    except ValueError:  # a closed stream
        return False


class Reporter:
    """Progress of one task at a time, as a rich bar on a terminal or ~10 % lines (see the module).

    ``label`` starts every line (``"polygon fill"``); ``unit`` names what is counted.
    ``console``: where the bar or the lines go (default: a console on the current ``sys.stdout``,
    made when a task begins).  ``live``: force the bar on or off (default: ``is_live``).
    ``echo``: False keeps everything in the log.  ``min_total``: shorter tasks print nothing
    (they are still logged).  ``lines``: how many progress lines a task prints (10 = one per 10 %).
    ``logger``: where the lines are logged.  ``clock``: seconds, for elapsed and ETA (tests).
    """

    def __init__(self, label: str, unit: str = "sessions", *, console: Console | None = None,
                 live: bool | None = None, echo: bool = True, min_total: int = 1, lines: int = 10,
                 logger: logging.Logger | None = None, clock: Callable[[], float] = time.monotonic):
        self.label, self.unit = label, unit
        self._console, self._live = console, live
        self.echo, self.min_total, self.lines = echo, min_total, max(1, lines)
        self.log = logger or log
        self.clock = clock
        self.total = self.done = 0
        self.note = ""
        self._t0 = 0.0
        self._shown = -1       # the last tenth (of ``lines``) reported
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._printing = False
        self._out: Console | None = None

    # ------------------------------------------------------------------ the task

    def begin(self, total: int, note: str = "") -> None:
        """A task of ``total`` steps starts (``note``: what it is, e.g. the expected duration)."""
        if self._bar is not None:  # a task left open: close it first
            self.end(ok=True)
        self.total, self.done, self.note = max(0, total), 0, ""
        self._t0, self._shown = self.clock(), 0
        console = self._out = self._console or Console(highlight=False, soft_wrap=True)
        live = self._live if self._live is not None else is_live(console)
        self._printing = self.echo and not live and self.total >= self.min_total
        self._emit(f"{self.label}: {self.total} {self.unit} to go" + (f" ({note})" if note else ""))
        if self.echo and live:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[note]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console, transient=True)
            self._task = self._bar.add_task(self.label, total=self.total or None, note="")
            self._bar.start()

    def update(self, done: int, note: str = "") -> None:
        """``done`` of the total steps are finished; ``note`` says where the task is (shown beside it)."""
        self.done, self.note = min(max(done, 0), self.total), note
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.done, note=note)
        tenth = self.done * self.lines // self.total if self.total else self.lines
        if tenth > self._shown:
            self._shown = tenth
            self._emit(self.line())

    def end(self, ok: bool = True) -> None:
        """The task is over: remove the bar; a failed task is logged where it stopped (never printed:
        the error that stopped it says the rest)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = self._task = None
        if not ok:
            self.log.info("%s (stopped)", self.line())
        elif self.total and self._shown < self.lines:  # finished short of the count (nothing left to do)
            self._shown = self.lines
            self._emit(self.line())

    @contextlib.contextmanager
    def task(self, total: int, note: str = "") -> Iterator["Reporter"]:
        """``begin`` ... ``end``, ending as failed when the block raises."""
        self.begin(total, note)
        try:
            yield self
        except BaseException:
            self.end(ok=False)
            raise
        self.end(ok=True)

    # ------------------------------------------------------------------ lines

    def eta(self) -> float | None:
        """Seconds left at the pace so far (None before the first step is done)."""
        if not self.done:
            return None
        return (self.clock() - self._t0) / self.done * (self.total - self.done)

    def line(self) -> str:
        """``label: done/total unit (pct %), note, elapsed, ETA``."""
        pct = 100 * self.done // self.total if self.total else 100
        eta = self.eta()
        tail = "done" if self.total and self.done >= self.total else (
            f"ETA {duration(eta)}" if eta is not None else "ETA unknown")
        note = f", {self.note}" if self.note else ""
        return (f"{self.label}: {self.done}/{self.total} {self.unit} ({pct} %){note}, "
                f"{duration(self.clock() - self._t0)} elapsed, {tail}")

    def _emit(self, text: str) -> None:
        self.log.info("%s", text)
        if self._printing and self._out is not None:
            self._out.print(text, markup=False, highlight=False, soft_wrap=True)


def log_only(label: str, unit: str = "sessions") -> Reporter:
    """A reporter that only logs (never prints)."""
    return Reporter(label, unit, echo=False)
