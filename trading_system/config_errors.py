"""One sentence for a config.yaml that pydantic refused: the key, the value given, the range."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from trading_system.errors import first_problem

_FRACTION_HINT = "; it is a fraction (0.85 means 85 %), not a percent"


def format_validation_error(err: ValidationError, source: Path, raw: dict | None = None) -> str:
    """One sentence naming the key, the value given and the range it must be in.

    A key of a ``scanners:`` entry is named by the entry's name (``scanners[gappers].colour``),
    and a rule across the whole file (two scanners with one name) is said as it is."""
    p = first_problem(err, top="(top level)")
    if not p.loc:
        return f"{source}: {p.message}; fix it in the config file."
    where = _scanner_where(p.loc, raw) or p.where
    if p.kind == "extra_forbidden":
        return f"{source}: unknown key '{where}'; remove it or check its spelling against config.yaml's comments."
    if p.kind == "missing" or p.kind.startswith("model_"):
        return f"{source}: invalid value for '{where}': {p.message}; fix it in the config file."
    value = p.value
    hint = _FRACTION_HINT if p.ctx.get("le") == 1 and isinstance(value, (int, float)) and value > 1 else ""
    shown = p.shown(hide=p.loc[:1] == ("notify",))  # Apprise URLs hold tokens: never echo them
    return f"{source}: invalid value for '{where}' ({shown}): {p.message}{hint}; fix it in the config file."


def _scanner_where(loc: tuple, raw: dict | None) -> str | None:
    """``scanners[NAME].key`` for a problem inside the ``n``-th scanner entry that has a name; else None."""
    if len(loc) < 2 or loc[0] != "scanners" or not isinstance(loc[1], int) or not isinstance(raw, dict):
        return None
    entries = raw.get("scanners")
    entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
    name = entry.get("name") if isinstance(entry, dict) else None
    if not isinstance(name, str):
        return None
    return ".".join([f"scanners[{name}]", *(str(part) for part in loc[2:])])
