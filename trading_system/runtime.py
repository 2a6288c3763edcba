"""Wiring: which data source and which broker a config asks for; the archive; logging.

The only place that picks implementations, so dry-run and offline mode live at the
boundaries (a ``DryRunBroker`` wrapper, the ``sample`` source), not in the pipeline.
"""

from __future__ import annotations

import datetime as dt
import logging
import logging.handlers
from pathlib import Path

from .broker.base import Broker
from .broker.dryrun import DryRunBroker
from .config import Config
from .errors import ConfigError
from .marketdata.base import MarketData
from .plan import Plan, archive_path, write_json_atomic

LOG_FILE = "pre_market_prep.log"


def make_source(cfg: Config, clock=None) -> MarketData:
    """The configured market-data source (``data.source``); ``clock`` (a ``sessions.Clock``) tells
    the polygon source what "today" is (the free plan publishes day D on D+1)."""
    if cfg.data.source == "sample":
        from .marketdata.sample import SampleSource

        return SampleSource(cfg.path(cfg.data.sample_dir))
    if cfg.data.source == "polygon":
        from .marketdata.polygon_source import PolygonSource
        from .sessions import Clock

        return PolygonSource(cfg, clock or Clock())
    raise ConfigError(f"data.source '{cfg.data.source}' is not available in this version; use 'sample'.")


def make_broker(cfg: Config, session: dt.date | None, dry_run: bool, live: bool = False) -> Broker:
    """The configured broker for ``session``, wrapped in ``DryRunBroker`` for a dry run.

    ``alpaca`` reads its keys from the environment and needs ``live`` for a live account.
    """
    if cfg.broker.kind == "simulated":
        from .broker.simulated import SimulatedBroker
        from .marketdata.store import BarStore

        sim = cfg.broker.simulated
        broker: Broker = SimulatedBroker(BarStore(cfg.path(cfg.data.sample_dir)), cfg.path(sim.account_file),
                                         session, sim.starting_cash)
    elif cfg.broker.kind == "alpaca":
        import os

        from .broker.alpaca import make_alpaca_broker

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


def setup_logging(cfg: Config | None, verbose: bool) -> None:
    """Log to ``logs/pre_market_prep.log`` (rotated); ``-v`` also echoes to stderr."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    root.setLevel(logging.DEBUG)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    if cfg is not None:
        log_dir = cfg.path(cfg.paths.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        fh = logging.handlers.RotatingFileHandler(log_dir / LOG_FILE, maxBytes=cfg.logging.max_bytes,
                                                  backupCount=cfg.logging.backups)
        fh.setLevel(cfg.logging.level)
        fh.setFormatter(fmt)
        root.addHandler(fh)
    if not root.handlers and not verbose:
        root.addHandler(logging.NullHandler())  # no log folder yet: keep tracebacks off the screen
    if verbose:
        sh = logging.StreamHandler()
        sh.setLevel(logging.DEBUG)
        sh.setFormatter(fmt)
        root.addHandler(sh)
