"""What survives between cron runs (DESIGN §10): ``data/scanners/state.json`` and ``stats.jsonl``.

``state.json``: per scanner name, ``consecutive_failures`` (failed runs in a row; a run fails
when both its attempts raised or timed out, or its module would not load), ``disabled`` (set at
``DISABLE_AFTER`` failures in a row, cleared only by ``prep scanners --enable NAME``),
``last_run`` (ISO time), ``last_error``.  Written atomically under a file lock, so a ``prepare``
and a ``validate`` at once never lose each other's update.

``stats.jsonl``: one line per scanner run: time, session, phase, name (the scanner), action, found,
symbols, execution_time_ms, attempts, skipped, error, disabled, capped_from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from filelock import FileLock

from trading_system.errors import DataError
from trading_system.state.atomic import write_json_atomic

#: Failed runs in a row after which a scanner is disabled.
DISABLE_AFTER = 3


def scanners_dir(data_dir: Path) -> Path:
    """``<data_dir>/scanners``: where the state and the stats live."""
    return Path(data_dir) / "scanners"


def read_state(folder: Path) -> dict[str, dict[str, Any]]:
    """The state of every scanner that has run (name -> record); ``{}`` before the first run.

    Raises:
        DataError: the file exists but is not a JSON object (it is left as it is).
    """
    path = folder / "state.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} cannot be read as JSON ({exc.__class__.__name__}); fix or delete it "
                        "(deleting re-enables every scanner).") from exc
    scanners = data.get("scanners") if isinstance(data, dict) else None
    if not isinstance(scanners, dict):
        raise DataError(f"{path} has no 'scanners' object; fix or delete it (deleting re-enables every scanner).")
    return scanners


def update_state(folder: Path, runs: list[dict[str, Any]], when: str) -> dict[str, dict[str, Any]]:
    """Record each run (``name``, ``failed``, ``error``) under the lock; disable at ``DISABLE_AFTER``.

    Returns the new state. Raises DataError as :func:`read_state`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / "state.json.lock"), timeout=30):
        state = read_state(folder)
        for run in runs:
            rec = state.setdefault(run["name"], {"consecutive_failures": 0, "disabled": False})
            rec["last_run"] = when
            if run["failed"]:
                rec["consecutive_failures"] = int(rec.get("consecutive_failures", 0)) + 1
                rec["last_error"] = run["error"]
                if rec["consecutive_failures"] >= DISABLE_AFTER:
                    rec["disabled"] = True
            else:
                rec["consecutive_failures"] = 0
        write_json_atomic(folder / "state.json", {"scanners": state})
        return state


def set_enabled(folder: Path, name: str) -> dict[str, Any]:
    """``prep scanners --enable NAME``: clear the disabled flag and the failure count. Returns the record."""
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / "state.json.lock"), timeout=30):
        state = read_state(folder)
        rec = state.setdefault(name, {})
        rec.update({"disabled": False, "consecutive_failures": 0})
        write_json_atomic(folder / "state.json", {"scanners": state})
        return rec


def append_stats(folder: Path, lines: list[dict[str, Any]]) -> None:
    """Append one JSON line per run to ``stats.jsonl`` (one write per line, in append mode)."""
    if not lines:
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "stats.jsonl", "a", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line, sort_keys=True) + "\n")


def read_stats(folder: Path) -> list[dict[str, Any]]:
    """Every line of ``stats.jsonl`` that parses as a JSON object (a torn last line is skipped)."""
    path = folder / "stats.jsonl"
    if not path.exists():
        return []
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            out.append(line)
    return out
