"""``prep doctor``: the pre-flight check run after set-up (DESIGN §1), and its no-network brief.

Computing is apart from printing: ``run_checks`` returns a list of ``Check`` (name, OK / WARN /
FAIL, one sentence); ``print_report`` prints them as aligned lines of 80 columns, then the
crontab lines of this checkout; ``doctor_command`` does both and exits 1 (``RunFailure``) when a check failed.

- ``local.py``: config, keys, the morning's price source, the bar store's freshness, disk space,
  state folders, crontab lines (no network);
- ``remote.py``: Polygon (reachability, key, entitlements) and Alpaca (account, kind, funds), each
  with a client that gives up after one timeout instead of the runs' full retry budget.

``brief_checks`` is the no-network part (keys, price source, disk, folders) that ``prepare`` can
print before a night's work.  No check creates state, and no message ever holds a key.

May import: ``config``, ``errors``, ``sessions``, ``runtime``, ``broker`` and ``marketdata`` (the clients
it checks), and ``prepare``'s scanner loader and history window inside the checks that use them
(``prepare`` imports this package for ``brief_checks``).  Nothing imports it but ``cli`` and ``prepare``;
the boundaries and ``state`` never do (``lint-imports`` checks it).
"""

from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path

from rich.console import Console
from rich.text import Text

from trading_system.config import Config, secret
from trading_system.doctor.base import FAIL, OK, WARN, Check
from trading_system.doctor.local import (
    config_check,
    crontab_lines,
    disk_checks,
    folder_checks,
    key_checks,
    price_source_check,
    scanner_checks,
    state_folders,
    store_check,
)
from trading_system.doctor.remote import alpaca_checks, polygon_checks
from trading_system.errors import RunFailure
from trading_system.sessions import Clock

__all__ = ["Check", "OK", "WARN", "FAIL", "run_checks", "brief_checks", "print_report", "report_lines",
           "doctor_command"]

log = logging.getLogger(__name__)

#: The report reads at this width whatever the terminal's (cron mails it, people paste it).
WIDTH = 80
_STYLE = {OK: "green", WARN: "yellow", FAIL: "bold red"}


def run_checks(cfg: Config, clock: Clock, config_path: Path, live: bool = False) -> list[Check]:
    """Every check of ``prep doctor``, in the order they print.

    Requires: a loaded, validated config (``cli._run`` refused an invalid one with exit 2) and the
    path it came from; ``live``: ``--live`` was given.  Network: Polygon only when
    ``data.source: polygon`` and its key is set; Alpaca only when ``broker.kind: alpaca``.
    Sets: nothing (no file or folder is created, no order is sent).
    """
    checks = [config_check(config_path)]
    checks += key_checks(cfg, os.environ)
    snapshot_entitled = None
    if cfg.data.source == "polygon" and secret("POLYGON_API_KEY"):
        found, snapshot_entitled = polygon_checks(cfg, clock)
        checks += found
    if cfg.broker.kind == "alpaca":
        checks += alpaca_checks(cfg, live, os.environ)
    checks.append(price_source_check(cfg, clock, snapshot_entitled))
    checks.append(store_check(cfg, clock))
    checks += scanner_checks(cfg)
    folders = state_folders(cfg)
    checks += disk_checks(folders)
    checks += folder_checks(folders)
    return checks


def brief_checks(cfg: Config, clock: Clock) -> list[Check]:
    """The checks that need no network, for ``prepare`` to print: keys, the morning's price source,
    disk space and the state folders.  Fast (no file is read but ``.env``)."""
    folders = state_folders(cfg)
    return [*key_checks(cfg, os.environ), price_source_check(cfg, clock), *disk_checks(folders),
            *folder_checks(folders)]


def report_lines(checks: list[Check], width: int = WIDTH) -> list[tuple[str, str]]:
    """(status, text) per printed line: status, name and sentence in aligned columns, the sentence
    wrapped at ``width`` under itself.  A word longer than the line (a path) is never broken, so it
    still copies whole; the status is "" on continuation lines."""
    name_w = max((len(c.name) for c in checks), default=0)
    indent = " " * (4 + 2 + name_w + 2)
    out: list[tuple[str, str]] = []
    for c in checks:
        head = f"{c.status:<4}  {c.name:<{name_w}}  "
        wrapped = textwrap.wrap(c.message, width=max(width - len(indent), 20), break_long_words=False,
                                break_on_hyphens=False) or [""]
        out.append((c.status, head + wrapped[0]))
        out += [("", indent + more) for more in wrapped[1:]]
    return out


def print_report(console: Console, checks: list[Check], cron: list[str] | None = None) -> None:
    """The checks as aligned lines of at most 80 columns (status, name, sentence), a tally, then
    ``cron`` (lines to paste).  Nothing is re-wrapped by the console, so paths copy whole."""
    for status, line in report_lines(checks, min(console.width, WIDTH)):
        text = Text(line)
        if status:
            text.stylize(_STYLE[status], 0, len(status))
        console.print(text, soft_wrap=True)
    tally = {s: sum(c.status == s for c in checks) for s in (OK, WARN, FAIL)}
    console.print(Text(f"{tally[OK]} OK, {tally[WARN]} WARN, {tally[FAIL]} FAIL"), soft_wrap=True)
    if cron:
        console.print()
        console.print(Text("crontab lines for this checkout (crontab -e). CRON_TZ is honoured by cronie and "
                           "systemd-cron only: with Debian's cron, set the machine's zone to America/New_York "
                           "or shift the hours:"), soft_wrap=True)
        for line in cron:
            console.print(Text(line), soft_wrap=True)


def doctor_command(cfg: Config, clock: Clock, console: Console, config_path: Path, live: bool = False) -> None:
    """``prep doctor [--live]``: run every check, print them and the crontab lines.

    Raises:
        RunFailure: at least one check is FAIL (exit 1), after everything was printed.
    """
    checks = run_checks(cfg, clock, Path(config_path), live)
    for c in checks:
        log.info("doctor: %s %s: %s", c.status, c.name, c.message)
    print_report(console, checks, crontab_lines(cfg, Path(config_path), live))
    failed = [c.name for c in checks if c.status == FAIL]
    if failed:
        raise RunFailure(f"{len(failed)} check{'s' if len(failed) > 1 else ''} failed: {', '.join(failed)}; "
                           "see the lines above.")
