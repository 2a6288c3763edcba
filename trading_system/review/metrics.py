"""Performance figures of an equity curve: CAGR, volatility, Sharpe, maximum drawdown, turnover.

Pure functions on a ``pd.Series`` of account equity in dollars indexed by session date
(one mark per session, oldest first; the first mark is the starting equity).  Returns
and fractions are plain fractions (0.23, not 23 %).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

PERIODS_PER_YEAR = 252


def daily_returns(equity: pd.Series) -> pd.Series:
    """Simple returns E_t / E_{t-1} - 1 between consecutive marks (one fewer than the marks)."""
    return equity.pct_change().iloc[1:]


def total_return(equity: pd.Series) -> float:
    """E_end / E_start - 1."""
    return float(equity.iloc[-1] / equity.iloc[0] - 1.0)


def cagr(equity: pd.Series) -> float:
    """Compound annual growth rate: (E_end / E_start) ** (365.25 / calendar days) - 1.

    Source: the standard geometric mean return (CFA Institute, *Quantitative Investment
    Analysis*, "compound annual growth rate"), with years counted in calendar days from
    the first mark's date to the last one's.  NaN for a curve spanning no time.
    """
    days = (pd.Timestamp(equity.index[-1]) - pd.Timestamp(equity.index[0])).days
    if days <= 0 or equity.iloc[0] <= 0:
        return math.nan
    return float((equity.iloc[-1] / equity.iloc[0]) ** (365.25 / days) - 1.0)


def annual_volatility(equity: pd.Series, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """std(daily returns, ddof=1) x sqrt(periods_per_year): the usual annualisation of
    a standard deviation of i.i.d. returns (the same one DESIGN §4 uses for a ticker).  NaN under 2 returns."""
    r = daily_returns(equity)
    return float(r.std(ddof=1) * math.sqrt(periods_per_year)) if len(r) > 1 else math.nan


def sharpe_ratio(equity: pd.Series, risk_free_rate: float = 0.0, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """Annualised Sharpe ratio: mean(r - rf / periods) / std(r, ddof=1) x sqrt(periods).

    Source: W. F. Sharpe, "The Sharpe Ratio", Journal of Portfolio Management 21(1), 1994
    (ex-post ratio of mean excess return to its standard deviation), annualised by
    sqrt(periods) as in A. Lo, "The Statistics of Sharpe Ratios", FAJ 58(4), 2002, for
    i.i.d. returns.  ``risk_free_rate`` is annual.  0 when the returns never vary; NaN under 2 returns.
    """
    r = daily_returns(equity)
    if len(r) < 2:
        return math.nan
    std = r.std(ddof=1)
    if std == 0 or not np.isfinite(std):
        return 0.0
    return float((r - risk_free_rate / periods_per_year).mean() / std * math.sqrt(periods_per_year))


def max_drawdown(equity: pd.Series) -> float:
    """Largest peak-to-trough fall: max over t of 1 - E_t / max(E_0..E_t), a positive fraction.

    Source: M. Magdon-Ismail and A. Atiya, "Maximum Drawdown", Risk 17(10), 2004.
    """
    values = equity.to_numpy(dtype=float)
    peaks = np.maximum.accumulate(values)
    return float(np.max(1.0 - values / peaks)) if len(values) else math.nan


def annual_turnover(bought: float, sold: float, average_equity: float, sessions: int,
                    periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """Portfolio turnover rate a year: min(purchases, sales) / average equity, annualised.

    Source: the SEC's definition for fund prospectuses (Form N-1A, Item 13(a), instruction
    4(d): "the lesser of purchases or sales of portfolio securities for the fiscal year
    divided by the monthly average of the value of the portfolio securities"), with the
    average over the session marks and the year scaled from ``sessions`` sessions.
    Dollars in, a fraction out (1.0 = the whole account replaced once a year).
    """
    if sessions <= 0 or average_equity <= 0:
        return math.nan
    return float(min(bought, sold) / average_equity * periods_per_year / sessions)


def summary(equity: pd.Series, bought: float = 0.0, sold: float = 0.0, risk_free_rate: float = 0.0) -> dict:
    """Every figure above for one curve, as plain floats (JSON-ready)."""
    sessions = len(equity) - 1
    return {
        "start_equity": float(equity.iloc[0]),
        "end_equity": float(equity.iloc[-1]),
        "total_return": total_return(equity),
        "cagr": cagr(equity),
        "volatility": annual_volatility(equity),
        "sharpe": sharpe_ratio(equity, risk_free_rate),
        "max_drawdown": max_drawdown(equity),
        "bought": float(bought),
        "sold": float(sold),
        "turnover": annual_turnover(bought, sold, float(equity.mean()), sessions),
    }
