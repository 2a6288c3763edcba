"""A fork server for `prep` subprocesses: real, separate processes without paying the imports each time.

Most of a short `prep execute` subprocess's CPU is importing pandas, pyarrow, exchange_calendars,
pydantic and alpaca-py and building the XNYS calendar: ~1.6 CPU-s from a fresh interpreter, ~0.1-0.4
forked from this server.  The crash test alone starts 27 of them.  This module, run as a script,
imports those third-party libraries once, has ``exchange_calendars`` build the XNYS calendar with the
arguments ``trading_system.sessions.calendar`` passes (that library's own cache then hands the child
the same sessions it would compute; other arguments are computed afresh), imports the project's
modules a run needs (``PROJECT``: ~0.08 CPU-s a child; never the entry point, which each child runs
as ``__main__``), and then forks one child per request.  The server itself never runs a command, so
what a child inherits is import-time state only (no module reads the environment or the clock at
import): no state of an earlier run can leak into the next.
Each child is an ordinary process of its own: its own pid, address space, file descriptors and
locks; ``os._exit`` and ``SIGKILL`` end it as they end any process (no cleanup code runs).  The
child takes the request's argv, working folder and whole environment, reads /dev/null, writes its
stdout and stderr to files, and runs its entry point as ``__main__`` exactly as ``python -m
trading_system.cli ...`` or ``python script.py ...`` would (``runpy``), then exits with its code
(a SystemExit code, 1 and a traceback on an uncaught exception, -N when killed by signal N).
The request's PYTHONPATH is put on ``sys.path`` after the entry point's folder, as an interpreter's
start-up puts it (a user's scanner module is found the same way); the third-party modules above were
imported from the server's path.  The other things only an interpreter's start-up reads (PYTHON*
flags) come from the server's own environment, not the request's: tests about those, or about the
interpreter's exit, start a fresh one.

    with ForkServer() as fs:
        r = fs.run(["-m", "trading_system.cli", "--config", cfg, "execute"], cwd=ws, env=env)
        r.returncode, r.stdout, r.stderr           # as subprocess.run(..., capture_output=True, text=True)
        p = fs.start([script, "3", "--config", cfg, "execute"], cwd=ws, env=env)
        p.pid, p.poll(), p.wait(timeout), p.communicate(timeout)   # as subprocess.Popen

Protocol (JSON lines on the server's stdin/stdout): request ``{"id", "argv", "cwd", "env", "out",
"err"}`` -> ``{"id", "pid"}`` once forked; ``{"pid", "code", "cpu"}`` when that child has ended.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

#: Third-party modules a `prep` run imports; the server imports them once, before any fork.
PRELOAD = ("numpy", "pandas", "pyarrow", "pyarrow.parquet", "pyarrow.compute", "exchange_calendars", "pydantic",
           "yaml", "click", "rich.console", "rich.table", "rich.text", "requests", "urllib3", "tenacity",
           "filelock", "alpaca.trading.client", "alpaca.trading.requests", "alpaca.common.exceptions",
           "alpaca.data.historical")
#: The project's modules a run imports, imported after those.  Not ``trading_system.cli`` nor ``cli_run``
#: (which imports it): the entry point is run as ``__main__`` and must not be in ``sys.modules`` before
#: (``runpy`` warns, as an interpreter would never have it there).
PROJECT = ("trading_system.config", "trading_system.runtime", "trading_system.prepare.run",
           "trading_system.validate.run", "trading_system.execute.run", "trading_system.present.render",
           "trading_system.broker.alpaca", "trading_system.broker.simulated", "trading_system.marketdata.sample",
           "trading_system.marketdata.polygon_source", "trading_system.doctor")


# ------------------------------------------------------------------------------------------- the server


def _child(req: dict, ctl: tuple[int, int]) -> None:
    """In the forked child: become the requested run, then leave with its exit code (never return)."""
    code = 1
    try:
        for fd in ctl:
            os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        out = os.open(req["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(req["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        for fd, target in ((devnull, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        import time
        time.tzset()
        code = _run_main(req["argv"])
    except BaseException:  # noqa: B036 (the child must never return into the server's loop)
        import traceback
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: S110
                pass
        os._exit(code)


def _python_path(env: dict[str, str]) -> list[str]:
    """The folders PYTHONPATH in ``env`` puts on ``sys.path`` (absolute, as ``site`` makes them)."""
    return [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]


#: The server's own PYTHONPATH folders (on its sys.path after its script's folder); a child swaps in its own.
_SERVER_PATH = _python_path(dict(os.environ))


def _run_main(argv: list[str]) -> int:
    """Run ``argv`` (``-m module args...`` or ``script args...``) as __main__; its exit code."""
    import atexit
    import runpy
    import traceback

    code = 0
    rest = [p for p in sys.path[1:] if p not in _SERVER_PATH]
    try:
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            sys.path[:] = [os.getcwd(), *_python_path(dict(os.environ)), *rest]  # as `python -m` puts it
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(argv)
            sys.path[:] = [str(Path(argv[0]).resolve().parent), *_python_path(dict(os.environ)), *rest]
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: B036 (what the interpreter does with an uncaught exception)
        traceback.print_exc()
        code = 1
    # What the interpreter does at a normal exit: wait for non-daemon threads, then the atexit callbacks
    # (logging.shutdown...).
    threading._shutdown()
    atexit._run_exitfuncs()
    return code


def _prebuild_calendar() -> None:
    """exchange_calendars' XNYS, built as ``trading_system.sessions.calendar`` asks for it."""
    import warnings

    import exchange_calendars as xcals
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        end = pd.Timestamp.today().normalize() + pd.Timedelta(days=730)
        xcals.get_calendar("XNYS", start="1999-01-04", end=end)


def _preload() -> None:
    """The third-party modules (those installed), the XNYS calendar, then the project's modules."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    _prebuild_calendar()
    for name in PROJECT:
        importlib.import_module(name)


def serve() -> None:
    """The server's loop: fork a child per request, report each child's end; stop at EOF."""
    import select

    _preload()
    ctl_in, ctl_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    os.write(ctl_out, b'{"ready": true}\n')
    children: set[int] = set()
    buf, eof = b"", False
    while not eof or children:
        if not eof:
            ready, _, _ = select.select([ctl_in], [], [], 0.01)
            if ready:
                chunk = os.read(ctl_in, 1 << 16)
                eof = not chunk
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    req = json.loads(line)
                    pid = os.fork()
                    if pid == 0:
                        _child(req, (ctl_in, ctl_out))
                    children.add(pid)
                    os.write(ctl_out, json.dumps({"id": req["id"], "pid": pid}).encode() + b"\n")
        else:
            select.select([], [], [], 0.01)
        while children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            try:
                os.write(ctl_out, json.dumps({"pid": pid, "code": code,
                                              "cpu": usage.ru_utime + usage.ru_stime}).encode() + b"\n")
            except BrokenPipeError:
                pass


# ------------------------------------------------------------------------------------------- the client


class Forked:
    """A child of the fork server, used like ``subprocess.Popen`` (text output, read when it has ended)."""

    def __init__(self, server: ForkServer, pid: int, out: Path, err: Path):
        self.server, self.pid, self._out, self._err = server, pid, out, err
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.server._codes.get(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        with self.server._cond:
            if not self.server._cond.wait_for(lambda: self.pid in self.server._codes or self.server._dead,
                                              timeout):
                raise subprocess.TimeoutExpired(f"forked prep {self.pid}", timeout)
        if self.pid not in self.server._codes:
            raise RuntimeError("the prep fork server ended before its child")
        return self.poll()

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return self._out.read_text(), self._err.read_text()

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass


class ForkServer:
    """Starts the server (``python prep_forkserver.py``) and forks `prep` runs from it; thread-safe."""

    def __init__(self):
        self._dir = Path(tempfile.mkdtemp(prefix="prep-forks-"))
        self._proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if json.loads(self._proc.stdout.readline() or b"{}").get("ready") is not True:
            raise RuntimeError("the prep fork server did not start")
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._pids: dict[int, int] = {}
        self._codes: dict[int, int] = {}
        self.cpu: dict[int, float] = {}   # CPU seconds of each ended child (user + system)
        self._dead = False
        self._next = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._proc.stdin.close()
        self._proc.wait(timeout=120)
        self._reader.join(timeout=10)
        shutil.rmtree(self._dir, ignore_errors=True)

    def _read(self) -> None:
        for line in self._proc.stdout:
            msg = json.loads(line)
            with self._cond:
                if "id" in msg:
                    self._pids[msg["id"]] = msg["pid"]
                else:
                    self._codes[msg["pid"]] = msg["code"]
                    self.cpu[msg["pid"]] = msg["cpu"]
                self._cond.notify_all()
        with self._cond:
            self._dead = True
            self._cond.notify_all()

    def start(self, argv: list[str], cwd: Path | str, env: dict[str, str]) -> Forked:
        """Fork a run of ``argv`` (``["-m", module, ...]`` or ``[script, ...]``) in ``cwd`` with exactly ``env``."""
        with self._lock:
            self._next += 1
            n = self._next
            out, err = self._dir / f"{n}.out", self._dir / f"{n}.err"
            req = {"id": n, "argv": [str(a) for a in argv], "cwd": str(cwd), "env": dict(env), "out": str(out),
                   "err": str(err)}
            self._proc.stdin.write(json.dumps(req).encode() + b"\n")
            self._proc.stdin.flush()
        with self._cond:
            if not self._cond.wait_for(lambda: n in self._pids or self._dead, 60):
                raise RuntimeError("the prep fork server did not fork")
            if n not in self._pids:
                raise RuntimeError("the prep fork server has ended")
            return Forked(self, self._pids[n], out, err)

    def run(self, argv: list[str], cwd: Path | str, env: dict[str, str],
            timeout: float | None = 120) -> subprocess.CompletedProcess:
        """``start`` and wait: a CompletedProcess (returncode, stdout, stderr as text)."""
        p = self.start(argv, cwd, env)
        try:
            out, err = p.communicate(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            raise
        return subprocess.CompletedProcess(argv, p.returncode, out, err)


if __name__ == "__main__":
    serve()
