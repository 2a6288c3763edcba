"""The ``scanners:`` list of config.yaml (DESIGN §10), validated at load like every other setting.

Beside ``config`` (not in ``prepare/scanners``) so that loading the configuration imports no stage.

An entry names one scanner and what its finds do::

    scanners:
      - name: gappers                 # unique; how state, stats and the plan name it
        module: builtin:gap           # or my_scanners:BigRange (a class on PYTHONPATH)
        phase: evening                # evening (prepare) | morning (validate)
        action: add                   # add (join the universe) | veto (reject a pick) | report
        max_symbols: 25
        min_volume: 2000000           # the seed's floors: min_price, max_price, min_volume
        params: {min_gap: 0.03}       # the scanner's own criteria
      - name: gap_and_volume
        all_of: [gappers, builtin:volume]

Refused at load (exit 2, one sentence): an unknown key (also inside ``params`` of a built-in),
a ``module`` that is neither ``builtin:NAME`` of a known built-in nor ``package.module:Class``,
an entry with none or more than one of ``module`` / ``all_of`` / ``any_of``, a composition
naming a scanner that is not in the list, ``veto`` on an evening scanner or ``add`` on a
morning one, two entries with one name.  A user module is imported only when a scanner runs:
a nightly run goes on without a scanner whose module fails to import (see ``runner``).

Units: prices in dollars of the session's split-adjusted close; volume in shares of the
session's bar; gaps and changes are fractions (0.02 = 2 %); windows in sessions.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from trading_system.settings_types import Count, Dollars0, Fraction, Strict

#: ``builtin:NAME`` or ``package.module:Class``.
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
MODULE_PATTERN = re.compile(rf"^(builtin:[a-z_]+|{_NAME}(\.{_NAME})*:{_NAME})$")
Window = Annotated[int, Field(ge=2, le=500)]
Ratio = Annotated[float, Field(gt=0, le=1000)]


class GapParams(Strict):
    """``gap``: |open (evening) or pre-market price (morning) / previous close - 1| >= ``min_gap``."""

    min_gap: Fraction = 0.02
    direction: Literal["up", "down", "both"] = "both"


class MomentumParams(Strict):
    """``momentum``: Wilder RSI >= ``min_rsi``, volume / its mean >= ``min_volume_ratio``, close > SMA."""

    rsi_period: Window = 14
    min_rsi: float = Field(70.0, ge=0, le=100)
    volume_window: Window = 20
    min_volume_ratio: Ratio = 2.0
    sma_window: Window = 20


class VolumeParams(Strict):
    """``volume``: volume >= ``min_volume_ratio`` x its mean, |change| >= ``min_change``, off the watchlist."""

    volume_window: Window = 20
    min_volume_ratio: Ratio = 3.0
    min_change: Annotated[float, Field(ge=0, le=1)] = 0.01
    exclude_watchlist: bool = True


class BreakoutParams(Strict):
    """``breakout``: close > the previous ``window``-session high, volume > its mean, close > open."""

    window: Window = 20
    volume_window: Window = 20


class TopDollarVolumeParams(Strict):
    """``top_dollar_volume``: the ``top_n`` names of the session by close x volume (dollars)."""

    top_n: Count = 100


#: Built-in scanner name -> its criteria model.
BUILTIN_PARAMS: dict[str, type[Strict]] = {
    "gap": GapParams, "momentum": MomentumParams, "volume": VolumeParams, "breakout": BreakoutParams,
    "top_dollar_volume": TopDollarVolumeParams,
}


class ScannerEntry(Strict):
    """One entry of ``scanners:``. ``min_price`` / ``max_price`` / ``min_volume`` left out take the
    scanner's own defaults (``gap``: volume >= 1,000,000 and price <= $500, as DESIGN §10)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    module: str | None = None
    all_of: list[str] | None = Field(None, min_length=2)
    any_of: list[str] | None = Field(None, min_length=2)
    enabled: bool = True
    phase: Literal["evening", "morning"] = "evening"
    action: Literal["add", "veto", "report"] | None = None
    timeout_seconds: float = Field(10.0, gt=0, le=600)
    max_symbols: int = Field(50, ge=1, le=5000)
    min_price: Dollars0 | None = None
    max_price: float | None = Field(None, gt=0)
    min_volume: float | None = Field(None, ge=0)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shape(self) -> "ScannerEntry":
        given = [k for k, v in (("module", self.module), ("all_of", self.all_of), ("any_of", self.any_of))
                 if v is not None]
        if len(given) != 1:
            raise ValueError(f"scanner {self.name!r} needs exactly one of module, all_of or any_of "
                             f"({', '.join(given) or 'none'} given)")
        if self.module is not None:
            _check_module(self.name, self.module, self.params)
        elif self.params:
            raise ValueError(f"scanner {self.name!r} composes others: give params to its parts, not to it")
        if self.action == "veto" and self.phase != "morning":
            raise ValueError(f"scanner {self.name!r}: action veto needs phase morning (it rejects picks at validate)")
        if self.action == "add" and self.phase != "evening":
            raise ValueError(f"scanner {self.name!r}: action add needs phase evening (finds join the evening scan)")
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError(f"scanner {self.name!r}: min_price {self.min_price:g} is above max_price "
                             f"{self.max_price:g}")
        return self

    @property
    def what(self) -> str:
        """What its finds do: the ``action`` given, else ``add`` in the evening and ``veto`` in the morning."""
        return self.action or ("add" if self.phase == "evening" else "veto")

    @property
    def parts(self) -> list[str]:
        """The scanners a composition names (``[]`` for a plain scanner)."""
        return list(self.all_of or self.any_of or [])


def _check_module(name: str, module: str, params: dict[str, Any]) -> None:
    """Refuse a malformed module string, an unknown built-in, or a built-in's unknown criterion."""
    if not MODULE_PATTERN.match(module):
        raise ValueError(f"scanner {name!r}: module {module!r} is neither builtin:NAME nor package.module:Class")
    if not module.startswith("builtin:"):
        return
    builtin = module.removeprefix("builtin:")
    if builtin not in BUILTIN_PARAMS:
        raise ValueError(f"scanner {name!r}: there is no built-in scanner {builtin!r} "
                         f"(built-ins: {', '.join(sorted(BUILTIN_PARAMS))})")
    try:
        BUILTIN_PARAMS[builtin].model_validate(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"scanner {name!r}: params.{where}: {err['msg']}") from None


def check_entries(entries: list[ScannerEntry]) -> None:
    """Names unique; every part of a composition is ``builtin:NAME`` or another entry's name, and
    no composition contains itself.

    Raises:
        ValueError: naming the entry (pydantic turns it into the config's one sentence).
    """
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"scanner names must be unique ({', '.join(dupes)} given twice)")
    by_name = {e.name: e for e in entries}
    for e in entries:
        for part in e.parts:
            if part.startswith("builtin:"):
                if part.removeprefix("builtin:") not in BUILTIN_PARAMS:
                    raise ValueError(f"scanner {e.name!r}: there is no built-in scanner {part!r}")
            elif part not in by_name:
                raise ValueError(f"scanner {e.name!r} names {part!r}, which is not in the scanners list")
        _no_cycle(e.name, by_name, [])


def _no_cycle(name: str, by_name: dict[str, ScannerEntry], path: list[str]) -> None:
    if name in path:
        raise ValueError(f"scanner {path[0]!r} contains itself ({' -> '.join([*path, name])})")
    entry = by_name.get(name)
    for part in entry.parts if entry is not None else []:
        _no_cycle(part, by_name, [*path, name])
