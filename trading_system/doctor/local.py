"""The checks of ``prep doctor`` that need no network: config, keys, the morning's price source, the
bar store's freshness, disk space, state folders; and the crontab lines of this checkout.

Nothing here creates a file or a folder: a state folder that does not exist yet is reported as
"will be created" when its nearest existing parent is writable.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import shutil
import sys
from pathlib import Path

import pandas as pd
from dotenv import dotenv_values

from trading_system import sessions
from trading_system.config import Config, secret
from trading_system.doctor.base import FAIL, OK, WARN, Check, Status
from trading_system.errors import DataError, PrepError
from trading_system.runtime import make_source

#: Free disk space under these many bytes: WARN, then FAIL (a plan, an archive, a night's bars
#: need a few MB; a full disk stops atomic writes half-way).
DISK_WARN, DISK_FAIL = 1024 ** 3, 100 * 1024 ** 2
ALPACA_KEYS = ("ALPACA_API_KEY", "ALPACA_SECRET_KEY")


def config_check(config_path: Path) -> Check:
    """The config was loaded and validated before the doctor runs (an invalid one exits 2 in the CLI)."""
    return Check("config", OK, f"valid: {Path(config_path).resolve()}.")


def _names(keys) -> str:
    return " and ".join(keys)


def key_checks(cfg: Config, environ) -> list[Check]:
    """The keys ``data.source`` and ``broker.kind`` need: set or not, and whether cron will see them.

    cron starts with a bare environment, so a key set in the shell only (not in ``.env`` beside
    the config, which every run loads) works by hand and fails at 20:00: WARN.
    """
    needs: list[tuple[str, tuple[str, ...], str]] = []  # (check name, keys, why they are needed)
    if cfg.data.source == "polygon":
        needs.append(("polygon key", ("POLYGON_API_KEY",), "data.source: polygon"))
    if cfg.broker.kind == "alpaca":
        needs.append(("alpaca keys", ALPACA_KEYS, "broker.kind: alpaca"))
    if not needs:
        return [Check("keys", OK, "none needed: data.source sample and broker.kind simulated run without keys.")]
    env_file = cfg.root / ".env"
    in_file = {k for k, v in (dotenv_values(env_file) if env_file.is_file() else {}).items() if (v or "").strip()}
    out = []
    for name, keys, why in needs:
        missing = [k for k in keys if not (environ.get(k) or "").strip()]
        one = len(missing) == 1
        if missing:
            out.append(Check(name, FAIL, f"{_names(missing)} {'is' if one else 'are'} not set ({why} needs "
                                         f"{'it' if one else 'them'}); put {'it' if one else 'them'} in {env_file}."))
            continue
        shell_only = [k for k in keys if k not in in_file]
        if shell_only:
            out.append(Check(name, WARN, f"{_names(shell_only)} {'is' if len(shell_only) == 1 else 'are'} set in "
                                         f"this shell but not in {env_file}: cron starts with a bare environment, so "
                                         "put the keys in that file (or in the crontab)."))
        else:
            out.append(Check(name, OK, f"{_names(keys)} {'is' if len(keys) == 1 else 'are'} set in {env_file} "
                                       "(values not shown)."))
    return out


def price_source_check(cfg: Config, clock: sessions.Clock, snapshot_entitled: bool | None = None) -> Check:
    """Where ``validate`` will get its pre-market prices, or why it will have none.

    ``snapshot_entitled`` is what ``remote.polygon_checks`` learnt (None: not asked): a paid key
    without the snapshot falls back on Alpaca, which then needs its keys.
    """
    name = "price source"
    try:
        problem = make_source(cfg, clock).premarket_source_problem()
    except PrepError as exc:
        return Check(name, FAIL, str(exc))
    if problem:
        return Check(name, FAIL, problem)
    if cfg.data.source == "sample":
        return Check(name, OK, "the sample's opening print of the target session (an offline replay's price, "
                               "not a pre-market quote).")
    alpaca = all(secret(k) for k in ALPACA_KEYS)
    if cfg.polygon.plan == "free":
        return Check(name, OK, "Alpaca's latest trade (free Polygon plan); ALPACA_API_KEY and ALPACA_SECRET_KEY "
                               "are set.")
    if snapshot_entitled is False:
        if not alpaca:
            return Check(name, FAIL, "the key is not entitled to Polygon's snapshot and ALPACA_API_KEY/"
                                     "ALPACA_SECRET_KEY are not both set, so validate will stop: set them in .env "
                                     "or set polygon.plan: free.")
        return Check(name, OK, "Alpaca's latest trade (the key is not entitled to Polygon's snapshot).")
    fallback = "Alpaca's latest trade as the fallback" if alpaca else "no fallback (no Alpaca keys)"
    return Check(name, OK, f"Polygon's snapshot (paid plan), {fallback}.")


def newest_session(cfg: Config, now: dt.datetime) -> dt.date:
    """The newest session the configured plan can have at ``now``: the last closed one, or on the
    free plan the one before when that closed today (Polygon publishes day D on D+1 ET)."""
    session = sessions.last_closed_session(now)
    if cfg.polygon.plan == "free" and session >= now.astimezone(sessions.ET).date():
        session = sessions.previous_session(session)
    return session


def _stored_dates(path: Path) -> pd.Series:
    return pd.read_parquet(path, columns=["date"])["date"]


def store_check(cfg: Config, clock: sessions.Clock) -> Check:
    """How fresh the bars are: the sample's last day, or the Polygon store's newest session against
    the newest one the plan can have."""
    if cfg.data.source == "sample":
        path = cfg.path(cfg.data.sample_dir) / "bars.parquet"
        try:
            dates = _stored_dates(path)
        except Exception as exc:  # missing or broken file: pyarrow raises several types
            return Check("bar store", FAIL, f"the sample's bars cannot be read from {path} "
                                            f"({exc.__class__.__name__}); restore data/sample/.")
        if dates.empty:
            return Check("bar store", FAIL, f"the sample {path} holds no bars; restore data/sample/.")
        return Check("bar store", WARN, f"the sample ends {dates.max()}: it replays --as-of dates up to then, "
                                        "but cron needs fresh bars, so set data.source: polygon.")
    store = cfg.path(cfg.data.store_dir)
    expected = newest_session(cfg, clock.now())
    if not (store / "bars.parquet").exists():
        from trading_system.prepare.discovery import HISTORY_DAYS  # here: the pipeline may import this package

        n = len(sessions.sessions_between(expected - dt.timedelta(days=HISTORY_DAYS), expected))
        minutes = n / cfg.polygon.requests_per_minute
        return Check("bar store", WARN, f"empty ({store}): the first prepare fetches about {n} sessions, one "
                                        f"request each (about {minutes:.0f} min at {cfg.polygon.requests_per_minute:g} "
                                        "requests a minute).")
    try:
        dates = _stored_dates(store / "bars.parquet")
    except Exception as exc:
        return Check("bar store", FAIL, f"{store / 'bars.parquet'} cannot be read ({exc.__class__.__name__}); "
                                        "delete it and the next prepare fetches the bars again.")
    if dates.empty:
        return Check("bar store", WARN, f"{store} holds no bars yet: the first prepare fills it.")
    newest = max(dates)
    behind = 0 if newest >= expected else len(sessions.sessions_between(sessions.next_session(newest), expected))
    if behind == 0:
        return Check("bar store", OK, f"up to date: newest session {newest}, the last one Polygon has published "
                                      "for this plan.")
    text = (f"newest session {newest}, {behind} session{'s' if behind > 1 else ''} behind {expected}; the next "
            f"prepare fetches {'them' if behind > 1 else 'it'} (one request each).")
    return Check("bar store", OK if behind == 1 else WARN, text)


def state_folders(cfg: Config) -> list[tuple[str, Path]]:
    """(config key, folder) of every folder a run writes to, each folder once."""
    folders = [("paths.plan", cfg.path(cfg.paths.plan).parent), ("paths.archive_dir", cfg.path(cfg.paths.archive_dir)),
               ("paths.data_dir", cfg.path(cfg.paths.data_dir)), ("paths.log_dir", cfg.path(cfg.paths.log_dir))]
    if cfg.data.source == "polygon":
        folders.append(("data.store_dir", cfg.path(cfg.data.store_dir)))
    seen: set[Path] = set()
    out = []
    for name, folder in folders:
        folder = Path(os.path.abspath(folder))
        if folder not in seen:
            seen.add(folder)
            out.append((name, folder))
    return out


def _existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _size(n: float) -> str:
    return f"{n / 1024 ** 3:.1f} GB" if n >= 1024 ** 3 else f"{n / 1024 ** 2:.0f} MB"


def disk_checks(folders: list[tuple[str, Path]]) -> list[Check]:
    """Free space on each filesystem holding a state folder: WARN under 1 GB, FAIL under 100 MB."""
    out, seen = [], set()
    for _, folder in folders:
        where = _existing(folder)
        try:
            device = where.stat().st_dev
            if device in seen:
                continue
            seen.add(device)
            free = shutil.disk_usage(where).free
        except OSError as exc:
            reason = exc.strerror or exc.__class__.__name__
            out.append(Check("disk", WARN, f"free space on {where} unknown ({reason})."))
            continue
        status: Status = FAIL if free < DISK_FAIL else WARN if free < DISK_WARN else OK
        advice = "" if status == OK else "; writes stop when it is full, so free some space"
        out.append(Check("disk", status, f"{_size(free)} free on the filesystem of {where}{advice}."))
    return out


def folder_checks(folders: list[tuple[str, Path]]) -> list[Check]:
    """Each state folder is writable, or will be created by the first run in a writable parent."""
    out = []
    for name, folder in folders:
        if folder.exists():
            if not folder.is_dir():
                out.append(Check(name, FAIL, f"{folder} exists but is not a folder; move it or change {name}."))
            elif os.access(folder, os.W_OK | os.X_OK):
                out.append(Check(name, OK, f"{folder} is writable."))
            else:
                out.append(Check(name, FAIL, f"{folder} is not writable by this user; fix its permissions."))
            continue
        parent = _existing(folder)
        if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
            out.append(Check(name, OK, f"{folder} will be created by the first run ({parent} is writable)."))
        elif parent.is_dir():
            out.append(Check(name, FAIL, f"{folder} cannot be created: {parent} is not writable by this user."))
        else:
            out.append(Check(name, FAIL, f"{folder} cannot be created: {parent} is not a folder; change {name}."))
    return out


def crontab_lines(cfg: Config, config_path: Path, live: bool = False) -> list[str]:
    """The crontab of ``crontab.example`` with this checkout's absolute paths and the plan's schedule.

    The ``prep`` executable beside the running interpreter (``.venv/bin/prep``), the absolute
    config path; prepare at 20:00 ET, or at 00:30 ET Tuesday to Saturday on Polygon's free plan
    (day D is published on D+1 ET); validate and execute at 09:00 ET (execute waits for the open).
    """
    prep = Path(sys.executable).absolute().parent / "prep"
    run = f"{shlex.quote(str(prep))} --config {shlex.quote(str(Path(config_path).resolve()))}"
    lines = ["CRON_TZ=America/New_York"]
    if cfg.data.source == "sample":
        lines.append("# data.source is sample (a fixed history): set data.source: polygon before installing "
                     "these lines")
    if cfg.data.source == "polygon" and cfg.polygon.plan == "free":
        lines += ["# free Polygon plan: day D is published on D+1 ET, so prepare after midnight, Tuesday to Saturday",
                  f"30 0 * * 2-6  {run} prepare"]
    else:
        lines += [f"0 20 * * 1-5  {run} prepare"]
    lines += [f"0 9 * * 1-5   {run} validate && {run} execute{' --live' if live else ''}"]
    return lines


def scanner_checks(cfg: Config) -> list[Check]:
    """Per configured scanner: it loads (its module imports, its class is a Scanner, its params
    pass) and is not disabled by failed runs.  Nothing runs; no state is written."""
    from trading_system.prepare.scanners.loader import ScannerLoadError, bind  # here: the pipeline imports doctor
    from trading_system.prepare.scanners.record import read_state, scanners_dir

    if not cfg.scanners:
        return []
    try:
        state = read_state(scanners_dir(cfg.path(cfg.paths.data_dir)))
    except DataError as exc:
        return [Check("scanners", FAIL, str(exc))]
    out = []
    for entry in cfg.scanners:
        name = f"scanner {entry.name}"
        try:
            bind(entry, cfg.scanners)
        except ScannerLoadError as exc:
            said = str(exc).removeprefix(f"{name}: ")
            said += "" if said.endswith(("?", ".")) else "."
            out.append(Check(name, FAIL, f"{said} The nightly run goes on without it."))
            continue
        rec = state.get(entry.name, {})
        if not entry.enabled:
            out.append(Check(name, WARN, "enabled: false in config.yaml; it does not run."))
        elif rec.get("disabled"):
            out.append(Check(name, WARN, f"disabled after failed runs (last: {rec.get('last_error')}); "
                                         f"'prep scanners --enable {entry.name}' turns it back on."))
        else:
            out.append(Check(name, OK, f"loads ({entry.module or 'composition'}, {entry.phase}, {entry.what})."))
    return out
