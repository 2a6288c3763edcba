"""Performance figures against hand-worked values, and against empyrical on real equity curves."""

import datetime as dt
import math

import pandas as pd
import pytest

from trading_system.review import metrics


def test_max_drawdown_of_spy_in_the_2020_crash(sample_bars):
    spy = sample_bars[(sample_bars.symbol == "SPY") & (sample_bars.date >= dt.date(2020, 1, 2))
                      & (sample_bars.date <= dt.date(2020, 6, 30))].set_index("date")["close"]
    # peak close 338.34 on 2020-02-19, trough 222.95 on 2020-03-23 (real bars)
    assert metrics.max_drawdown(spy) == pytest.approx(1 - 222.949997 / 338.339996, rel=1e-9)


# The curves below are synthetic on purpose: small hand-made numbers whose figures can be worked out on paper.

def test_cagr_counts_calendar_years():
    curve = pd.Series([100.0, 121.0], index=[dt.date(2019, 1, 1), dt.date(2021, 1, 1)])  # 731 days
    assert metrics.cagr(curve) == pytest.approx(1.21 ** (365.25 / 731) - 1)
    assert metrics.total_return(curve) == pytest.approx(0.21)


def test_sharpe_and_volatility_by_hand():
    curve = pd.Series([100.0, 101.0, 98.98, 101.9494])  # returns +1 %, -2 %, +3 %
    r = [0.01, -0.02, 0.03]
    mean = sum(r) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / 2)
    assert metrics.annual_volatility(curve) == pytest.approx(std * math.sqrt(252))
    assert metrics.sharpe_ratio(curve) == pytest.approx(mean / std * math.sqrt(252))
    assert metrics.sharpe_ratio(pd.Series([5.0, 5.0, 5.0])) == 0.0


def test_turnover_is_the_lesser_of_purchases_and_sales():
    # bought 300k, sold 200k over half a year (126 sessions) on 100k average: 2x a half-year, 4x a year
    assert metrics.annual_turnover(300_000, 200_000, 100_000, 126) == pytest.approx(4.0)
    assert math.isnan(metrics.annual_turnover(1, 1, 100, 0))


# --- cross-check against empyrical (empyrical-reloaded), on real closes used as equity curves ----------


@pytest.mark.parametrize("symbol, start, end", [
    ("SPY", dt.date(2019, 1, 2), dt.date(2021, 4, 21)),     # the whole sample, 580 sessions
    ("QQQ", dt.date(2019, 1, 2), dt.date(2021, 4, 21)),
    ("SPY", dt.date(2020, 1, 2), dt.date(2020, 12, 31)),    # the 2020 crash and recovery
])
def test_metrics_agree_with_empyrical_on_real_closes(sample_bars, symbol, start, end):
    """SPY and QQQ (no split in the sample) real closes, as an equity curve, against empyrical's
    functions on the same daily returns.  Conventions, each checked below:

    * volatility and Sharpe: the same formulas (std ddof=1, x sqrt(252)): equal;
    * risk-free rate: ours is annual (divided by 252 inside), empyrical's a daily rate;
    * max drawdown: empyrical's is a negative number, ours a positive fraction;
    * CAGR: ours counts calendar years (days / 365.25), empyrical counts 252 sessions a year;
      with ``annualization`` set to sessions per calendar year of this curve they agree.
    """
    import empyrical   # here, not at the top: only the worker that runs these tests pays its import (~0.7 s)

    f = sample_bars[(sample_bars.symbol == symbol) & (sample_bars.date >= start) & (sample_bars.date <= end)]
    curve = f.set_index("date")["close"]
    returns = metrics.daily_returns(curve)
    assert len(returns) == len(curve) - 1 > 200
    assert returns.tolist() == pytest.approx((curve / curve.shift(1) - 1).iloc[1:].tolist(), abs=1e-15)

    assert metrics.annual_volatility(curve) == pytest.approx(empyrical.annual_volatility(returns), abs=1e-9)
    assert metrics.sharpe_ratio(curve) == pytest.approx(empyrical.sharpe_ratio(returns), abs=1e-9)
    assert metrics.sharpe_ratio(curve, risk_free_rate=0.02) == pytest.approx(
        empyrical.sharpe_ratio(returns, risk_free=0.02 / 252), abs=1e-9)
    assert metrics.max_drawdown(curve) == pytest.approx(-empyrical.max_drawdown(returns), abs=1e-9)

    days = (pd.Timestamp(curve.index[-1]) - pd.Timestamp(curve.index[0])).days
    sessions_a_year = len(returns) * 365.25 / days
    assert metrics.cagr(curve) == pytest.approx(
        empyrical.annual_return(returns, annualization=sessions_a_year), abs=1e-9)
    # With empyrical's default (252 sessions a year) the two differ, by the calendar: not a bug.
    assert 1e-5 < abs(metrics.cagr(curve) - empyrical.annual_return(returns)) < 0.01
