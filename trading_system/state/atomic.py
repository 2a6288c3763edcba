"""Atomic file writes: temp file in the same folder, fsync, then ``os.replace`` (DESIGN §8).

A crash leaves either the old file or the new one, never half of one, and perhaps a temp
file ``.{name}.pid{PID}.{random}.tmp`` that a killed run could not remove: ``clean_orphans``
removes those on the next run, once their writer is gone.  ``write_json_atomic`` writes JSON
this way, refusing a NaN or an infinity (``strict_json``).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import pydantic_core

log = logging.getLogger(__name__)

#: ``.{name}.pid{PID}.{8 random}.tmp``: the writer's PID tells whether it still runs.
_OURS = re.compile(r"^\..+\.pid(?P<pid>[0-9]+)\.[a-z0-9_]{8}\.tmp$")
#: ``.{name}.{8 random}.tmp``: temp files of versions before the PID was in the name.
_OLD = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
#: Temp files younger than this are never touched, whatever their PID says: a writer in another
#: PID namespace (a container sharing the folder) looks dead from here, and a write takes seconds.
MIN_AGE_SECONDS = 60.0
#: Old-pattern temp files carry no PID; older than this, no write is still filling them.
OLD_PATTERN_AGE_SECONDS = 3600.0


def atomic_write(path: Path | str, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` to fill a temp file beside ``path``, fsync it, and rename it over ``path``.

    The folder is created if needed; on any error the temp file is removed and the
    error re-raised, leaving ``path`` as it was.  The temp name carries this process's PID
    (``.{name}.pid{PID}.XXXXXXXX.tmp``) so a later run can tell an orphan from a live write.
    Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.pid{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def strict_json(payload: bytes, path: Path) -> bytes:
    """``payload`` (JSON encoded with NaN / inf as constants) plus a newline, once pydantic-core has
    re-read it with ``allow_inf_nan=False`` (~0.5 ms for a plan).

    Raises:
        ValueError: the payload holds a NaN or an infinity.  JSON has neither, and pydantic's
            default (``null``) would turn a broken figure into "no value" without a word; a
            caller that means "no value" says so explicitly (``None``) instead.
    """
    if b"NaN" not in payload and b"Infinity" not in payload:
        return payload + b"\n"  # neither constant anywhere: no parse needed (a byte search is ~100x cheaper)
    try:
        pydantic_core.from_json(payload, allow_inf_nan=False)
    except ValueError as exc:
        raise ValueError(f"refusing to write {path}: it would hold a NaN or an infinity ({exc}); "
                         "a missing figure must be None") from exc
    return payload + b"\n"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temp file in the same folder, fsync, then ``os.replace``.

    A crash leaves either the old file or the new one, never half of one.  Encoded by
    pydantic-core (stdlib ``json`` falls back to its pure-Python encoder once ``indent``
    is set, ~25x slower on a plan); dates and datetimes as ISO 8601, other objects by ``str``.

    Raises:
        ValueError: ``data`` holds a NaN or an infinity (nothing is written; see ``strict_json``).
    """
    payload = strict_json(pydantic_core.to_json(data, indent=2, fallback=str, inf_nan_mode="constants"), path)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(payload))


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (signal 0 checks without sending anything)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    except (OverflowError, ValueError):  # a number no process can have
        return False
    return True


def is_orphan(path: Path, now: float | None = None) -> bool:
    """Whether ``path`` is a temp file of ``atomic_write`` that no live run is still writing.

    Ours with a PID: the PID no longer runs (and the file is at least ``MIN_AGE_SECONDS`` old).
    Old pattern, no PID: older than ``OLD_PATTERN_AGE_SECONDS``.  Anything else: never.
    """
    now = time.time() if now is None else now
    ours, old = _OURS.match(path.name), _OLD.match(path.name)
    if not ours and not old:
        return False
    try:
        age = now - path.lstat().st_mtime
    except OSError:
        return False
    if ours:
        return age >= MIN_AGE_SECONDS and not _alive(int(ours["pid"]))
    return age >= OLD_PATTERN_AGE_SECONDS


def clean_orphans(folder: Path | str, recursive: bool = False) -> int:
    """Remove the temp files killed runs left in ``folder`` (and below it, if ``recursive``).

    Only files ``is_orphan`` accepts are removed, so a temp file another live run is writing is
    never touched.  A folder that does not exist holds none; a file that cannot be removed is
    logged and left.  Returns how many were removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    if recursive:  # os.walk does not follow symlinked folders (rglob does, before Python 3.13)
        candidates = (Path(top) / name for top, _, names in os.walk(folder) for name in names
                      if name.startswith(".") and name.endswith(".tmp"))
    else:
        candidates = folder.glob(".*.tmp")
    removed, now = 0, time.time()
    for path in candidates:
        if not path.is_file() or path.is_symlink() or not is_orphan(path, now):
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("could not remove orphaned temp file %s: %s", path, exc)
            continue
        removed += 1
        log.debug("removed orphaned temp file %s", path)
    return removed
