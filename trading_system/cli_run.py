"""How one ``prep`` command runs (DESIGN §1): load the config and the clock, set up the log, call
the command's work, map its errors to exit codes with one sentence each, and send the alerts it owes.

``cli`` parses the command line and hands each command's work to :func:`run`.
Exit codes: 0 done or nothing to do; 1 a failure at run time; 2 bad input.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from rich.console import Console

from trading_system.errors import NothingToDo, PrepError

log = logging.getLogger("prep")


class State:
    """What every command of one invocation shares: the global options, the console, the work's result."""

    def __init__(self, config: str, as_of: str | None, verbose: bool):
        self.config_path, self.as_of, self.verbose = Path(config), as_of, verbose
        self.result = None  # what the command's work produced (a pipeline result), for its alerts
        self.console = Console(highlight=False, soft_wrap=False)
        if not self.console.is_terminal:  # cron, pipes and logs get full-width tables
            self.console = Console(highlight=False, soft_wrap=False, width=120)


def run(state: State, command: str, work) -> None:
    """Load config and clock, run ``work(cfg, clock)``; one sentence per expected error.

    Logging is set up before anything can fail (with no file yet), so even a crash while loading
    the config never lets ``logging``'s last-resort handler print a traceback on the terminal.
    The alerts (``notify``) go out once the work is done or has failed, before the exit.
    """
    from trading_system.config import load_config
    from trading_system.runtime import setup_logging
    from trading_system.sessions import Clock

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    cfg = None
    try:
        setup_logging(None, state.verbose)
        cfg = load_config(state.config_path)
        setup_logging(cfg, state.verbose)
        _clean_orphans(cfg)
        clock = Clock.from_env(state.as_of)
        log.info("prep %s started (as-of %s)", command, clock.now().isoformat() if clock.frozen else "wall clock")
        work(cfg, clock)
        log.info("prep %s done", command)
    except NothingToDo as done:
        log.info("prep %s: %s", command, done)
        state.console.print(str(done))
        _alert(state, cfg, command)
        sys.exit(0)
    except PrepError as exc:
        log.error("prep %s failed: %s", command, exc, exc_info=True)
        sentence = f"prep {command}: {exc}"
        err.print(sentence, markup=False)
        _alert(state, cfg, command, sentence, exc.exit_code)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print(f"prep {command}: interrupted", markup=False)
        sys.exit(130)
    except Exception as exc:  # a bug: keep the traceback in the log, one line on screen
        log.exception("prep %s crashed", command)
        sentence = f"prep {command}: unexpected error ({exc.__class__.__name__}: {exc}); {_details(cfg)}."
        err.print(sentence, markup=False)
        _alert(state, cfg, command, sentence, 1)
        sys.exit(1)
    _alert(state, cfg, command)


def _alert(state: State, cfg, command: str, sentence: str | None = None, exit_code: int = 0) -> None:
    """Send the alerts a finished command owes (``notify.events``), once its work is done.

    ``sentence``: the one line printed for a failure.  Nothing at all (apprise is not even
    imported) when ``notify.urls`` is empty or the config did not load; ``prep notify`` sends
    none of its own (it prints what failed).  Bounded by ``notify.timeout_seconds``; never fails the run.
    """
    if cfg is None or not cfg.notify.urls or command == "notify":
        return
    try:
        from trading_system.present import notify as alerts

        kill = cfg.path(cfg.paths.kill_switch) if command == "execute" else None
        alerts.send(cfg.notify, alerts.alerts_for(command, state.result, sentence, exit_code,
                                                  kill if kill is not None and kill.exists() else None,
                                                  cfg.notify.events))
    except Exception as exc:  # noqa: BLE001 (an alert never fails a run)
        log.warning("alerts of prep %s not sent: %s", command, exc.__class__.__name__, exc_info=True)


def _details(cfg) -> str:
    """Where the traceback of a crash went: the log file, or (no config, so no log yet) ``-v``."""
    from trading_system.runtime import LOG_FILE

    if cfg is None:
        return "run again with -v for the details"
    return f"details in {cfg.path(cfg.paths.log_dir) / LOG_FILE}"


def _clean_orphans(cfg) -> None:
    """Remove the temp files killed runs left in the state folders; log how many.

    The plan's folder (not below it: it may be the user's home), ``paths.archive_dir``, the
    ``reports/`` folder, and ``paths.data_dir`` with everything below it (stores, orders,
    universes).  Logs are appended, never written atomically, so ``paths.log_dir`` has none.
    Never fails the run: a folder that cannot be listed is logged and skipped.
    """
    from trading_system.state.atomic import clean_orphans

    folders = [(cfg.path(cfg.paths.plan).parent, False), (cfg.path(cfg.paths.archive_dir), False),
               (cfg.root / "reports", False), (cfg.path(cfg.paths.data_dir), True)]
    removed = 0
    for folder, recursive in folders:
        try:
            removed += clean_orphans(folder, recursive=recursive)
        except OSError as exc:
            log.warning("could not look for orphaned temp files in %s: %s", folder, exc)
    if removed:
        log.info("removed %d orphaned temp file(s) left by killed runs", removed)
