"""Wiring: which data source and which broker a config asks for; the archive; logging.

The only place that picks implementations, so dry-run and offline mode live at the
boundaries (a ``DryRunBroker`` wrapper, the ``sample`` source), not in the pipeline.
"""

from __future__ import annotations

import datetime as dt
import logging
import logging.handlers
import sys
from pathlib import Path

from trading_system.broker.base import Broker
from trading_system.broker.dryrun import DryRunBroker
from trading_system.config import Config
from trading_system.errors import ConfigError
from trading_system.marketdata.base import MarketData
from trading_system.state.atomic import write_json_atomic
from trading_system.state.plan import Plan, archive_path

LOG_FILE = "pre_market_prep.log"


def make_source(cfg: Config, clock=None) -> MarketData:
    """The configured market-data source (``data.source``); ``clock`` (a ``sessions.Clock``) tells
    the polygon source what "today" is (the free plan publishes day D on D+1)."""
    if cfg.data.source == "sample":
        from trading_system.marketdata.sample import SampleSource

        return SampleSource(cfg.path(cfg.data.sample_dir))
    if cfg.data.source == "polygon":
        from trading_system.marketdata.polygon_source import PolygonSource
        from trading_system.sessions import Clock

        return PolygonSource(cfg, clock or Clock())
    raise ConfigError(f"data.source '{cfg.data.source}' is not available in this version; use 'sample'.")


def make_broker(cfg: Config, session: dt.date | None, dry_run: bool, live: bool = False) -> Broker:
    """The configured broker for ``session``, wrapped in ``DryRunBroker`` for a dry run.

    ``alpaca`` reads its keys from the environment and needs ``live`` for a live account.
    """
    if cfg.broker.kind == "simulated":
        from trading_system.broker.simulated import SimulatedBroker
        from trading_system.marketdata.store import BarStore

        if session is None:
            raise ValueError("the simulated broker trades one session: make_broker needs it")
        sim = cfg.broker.simulated
        broker: Broker = SimulatedBroker(BarStore(cfg.path(cfg.data.sample_dir)), cfg.path(sim.account_file),
                                         session, sim.starting_cash, cfg.costs.commission_per_order,
                                         cfg.costs.slippage_bps)
    elif cfg.broker.kind == "alpaca":
        import os

        from trading_system.broker.alpaca import make_alpaca_broker

        broker = make_alpaca_broker(cfg, live, os.environ)
    else:
        raise ConfigError(f"broker.kind '{cfg.broker.kind}' is not available in this version; use 'simulated'.")
    return DryRunBroker(broker) if dry_run else broker


def archive(cfg: Config, plan: Plan, status: str, when: dt.datetime, execution: dict | None) -> Path:
    """Write ``archived_trades/pending_trades_YYYYMMDD_HHMMSS.json``: plan + validation + orders.

    ``status`` is ``executed`` or ``expired``.  Nothing secret is in a plan or a report.
    """
    path = archive_path(cfg.path(cfg.paths.archive_dir), when)
    write_json_atomic(path, {"status": status, "archived_at": when.isoformat(),
                             "plan": plan.model_dump(mode="json"), "execution": execution})
    return path


class QuietFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file whose failures (disk full, file gone, folder unwritable) never reach the run.

    ``logging``'s default ``handleError`` prints a "--- Logging error ---" block with a traceback
    on stderr for every record that fails, even when the run itself succeeds.  Here the first
    failure prints one warning line on stderr (so cron mails it) and the stream is dropped; later
    records try again (a disk that frees up gets the log back) and fail silently.  Chosen over
    ``logging.raiseExceptions = False``, which is process-wide, silent, and hides the errors of
    every other handler too.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.failure: str | None = None   # the first failure, in words; None while all is well

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if self.failure is None:
            self.failure = f"{exc.__class__.__name__}: {exc}" if exc else "unknown error"
            _warn(f"cannot write the log {self.baseFilename} ({self.failure}); carrying on without it.")
        self._drop_stream()

    def _drop_stream(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.close()   # its buffer cannot be flushed either: closing discards it
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        try:
            super().close()
        except (OSError, ValueError):   # the final flush failed: nothing more to lose
            self._drop_stream()
            logging.Handler.close(self)


def _warn(message: str) -> None:
    try:
        sys.stderr.write(f"prep: warning: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def setup_logging(cfg: Config | None, verbose: bool) -> None:
    """Log to ``logs/pre_market_prep.log`` (rotated); ``-v`` also echoes to stderr.

    The log is a record, not the job: when its folder (``paths.log_dir``) cannot be created or
    the file cannot be opened, one warning line goes to stderr and the run carries on without
    the file log, since a trader's 09:00 cron run should still rebalance with a broken log folder
    (cron mails the warning).  Writes that fail later are handled by ``QuietFileHandler``.
    Never raises for the log.
    """
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        try:
            h.close()
        except (OSError, ValueError):
            pass
    root.setLevel(logging.DEBUG)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    if cfg is not None:
        log_dir = cfg.path(cfg.paths.log_dir)
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            fh = QuietFileHandler(log_dir / LOG_FILE, maxBytes=cfg.logging.max_bytes,
                                  backupCount=cfg.logging.backups)
        except OSError as exc:
            _warn(f"cannot open the log in {log_dir} (paths.log_dir: {exc.strerror or exc.__class__.__name__}); "
                  "carrying on without it.")
        else:
            fh.setLevel(cfg.logging.level)
            fh.setFormatter(fmt)
            root.addHandler(fh)
    if not root.handlers and not verbose:
        root.addHandler(logging.NullHandler())  # no log file: keep tracebacks off the screen
    if verbose:
        sh = logging.StreamHandler()
        sh.setLevel(logging.DEBUG)
        sh.setFormatter(fmt)
        root.addHandler(sh)
