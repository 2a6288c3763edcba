"""Performance figures against hand-worked values."""

import datetime as dt
import math

import pandas as pd
import pytest

from trading_system import metrics


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
