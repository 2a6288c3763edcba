"""``prep sweep``: the grid of settings, the trials' keys and store (the holdout split and the ranking
are in ``sweep_rank``).

A grid file (YAML) maps dotted config paths to lists of values::

    validation.retention_threshold: [0.75, 0.85, 0.95]
    strategies.weight_cap: [0.1, 0.2]
    regime.enabled: [true, false]

Every combination is one trial: one backtest of the user's config with those values set.  The
whole grid is checked before any trial runs (``trials``): a path that is not a config key, a value
of the wrong type or out of its range (each trial's config goes through ``Config.model_validate`` in
strict mode: ``"0.8"`` is not a number, ``1`` is not a boolean), an empty grid, a value that is not a
list, more combinations than ``max_trials``.

A trial's key hashes what decides its result: the trial's whole config (the user's with the
settings applied), the dates and where the bars come from.  Each finished trial is one JSON line
of ``trials.jsonl`` (flushed and fsynced), so a stopped sweep run again runs only the trials whose
key has no successful line; a trial that failed is recorded with its error and tried again on the
next run (a failure is not a result).

Ranking: by the Sharpe ratio of the system's equity curve (net of whatever the backtest charges),
up to the holdout date when there is one; the sessions after it are kept out of the ranking and
the best trial is measured on them separately.  The bars' contents are not in the key: after a
change of the data, delete the sweep's folder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import logging
import math
import os
from pathlib import Path
from typing import IO, Any

import yaml
from pydantic import BaseModel, ValidationError

from trading_system.config import Config
from trading_system.errors import BadInputError, first_problem

log = logging.getLogger(__name__)

#: Grid paths refused: the backtest puts every state file in its own scratch folder.
REFUSED_SECTIONS = ("paths", "root")
#: Figures of a backtest that may hold the costs paid (dollars); the first present is shown.
COST_KEYS = ("costs", "costs_paid", "cost")


# ---------------------------------------------------------------------------------------- the grid


@dataclasses.dataclass(frozen=True)
class Grid:
    """The grid file's paths and their values, in the file's order."""

    name: str                          # the file's stem (names the sweep's folder)
    keys: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]

    def size(self) -> int:
        return math.prod(len(v) for v in self.values)

    def combinations(self) -> list[dict[str, Any]]:
        """Every combination, the last key varying fastest."""
        return [dict(zip(self.keys, combo)) for combo in itertools.product(*self.values)]


def load_grid(path: Path) -> Grid:
    """Read the grid file: a non-empty mapping of config paths to non-empty lists without repeats.

    Raises:
        BadInputError: a missing or unreadable file, not YAML, not such a mapping.
    """
    where = f"--grid {path}"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{where}: no such file; pass a YAML file mapping config paths to lists.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{where} cannot be read ({exc.__class__.__name__}); pass a readable YAML file.") from None
    except yaml.YAMLError as exc:
        raise BadInputError(f"{where} is not valid YAML ({exc.__class__.__name__}); fix its syntax.") from None
    if raw is None or raw == {}:
        raise BadInputError(f"{where} is empty; map at least one config path to a list of values, "
                            "e.g. validation.retention_threshold: [0.75, 0.85].")
    if not isinstance(raw, dict):
        raise BadInputError(f"{where} must map config paths to lists (validation.retention_threshold: "
                            f"[0.75, 0.85]), not hold a {type(raw).__name__}.")
    keys, values = [], []
    for key, vals in raw.items():
        if not isinstance(key, str):
            raise BadInputError(f"{where}: the key {key!r} is not a config path; write it as section.key.")
        if not isinstance(vals, list):
            raise BadInputError(f"{where}: '{key}' must be a list of values ([{vals!r}] for one), "
                                f"not a {type(vals).__name__}.")
        if not vals:
            raise BadInputError(f"{where}: '{key}' has an empty list; give it at least one value.")
        seen: set[str] = set()
        for v in vals:
            if _canonical(v) in seen:
                raise BadInputError(f"{where}: '{key}' lists {v!r} twice; give each value once.")
            seen.add(_canonical(v))
        keys.append(key)
        values.append(tuple(vals))
    return Grid(name=path.stem, keys=tuple(keys), values=tuple(values))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def check_path(key: str) -> None:
    """``key`` names one setting of ``Config`` (not a section, not a state path).

    Raises:
        BadInputError: naming the first part that is not a key, or why the path cannot be swept.
    """
    parts = key.split(".")
    if parts[0] in REFUSED_SECTIONS:
        raise BadInputError(f"grid key '{key}': the backtest puts every state file in a scratch folder of its "
                            "own, so paths cannot be swept; remove it from the grid.")
    model: type[BaseModel] = Config
    for depth, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields or (model is Config and part == "root"):
            above = ".".join(parts[:depth]) or "the config"
            raise BadInputError(f"grid key '{key}' is not a config path: {above} has no key '{part}' "
                                f"(it has {', '.join(sorted(f for f in fields if f != 'root'))}).")
        section = _section(fields[part].annotation)
        if depth < len(parts) - 1:
            if section is None:
                setting = ".".join(parts[:depth + 1])
                raise BadInputError(f"grid key '{key}' is not a config path: '{setting}' is a setting, not a section.")
            model = section
        elif section is not None:
            raise BadInputError(f"grid key '{key}' names a whole section; name one of its settings "
                                f"({key}.{next(iter(section.model_fields))}, ...).")


def _section(annotation: Any) -> type[BaseModel] | None:
    """The model of a config section, None for a setting."""
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _with(base: dict, key: str, value: Any) -> None:
    """Set ``value`` at the dotted ``key`` of the plain-data config ``base`` (a list for a tuple becomes one)."""
    *parents, last = key.split(".")
    node = base
    for part in parents:
        node = node[part]
    node[last] = tuple(value) if isinstance(node.get(last), tuple) and isinstance(value, list) else value


def apply(cfg: Config, settings: dict[str, Any]) -> Config:
    """``cfg`` with ``settings`` (dotted path -> value) applied, validated strictly.

    Raises:
        ValidationError: a value of the wrong type or out of range, or a rule across keys broken.
    """
    data = cfg.model_dump()
    for key, value in settings.items():
        _with(data, key, value)
    return Config.model_validate({**data, "root": cfg.root}, strict=True)


def _refused(exc: ValidationError) -> str:
    p = first_problem(exc)
    return f"{p.message} ({p.where})" if p.where else p.message


def trials(cfg: Config, grid: Grid, max_trials: int) -> list[tuple[dict[str, Any], Config]]:
    """Every combination of ``grid`` with its validated config, in grid order.

    Raises:
        BadInputError: a path that is not a setting, a value refused alone, more combinations than
            ``max_trials``, a combination refused (a rule across keys).
    """
    for key in grid.keys:
        check_path(key)
    for key, values in zip(grid.keys, grid.values):
        for value in values:
            try:
                apply(cfg, {key: value})
            except ValidationError as exc:
                raise BadInputError(f"grid key '{key}': the value {value!r} is refused: {_refused(exc)}.") from None
    if grid.size() > max_trials:
        raise BadInputError(f"the grid makes {grid.size()} combinations, more than --max-trials {max_trials}; "
                            "shorten its lists or raise --max-trials.")
    out = []
    for settings in grid.combinations():
        try:
            out.append((settings, apply(cfg, settings)))
        except ValidationError as exc:
            shown = ", ".join(f"{k}={v!r}" for k, v in settings.items())
            raise BadInputError(f"the grid's combination {shown} is refused: {_refused(exc)}; "
                                "drop one of those values.") from None
    return out


# ---------------------------------------------------------------------------------------- keys


def _digest(payload: Any, n: int = 16) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:n]


def data_identity(cfg: Config, bars: str | None, splits: str | None) -> str:
    """Where the bars come from: ``--bars`` (and its splits) or the configured store, as absolute paths."""
    if bars is not None:
        bars_path = Path(bars).resolve()
        splits_path = Path(splits).resolve() if splits else bars_path.parent / "splits.csv"
        return f"bars:{bars_path}|splits:{splits_path}"
    root = cfg.data.sample_dir if cfg.data.source == "sample" else cfg.data.store_dir
    return f"{cfg.data.source}:{cfg.path(root).resolve()}"


def config_digest(cfg: Config) -> str:
    """The config's contents and folder (its relative paths are read from there)."""
    return _digest({"config": cfg.model_dump(mode="json"), "root": str(cfg.root.resolve())})


def trial_key(trial_cfg: Config, start: dt.date, end: dt.date, data: str) -> str:
    """16 hex digits of the trial's whole config (base config + settings), its dates and its data."""
    return _digest({"config": config_digest(trial_cfg), "start": str(start), "end": str(end), "data": data})


def sweep_id(grid: Grid, cfg: Config, start: dt.date, end: dt.date, data: str) -> str:
    """``<grid file>-<start>-<end>-<8 hex of the base config and the data>``: the sweep's folder name.

    The grid's values are not in it: a grid given one more value reuses the trials already done."""
    return f"{grid.name}-{start:%Y%m%d}-{end:%Y%m%d}-{_digest({'config': config_digest(cfg), 'data': data}, 8)}"


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    """What a worker needs to run one trial (picklable: it crosses to worker processes and machines)."""

    key: str
    settings: dict[str, Any]
    cfg: Config
    start: dt.date
    end: dt.date


# ---------------------------------------------------------------------------------------- the store


def clean(x: Any) -> Any:
    """NaN / inf -> None, recursively, so a record is strict JSON."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    return x


class TrialStore:
    """``trials.jsonl``: one JSON line per finished trial, appended, flushed and fsynced.

    A line cut short by a kill is skipped when read (and the next line starts on a line of its own).
    The last line of a key wins.
    """

    def __init__(self, path: Path):
        self.path = path
        self.skipped = 0          # lines that were not a JSON object (a write cut short)
        self._fh: IO[str] | None = None

    def load(self) -> dict[str, dict]:
        """Key -> its last record."""
        records: dict[str, dict] = {}
        self.skipped = 0
        if not self.path.exists():
            return records
        with open(self.path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    rec = None
                if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
                    self.skipped += 1
                    log.warning("%s line %d is not a trial record (a write cut short?); skipped", self.path, n)
                    continue
                records[rec["key"]] = rec
        return records

    def append(self, record: dict) -> None:
        """Write ``record`` as one line, then flush and fsync (a kill after this keeps it)."""
        fh = self._fh
        if fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torn = self.path.exists() and self.path.stat().st_size > 0 and not self._ends_with_newline()
            fh = self._fh = open(self.path, "a", encoding="utf-8")
            if torn:
                fh.write("\n")
        fh.write(json.dumps(clean(record), allow_nan=False, separators=(",", ":")) + "\n")
        fh.flush()
        os.fsync(fh.fileno())

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
