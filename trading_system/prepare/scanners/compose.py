"""``all_of`` / ``any_of``: a scanner made of others, run on the same night.

``all_of`` keeps the symbols every part found, in the first part's order; ``any_of`` keeps the
symbols any part found, in the order the parts found them.  Each part applies its own floors.
A find's metadata holds each part's figures under ``"<part>.<key>"``.  A part's own ``max_symbols``
does not apply inside a composition (its finds are intersected or merged whole); the composition's
``max_symbols`` caps the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trading_system.prepare.scanners.base import ScanContext, Scanner, ScanResult

if TYPE_CHECKING:
    from trading_system.prepare.scanners.loader import Bound


class Composite(Scanner):
    """The intersection (``every``) or the union of its parts' finds."""

    def __init__(self, parts: list[Bound], every: bool):
        super().__init__()
        self.parts, self.every = parts, every

    def window(self) -> int:
        return max(p.scanner.window() for p in self.parts)

    def scan(self, ctx: ScanContext) -> ScanResult:
        runs = [(p.name, p.run(ctx)) for p in self.parts]
        found: list[tuple[str, ScanResult]] = [(name, result) for name, (result, _) in runs]
        if self.every:
            common = set.intersection(*(set(r.symbols) for _, r in found))
            symbols = [s for s in found[0][1].symbols if s in common]
        else:
            symbols = list(dict.fromkeys(s for _, r in found for s in r.symbols))
        metadata = {s: {f"{name}.{k}": v for name, r in found for k, v in r.metadata.get(s, {}).items()}
                    for s in symbols}
        return ScanResult(symbols=symbols, metadata=metadata, notes=[n for _, (_, notes) in runs for n in notes])
