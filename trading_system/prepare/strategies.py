"""The four candidate strategies and their Sharpe-weighted allocations (DESIGN §5).

| strategy | holdings                                                   |
| -------- | ---------------------------------------------------------- |
| BUY_HOLD | the benchmarks, fixed weights (``StrategiesConfig.benchmarks``) |
| TACTICAL | top ``top_core`` CORE picks                                |
| SPEC     | TACTICAL + top ``top_spec`` SPEC picks                     |
| ASYM     | SPEC + top ``top_asym`` ASYM picks                         |

Weights are fractions of the account summing to 1.  Pure functions on the scan frame
that :func:`trading_system.prepare.scoring.score_universe` returns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trading_system.config import StrategiesConfig
from trading_system.vocabulary import STRATEGY_NAMES, StrategyName

__all__ = ["STRATEGY_NAMES", "rank", "sharpe_weights", "build_strategies", "cap_note", "cap_notes"]


_TOLERANCE = 1e-12


def _columns(scan: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """(symbols, pick, bucket, score, sharpe) of a scan frame as numpy arrays, in its row order."""
    return (np.asarray(scan.index, dtype=object).astype(str), scan["pick"].to_numpy(dtype=bool),
            scan["bucket"].to_numpy(dtype=object), scan["score"].to_numpy(dtype=float),
            scan["sharpe"].to_numpy(dtype=float))


def _top(columns: tuple[np.ndarray, ...], bucket: str, n: int) -> np.ndarray:
    """Row positions of the top ``n`` picks of ``bucket``, best first (the order :func:`rank` gives)."""
    symbols, pick, buckets, score, sharpe = columns
    rows = np.flatnonzero(pick & (buckets == bucket))
    if n <= 0 or not len(rows):
        return rows[:0]
    # lexsort: last key is primary.  Negate for descending; a NaN sorts last either way.
    order = np.lexsort((symbols[rows], np.nan_to_num(-sharpe[rows], nan=np.inf),
                        np.nan_to_num(-score[rows], nan=np.inf)))
    return rows[order][:n]


def rank(scan: pd.DataFrame, bucket: str, n: int) -> list[str]:
    """The top ``n`` picks of one bucket, best first (DESIGN §5 "Top").

    Requires: ``scan`` indexed by symbol with columns ``pick`` (bool), ``bucket`` (str),
    ``score`` (0-100) and ``sharpe``.
    Sets: the symbols with ``pick`` True and ``bucket == bucket``, ordered by score
    descending, ties by Sharpe descending, then by symbol ascending; at most ``n`` of them
    (fewer when the bucket has fewer picks; ``[]`` when ``n <= 0``).
    """
    if n <= 0 or scan.empty:
        return []
    columns = _columns(scan)
    return [str(s) for s in columns[0][_top(columns, bucket, n)]]


def _capped_weights(sharpes: np.ndarray, cap: float) -> np.ndarray:
    """The weights of :func:`sharpe_weights` for an array of Sharpe ratios (n >= 1)."""
    n = len(sharpes)
    raw = np.maximum(np.nan_to_num(np.asarray(sharpes, dtype=float), nan=0.0), 0.0)
    equal = np.full(n, 1.0 / n)
    if raw.sum() <= 0.0 or n * cap < 1.0 - _TOLERANCE:
        return equal
    weights = raw / raw.sum()
    capped = np.zeros(n, dtype=bool)
    while True:
        over = (weights > cap + _TOLERANCE) & ~capped
        if not over.any():
            break
        capped |= over
        free = ~capped
        remaining = 1.0 - cap * capped.sum()
        free_raw = raw[free].sum()
        weights = np.where(capped, cap, 0.0)
        if not free.any():                          # n * cap == 1: every name sits at the cap
            break
        if free_raw > 0.0:
            weights[free] = remaining * raw[free] / free_raw
        else:
            weights[free] = remaining / free.sum()
    return weights / weights.sum()                  # float dust only


def sharpe_weights(sharpes: pd.Series, cap: float) -> pd.Series:
    """Allocation proportional to max(sharpe, 0), each weight capped (DESIGN §5).

    Requires: ``sharpes`` indexed by symbol (annualised Sharpe ratios; NaN counts as 0),
    ``cap`` a fraction in (0, 1].
    Sets: a float Series with the same index and order, named ``weight``, summing to 1:

    - w_i = max(sharpe_i, 0) / sum(max(sharpe, 0));
    - every weight above ``cap`` is set to ``cap`` and the excess is spread over the names
      still under the cap pro rata to their weights; repeated until none exceeds it (the
      result is the water-filling solution: capped names at ``cap``, the others in
      proportion to their Sharpe).  When the names under the cap all have weight 0 (their
      Sharpe is <= 0) the excess is spread equally over them, so the weights still sum to
      1 without breaking the cap;
    - all Sharpes <= 0 (or NaN): equal weights 1/n;
    - ``n * cap < 1``: the cap cannot hold (n weights of at most ``cap`` cannot sum to 1),
      so the weights are equal, 1/n each, the allocation nearest to honouring it;
    - no names: an empty Series.
    """
    if len(sharpes) == 0:
        return pd.Series([], index=sharpes.index, dtype=float, name="weight")
    return pd.Series(_capped_weights(sharpes.to_numpy(dtype=float), cap), index=sharpes.index, name="weight")


def build_strategies(scan: pd.DataFrame, cfg: StrategiesConfig) -> dict[str, dict[str, float]]:
    """The four strategies of DESIGN §5: ``{name: {symbol: weight}}`` for every STRATEGY_NAMES.

    Requires: ``scan`` as :func:`trading_system.prepare.scoring.score_universe` returns it
    (indexed by symbol; ``pick``, ``bucket``, ``score``, ``sharpe``).
    Sets:

    - BUY_HOLD = ``cfg.benchmarks`` (fixed weights, in config order);
    - TACTICAL = the top ``cfg.top_core`` CORE picks; SPEC = those + the top
      ``cfg.top_spec`` SPEC picks; ASYM = those + the top ``cfg.top_asym`` ASYM picks
      (so TACTICAL ⊂ SPEC ⊂ ASYM, each a prefix of the next);
    - the benchmark symbols are never picks of TACTICAL / SPEC / ASYM;
    - weights by :func:`sharpe_weights` with ``cfg.weight_cap``; each dict's insertion
      order is the rank order (CORE names first, then SPEC, then ASYM); weights sum to 1;
    - a strategy with no names (no picks in its buckets) is ``{}``: it has nothing to
      hold, and validation treats it as no contestant.

    Works on the scan's columns as numpy arrays (pandas filtering costs ~1 ms a call).
    """
    columns = _columns(scan)
    keep = ~np.isin(columns[0], [str(s) for s in cfg.benchmarks])
    candidates = tuple(c[keep] for c in columns)
    core = list(_top(candidates, "CORE", cfg.top_core))
    spec = list(_top(candidates, "SPEC", cfg.top_spec))
    asym = list(_top(candidates, "ASYM", cfg.top_asym))
    symbols, sharpe = candidates[0], candidates[4]
    out: dict[str, dict[str, float]] = {StrategyName.BUY_HOLD: {s: float(w) for s, w in cfg.benchmarks.items()}}
    for name, rows in ((StrategyName.TACTICAL, core), (StrategyName.SPEC, core + spec),
                       (StrategyName.ASYM, core + spec + asym)):
        if not rows:
            out[name] = {}
            continue
        weights = _capped_weights(sharpe[rows], cfg.weight_cap)
        out[name] = {str(s): float(w) for s, w in zip(symbols[rows], weights)}
    return out


def cap_note(name: str, names: int, cap: float) -> str | None:
    """What a strategy of ``names`` names says when they cannot honour the weight cap, else None.

    ``names`` weights of at most ``cap`` cannot sum to 1 when ``names * cap < 1`` (3 names at a
    0.20 cap): :func:`sharpe_weights` then gives equal weights, 1/n each, the allocation nearest
    to the cap.  An empty strategy holds nothing, so it breaks no cap.
    Example: ``"ASYM: 3 names cannot honour the 20 % cap; weights are equal, 33.3 % each"``.
    """
    if names <= 0 or names * cap >= 1.0 - _TOLERANCE:
        return None
    if names == 1:
        return f"{name}: 1 name cannot honour the {cap * 100:g} % cap; it holds 100 %"
    return (f"{name}: {names} names cannot honour the {cap * 100:g} % cap; "
            f"weights are equal, {100.0 / names:.1f} % each")


def cap_notes(strategies: dict[str, dict[str, float]], cfg: StrategiesConfig) -> dict[str, str]:
    """``{name: note}`` for every strategy of :func:`build_strategies` whose names cannot honour
    ``cfg.weight_cap`` (see :func:`cap_note`).  BUY_HOLD's fixed benchmark weights are not capped."""
    notes = {name: cap_note(name, len(weights), cfg.weight_cap)
             for name, weights in strategies.items() if name != StrategyName.BUY_HOLD}
    return {name: note for name, note in notes.items() if note}
