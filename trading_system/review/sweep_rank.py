"""``prep sweep``'s ranking: by the Sharpe ratio of each trial's system curve (net of the backtest's
costs), up to the holdout date when there is one; the sessions after it are measured apart, and
BUY_HOLD on the same data is the first row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any, Iterable

import pandas as pd

from trading_system.review import metrics
from trading_system.review.backtest_result import BUY_HOLD, SYSTEM
from trading_system.review.sweep import COST_KEYS


def curve(record: dict, account: str) -> pd.Series:
    """An account's equity curve of a trial record (dollars by session date)."""
    eq = record["equity"]
    return pd.Series(eq[account], index=[dt.date.fromisoformat(d) for d in eq["session"]], dtype=float)


def split_curve(equity: pd.Series, holdout: dt.date | None) -> tuple[pd.Series, pd.Series | None]:
    """(ranked part, out-of-sample part): the marks up to ``holdout``, and the marks from the last of
    them (the starting equity of the sessions after it) to the end.  No holdout: (the whole curve, None)."""
    if holdout is None:
        return equity, None
    inside = equity[[d <= holdout for d in equity.index]]
    return inside, equity.iloc[len(inside) - 1:]


def curve_figures(equity: pd.Series, risk_free_rate: float) -> dict[str, float | None]:
    """The figures a curve alone gives (``metrics``): total return, CAGR, volatility, Sharpe, max drawdown."""
    return {
        "total_return": metrics.total_return(equity),
        "cagr": metrics.cagr(equity),
        "volatility": metrics.annual_volatility(equity),
        "sharpe": metrics.sharpe_ratio(equity, risk_free_rate),
        "max_drawdown": metrics.max_drawdown(equity),
        "end_equity": float(equity.iloc[-1]),
    }


def _whole_run(figures: dict) -> dict[str, float | None]:
    """Turnover and costs of the whole run from the backtest's own figures (None when it has none)."""
    cost = next((figures[k] for k in COST_KEYS if figures.get(k) is not None), None)
    return {"turnover": figures.get("turnover"), "costs": cost}


@dataclasses.dataclass
class Row:
    """One line of the result table: a trial (or BUY_HOLD) and its figures on the ranked span."""

    key: str
    settings: dict[str, Any]
    status: str                                    # ok | failed
    figures: dict[str, float | None]               # curve_figures on the ranked span, turnover, costs
    out_of_sample: dict[str, float | None] | None  # curve_figures after the holdout date
    error: str | None = None


def _row(record: dict, account: str, holdout: dt.date | None) -> Row:
    """A trial's (or BUY_HOLD's) figures on the ranked span; with a holdout, its costs are those paid on
    each side of it (turnover stays the whole run's) and its out-of-sample figures are set."""
    rf = record.get("risk_free_rate", 0.0)
    ranked, after = split_curve(curve(record, account), holdout)
    figures = {**curve_figures(ranked, rf), **_whole_run(record["figures"].get(account, {}))}
    if after is None:
        return Row(key=record["key"], settings=record["settings"], status="ok", figures=figures, out_of_sample=None)
    paid = (record.get("costs_paid") or {}).get(account)
    cut = len(ranked) - 1
    figures["costs"] = paid[cut] - paid[0] if paid else None
    oos = {**curve_figures(after, rf), "costs": paid[-1] - paid[cut] if paid else None}
    return Row(key=record["key"], settings=record["settings"], status="ok", figures=figures, out_of_sample=oos)


def sharpe_of(figures: dict[str, float | None] | None) -> float | None:
    """The figures' Sharpe ratio, None when there is none or it is not finite (under two returns)."""
    s = (figures or {}).get("sharpe")
    return s if s is not None and math.isfinite(s) else None


def _by_sharpe(figures: dict[str, float | None] | None, key: str) -> tuple[bool, float, str]:
    """Sort key: highest Sharpe first, no Sharpe last, ties by trial key (a stable, repeatable order)."""
    s = sharpe_of(figures)
    return (s is None, -(s or 0.0), key)


def rank(records: Iterable[dict], holdout: dt.date | None) -> tuple[list[Row], list[Row]]:
    """(successful trials by Sharpe on the ranked span, best first; failed trials)."""
    ok, failed = [], []
    for rec in records:
        if rec.get("status") == "ok":
            ok.append(_row(rec, SYSTEM, holdout))
        else:
            failed.append(Row(key=rec["key"], settings=rec["settings"], status="failed", figures={},
                              out_of_sample=None, error=rec.get("error")))
    return sorted(ok, key=lambda r: _by_sharpe(r.figures, r.key)), failed


def buy_hold(records: list[dict], best_key: str | None, holdout: dt.date | None) -> tuple[Row | None, bool]:
    """BUY_HOLD on the same sessions, from the trials' own BUY_HOLD curves: (its row, whether every trial's
    BUY_HOLD was the same).  When a swept setting changes BUY_HOLD (the cash buffer, the benchmarks), the
    best trial's is shown."""
    ok = [r for r in records if r.get("status") == "ok"]
    if not ok:
        return None, True
    same = all(r["equity"][BUY_HOLD] == ok[0]["equity"][BUY_HOLD] for r in ok)
    chosen = ok[0] if same else next((r for r in ok if r["key"] == best_key), ok[0])
    row = _row(chosen, BUY_HOLD, holdout)
    row.key, row.settings = BUY_HOLD, {}
    return row, same


def oos_rank(rows: list[Row]) -> int | None:
    """Where the best trial on the ranked span lands among all of them on the sessions after the holdout
    (1 = still the best); None without a holdout."""
    if not rows or rows[0].out_of_sample is None:
        return None
    after = sorted(rows, key=lambda r: _by_sharpe(r.out_of_sample, r.key))
    return 1 + [r.key for r in after].index(rows[0].key)
