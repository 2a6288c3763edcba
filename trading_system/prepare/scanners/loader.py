"""Entries of ``scanners:`` -> runnable scanners: built-ins, a user's class, compositions.

``module: builtin:NAME`` takes a class of ``builtin.BUILTINS``; ``package.module:Class`` imports
the module (a user's file on ``PYTHONPATH``) and takes the class, which must subclass
:class:`~trading_system.prepare.scanners.base.Scanner`.  ``all_of`` / ``any_of`` entries run
their parts one after the other on the same night and keep the intersection / union.

Every run goes through :meth:`Bound.run`, which checks what the scanner returned (a
``ScanResult`` of ticker strings that have a bar on the night), drops the rest with a note, and
applies the entry's price and volume floors to the session's bar.
"""

from __future__ import annotations

import dataclasses
import importlib
import time

import pandas as pd

from trading_system.errors import ConfigError
from trading_system.prepare.scanners.base import ScanContext, Scanner, ScanResult
from trading_system.prepare.scanners.builtin import BUILTINS
from trading_system.prepare.scanners.settings import ScannerEntry
from trading_system.vocabulary import SYMBOL_PATTERN


class ScannerLoadError(ConfigError):
    """A scanner's module cannot be imported, its class is missing or is not a ``Scanner``, or its
    params are refused by the class.  Exit 2 for ``prep scan``; a nightly run counts it as a failed
    run of that scanner and goes on."""


@dataclasses.dataclass
class Bound:
    """A scanner ready to run: its entry's name, the instance, and the floors it applies."""

    name: str
    scanner: Scanner
    min_price: float
    max_price: float | None
    min_volume: float

    def run(self, ctx: ScanContext) -> tuple[ScanResult, list[str]]:
        """``setup`` / ``scan`` / ``teardown`` on ``ctx``; the checked, floored result and one note per
        problem with what the scanner returned (symbols dropped).  Exceptions of the scanner propagate.

        Raises:
            TypeError: ``scan`` returned something that is not a ``ScanResult``.
        """
        ctx = ctx.with_params(self.scanner.params)
        start = time.perf_counter()
        if not self.scanner.setup(ctx):
            return ScanResult(symbols=[], skipped=True, execution_time_ms=_ms(start)), []
        try:
            result = self.scanner.scan(ctx)
        finally:
            self.scanner.teardown(ctx)
        if not isinstance(result, ScanResult):
            raise TypeError(f"scan() returned {type(result).__name__}, not a ScanResult")
        symbols, notes = _checked(self.name, list(result.symbols), ctx)
        notes = [*result.notes, *notes]   # a composition's parts' notes come first
        symbols = self._floored(symbols, ctx.last())
        metadata = {s: dict(result.metadata.get(s, {})) for s in symbols}
        return ScanResult(symbols=symbols, metadata=metadata, execution_time_ms=_ms(start)), notes

    def _floored(self, symbols: list[str], last: pd.DataFrame) -> list[str]:
        """``symbols`` whose session bar passes ``min_price`` <= close <= ``max_price`` and volume >= ``min_volume``."""
        if not symbols:
            return symbols
        rows = last.loc[symbols]
        ok = (rows["close"] >= self.min_price) & (rows["volume"] >= self.min_volume)
        if self.max_price is not None:
            ok &= rows["close"] <= self.max_price
        return [s for s, good in zip(symbols, ok.tolist()) if good]


def _checked(name: str, symbols: list, ctx: ScanContext) -> tuple[list[str], list[str]]:
    """Keep the ticker strings that have a bar on the night (once each, in order); note the others."""
    known = set(ctx.symbols)
    seen: set[str] = set()
    kept, bad, unknown = [], [], []
    for s in symbols:
        if not isinstance(s, str) or not SYMBOL_PATTERN.match(s):
            bad.append(repr(s)[:20])
        elif s not in known:
            unknown.append(s)
        elif s not in seen:
            seen.add(s)
            kept.append(s)
    notes = []
    if bad:
        notes.append(f"scanner {name} returned {len(bad)} value(s) that are not tickers (e.g. {', '.join(bad[:3])}); "
                     "they were dropped")
    if unknown:
        notes.append(f"scanner {name} returned {len(unknown)} symbol(s) with no bar on {ctx.session} "
                     f"(e.g. {', '.join(unknown[:3])}); they were dropped")
    return kept, notes


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


def builtin_entry(name: str) -> ScannerEntry:
    """The entry ``prep scan NAME`` runs for a built-in that is not configured: its defaults.

    Raises:
        ConfigError: ``name`` is not a built-in.
    """
    if name not in BUILTINS:
        raise ConfigError(f"no scanner named {name!r} in config.yaml's scanners, and no built-in of that name "
                          f"(built-ins: {', '.join(sorted(BUILTINS))}).")
    return ScannerEntry(name=name, module=f"builtin:{name}")


def find_entry(entries: list[ScannerEntry], name: str) -> ScannerEntry:
    """The configured entry called ``name``, else the built-in of that name with its defaults.

    Raises:
        ConfigError: neither exists.
    """
    for entry in entries:
        if entry.name == name:
            return entry
    return builtin_entry(name)


def bind(entry: ScannerEntry, entries: list[ScannerEntry]) -> Bound:
    """The runnable scanner of ``entry`` (its parts looked up in ``entries`` for a composition).

    Raises:
        ScannerLoadError: see the class.
    """
    from trading_system.prepare.scanners.compose import Composite

    if entry.module is None:
        parts = [bind(find_entry(entries, p.removeprefix("builtin:")) if p.startswith("builtin:")
                      else find_entry(entries, p), entries) for p in entry.parts]
        scanner: Scanner = Composite(parts, every=entry.all_of is not None)
    else:
        cls = _scanner_class(entry)
        try:
            scanner = cls(entry.params)
        except Exception as exc:  # noqa: BLE001 (a user's class: any error is its own)
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            raise ScannerLoadError(f"scanner {entry.name}: {cls.__name__}({entry.params}) failed "
                                   f"({exc.__class__.__name__}: {first_line})") from exc
    defaults = scanner.defaults
    return Bound(name=entry.name, scanner=scanner,
                 min_price=entry.min_price if entry.min_price is not None else defaults.get("min_price") or 0.0,
                 max_price=entry.max_price if entry.max_price is not None else defaults.get("max_price"),
                 min_volume=entry.min_volume if entry.min_volume is not None else defaults.get("min_volume") or 0.0)


def _scanner_class(entry: ScannerEntry) -> type[Scanner]:
    """The class ``entry.module`` names. Raises ScannerLoadError naming what is wrong."""
    assert entry.module is not None
    if entry.module.startswith("builtin:"):
        return BUILTINS[entry.module.removeprefix("builtin:")]
    module_name, class_name = entry.module.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ScannerLoadError(f"scanner {entry.name}: module {module_name!r} cannot be imported ({exc}); "
                               "is its folder on PYTHONPATH?") from exc
    except Exception as exc:  # noqa: BLE001 (a user's module raising at import)
        raise ScannerLoadError(f"scanner {entry.name}: importing module {module_name!r} raised "
                               f"{exc.__class__.__name__}: {exc}") from exc
    cls = vars(module).get(class_name)
    if cls is None:
        raise ScannerLoadError(f"scanner {entry.name}: module {module_name!r} has no {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Scanner)):
        raise ScannerLoadError(f"scanner {entry.name}: {entry.module} is not a Scanner subclass "
                               "(subclass trading_system.prepare.scanners.Scanner)")
    return cls
