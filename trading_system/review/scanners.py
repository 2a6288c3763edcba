"""``prep scanners`` and ``prep scan NAME`` (DESIGN §10): the configured scanners' record, and one
scanner run as of a night without touching any state (as freqtrade's ``test-pairlist``).

``status`` reads ``data/scanners/state.json`` and ``stats.jsonl`` (``record``) into one row per
configured scanner; ``enable`` clears a disabled flag; ``scan_night`` runs one scanner on the
last closed session as of the clock.  Nothing here prints (``present.scanners`` does), and
``scan_night`` writes nothing: no state, no stats, no plan, no universe file.

Choice: ``prep scan`` fetches no pre-market prices (with the sample they would be the next
session's open, and with a live source a network call).  A ``phase: morning`` scanner is run as in
the evening, on the session's own bars (``gap``: the session's open against the previous close),
and the result says so in ``notes``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from trading_system import sessions
from trading_system.config import Config
from trading_system.config_scanners import ScannerEntry
from trading_system.errors import ConfigError, RunFailure
from trading_system.prepare import discovery
from trading_system.prepare.scanners import record
from trading_system.prepare.scanners.loader import bind, find_entry
from trading_system.prepare.scanners.runner import ATTEMPTS, ScannerRun, run_entry
from trading_system.prepare.universe import build_universe
from trading_system.runtime import make_source


def module_text(entry: ScannerEntry) -> str:
    """What an entry runs: ``builtin:gap``, ``pkg.mod:Class``, ``all_of: a, b`` or ``any_of: a, b``."""
    if entry.module is not None:
        return entry.module
    return f"{'all_of' if entry.all_of else 'any_of'}: {', '.join(entry.parts)}"


# --- prep scanners ------------------------------------------------------------------------------

@dataclasses.dataclass
class ScannerRow:
    """One configured scanner and its record.

    ``configured``: ``enabled`` in config.yaml; ``disabled``: switched off in state.json after
    ``record.DISABLE_AFTER`` failed runs.  ``last_run``: ISO time of its last run (None: never ran);
    ``last_found``: finds of its last run in stats.jsonl; ``mean_ms``: mean ``execution_time_ms`` of
    its runs in stats.jsonl that did not fail (None: none); ``runs``: its lines in stats.jsonl.
    """

    name: str
    module: str
    configured: bool
    disabled: bool
    phase: str
    action: str
    last_run: str | None
    last_found: int | None
    mean_ms: float | None
    runs: int
    failures: int
    last_error: str | None

    @property
    def enabled(self) -> bool:
        """Whether the nightly run runs it: enabled in config and not disabled by its failures."""
        return self.configured and not self.disabled


@dataclasses.dataclass
class ScannersStatus:
    """Every configured scanner (config order) and the folder its record is in."""

    rows: list[ScannerRow]
    folder: Path


def _folder(cfg: Config) -> Path:
    return record.scanners_dir(cfg.path(cfg.paths.data_dir))


def status(cfg: Config) -> ScannersStatus:
    """The rows of ``prep scanners``. Raises DataError when state.json is not readable JSON."""
    folder = _folder(cfg)
    state = record.read_state(folder) if cfg.scanners else {}
    stats = record.read_stats(folder) if cfg.scanners else []
    rows = []
    for e in cfg.scanners:
        rec = state.get(e.name, {})
        mine = [line for line in stats if line.get("name") == e.name]
        times = [float(x["execution_time_ms"]) for x in mine
                 if not x.get("error") and isinstance(x.get("execution_time_ms"), (int, float))]
        last = mine[-1] if mine else {}
        rows.append(ScannerRow(
            name=e.name, module=module_text(e), configured=e.enabled, disabled=bool(rec.get("disabled")),
            phase=e.phase, action=e.what, last_run=rec.get("last_run") or last.get("time"),
            last_found=last.get("found") if isinstance(last.get("found"), int) else None,
            mean_ms=sum(times) / len(times) if times else None, runs=len(mine),
            failures=int(rec.get("consecutive_failures") or 0), last_error=rec.get("last_error")))
    return ScannersStatus(rows=rows, folder=folder)


@dataclasses.dataclass
class Enabled:
    """What ``--enable NAME`` did: ``was_disabled`` and the failures in a row it cleared;
    ``configured``: config.yaml's ``enabled`` (False: the scanner stays off until that changes)."""

    name: str
    was_disabled: bool
    failures_cleared: int
    configured: bool


def enable(cfg: Config, name: str) -> Enabled:
    """``prep scanners --enable NAME``: clear the disabled flag and the failure count in state.json.

    Raises:
        ConfigError: ``name`` is not a configured scanner.
        DataError: state.json is not readable JSON.
    """
    entry = next((e for e in cfg.scanners if e.name == name), None)
    if entry is None:
        known = ", ".join(e.name for e in cfg.scanners) or "none"
        raise ConfigError(f"no scanner named {name!r} in config.yaml's scanners (configured: {known}); "
                          "--enable takes one of those names.")
    folder = _folder(cfg)
    before = record.read_state(folder).get(name, {})
    record.set_enabled(folder, name)
    return Enabled(name=name, was_disabled=bool(before.get("disabled")),
                   failures_cleared=int(before.get("consecutive_failures") or 0), configured=entry.enabled)


# --- prep scan NAME -----------------------------------------------------------------------------

@dataclasses.dataclass
class ScanNight:
    """One scanner on one night, as ``prep scan`` ran it.

    ``run``: its finds (best first, after the floors and ``max_symbols``) with their metadata
    figures, its time in ms; ``scanned``: symbols with a bar on ``session``; ``universe``: the
    evening universe's size; ``notes``: what the runner said and the morning-as-evening choice.
    """

    entry: ScannerEntry
    session: dt.date
    now: dt.datetime
    run: ScannerRun
    scanned: int
    universe: int
    data_source: str
    notes: list[str]

    def to_json(self) -> dict:
        """``{"scanner", "session", "symbols", "metadata"}``: what ``prep scan --json`` prints."""
        return {"scanner": self.entry.name, "session": str(self.session), "symbols": list(self.run.symbols),
                "metadata": {s: dict(self.run.metadata.get(s, {})) for s in self.run.symbols}}


def scan_night(cfg: Config, clock: sessions.Clock, name: str) -> ScanNight:
    """Run scanner ``name`` (configured, else the built-in with its defaults) on the last closed
    session as of ``clock``, over the whole market's bars (``discovery.HISTORY_DAYS`` of history,
    split-adjusted as of the session), in a forked child under its timeout.  Writes nothing.

    Raises:
        ConfigError: no such scanner, or its module does not load (``ScannerLoadError``).
        AsOfError / DataError: the session is outside the data, or its bars cannot be read.
        RunFailure: the scanner failed both attempts (its error in the message).
    """
    entry = find_entry(cfg.scanners, name)
    bind(entry, cfg.scanners)  # a module that does not load is bad input: exit 2 before any data is read
    now = clock.now()
    session = sessions.last_closed_session(now)
    source = make_source(cfg, clock)
    source.ensure_session(session)
    bars = source.bars(end=session, start=discovery.history_start(session))
    universe = build_universe(cfg, source, session).symbols
    notes = []
    if entry.phase == "morning":
        notes.append(f"scanner {entry.name} runs in the morning on pre-market prices, which prep scan does not "
                     f"fetch: it ran as in the evening, on the bars of session {session}.")
    ctx = discovery.scan_context(cfg, bars, session, now, "evening", universe)
    ctx.panel  # noqa: B018 (built before the fork: a composition's parts then share it)
    run, lines = run_entry(entry, cfg.scanners, ctx, isolate=True)
    if run.failed:
        tries = "both attempts" if run.attempts == ATTEMPTS else "its run"
        raise RunFailure(f"scanner {entry.name} failed {tries} on session {session}: {run.error}")
    return ScanNight(entry=entry, session=session, now=now, run=run, scanned=len(ctx.symbols),
                     universe=len(universe), data_source=source.name,
                     notes=notes + lines)
