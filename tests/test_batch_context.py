"""The backtest's batched context pieces equal the plain computations they replace, to the bit, on real data.

- ``regimes_for`` computes a chunk of nights' regimes at once (one read of the index closes, one EWM
  pass over a frame whose columns are the nights' windows).  Here each night's inputs are recomputed
  the plain way, one pandas ``Series`` per night (``Series.mean``, ``Series.ewm``, ``Series.max``, as
  ``regime.py`` did before the batch existed), over 2019-06 -> 2020-06 of ``market_context.parquet``
  (RISK_ON, NEUTRAL and RISK_OFF nights, the 2020 crash), and must be equal with ``==``.
- ``panel_median`` (the scan's median dollar volume) equals ``np.nanmedian`` on the real sample's
  dollar volumes, short histories included.
"""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import SAMPLE, write_config
from trading_system.prepare.context.build import REGIME_DAYS

D = dt.date
WINDOW_DAYS = REGIME_DAYS  # each night reads the closes of the 550 calendar days to it


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    from trading_system.config import load_config

    return load_config(write_config(tmp_path_factory.mktemp("cfg")))


def plain_inputs(closes: dict[str, pd.Series], night: dt.date, sma: int, emas: tuple[int, int, int],
                 high: int, pct: int) -> dict[str, float | bool | None]:
    """The regime's inputs of ``night`` one pandas Series at a time (the reference)."""
    out: dict[str, float | bool | None] = {}
    for ticker in ("I:SPX", "I:NDX", "I:RUT"):
        s = closes[ticker]
        s = s[(s.index >= night - dt.timedelta(days=WINDOW_DAYS)) & (s.index <= night)]
        last = float(s.iloc[-1])
        avg = float(s.iloc[-sma:].mean()) if len(s) >= sma else None
        e = [float(s.ewm(span=n, adjust=False).mean().iloc[-1]) if len(s) >= n else None for n in emas]
        out.update({f"{ticker}.close": last, f"{ticker}.sma": avg, f"{ticker}.above_sma": None if avg is None else last > avg,
                    f"{ticker}.ema{emas[0]}": e[0], f"{ticker}.ema{emas[1]}": e[1], f"{ticker}.ema{emas[2]}": e[2],
                    f"{ticker}.ema_stack": None if None in e else e[0] > e[1] > e[2],
                    f"{ticker}.drawdown": 1.0 - last / float(s.iloc[-high:].max())})
    vix = closes["I:VIX"]
    vix = vix[(vix.index >= night - dt.timedelta(days=WINDOW_DAYS)) & (vix.index <= night)].dropna()
    window, last = vix.iloc[-pct:], float(vix.iloc[-1])
    out.update({"vix": last, "vix_percentile": float((window <= last).mean())})
    return out


def test_a_chunk_of_nights_regimes_equal_each_night_computed_alone(cfg, sample_source):
    from trading_system import sessions
    from trading_system.prepare.context.build import regime_for, regimes_for

    source = sample_source
    frame = pd.read_parquet(SAMPLE / "market_context.parquet", columns=["symbol", "date", "close"])
    closes = {t: g.set_index("date")["close"].astype(float).sort_index() for t, g in frame.groupby("symbol")}
    nights = sessions.sessions_between(D(2019, 6, 3), D(2020, 6, 30))
    rc = cfg.regime
    batched = [r for i in range(0, len(nights), 32) for r in regimes_for(cfg, source, nights[i:i + 32])]

    states = {r.state for r in batched}
    assert states == {"RISK_ON", "NEUTRAL", "RISK_OFF"}, states       # the window has every state
    for night, record in zip(nights, batched):
        assert record.status == "ok" and record.source.startswith("indices"), (night, record)
        want = plain_inputs(closes, night, rc.sma_window, rc.ema_windows, rc.high_window, rc.vix_percentile_window)
        assert record.inputs == want, night                             # exact: no tolerance
    # and one night at a time (the cron path) gives the same records as the chunk
    for night, record in list(zip(nights, batched))[::20]:
        assert regime_for(cfg, source, night) == record


def test_a_night_without_an_index_close_is_unavailable_in_a_chunk_as_alone(cfg, sample_source):
    """The sample's index file ends on 2021-04-21: in a chunk straddling it, the nights after it
    are unavailable (or fall back to the proxies) exactly as each night alone says."""
    from trading_system import sessions
    from trading_system.prepare.context.build import regime_for, regimes_for

    source = sample_source
    nights = sessions.sessions_between(D(2021, 4, 5), D(2021, 5, 14))
    batched = regimes_for(cfg, source, nights)
    assert {r.status for r in batched} == {"ok", "unavailable"}
    assert batched == [regime_for(cfg, source, n) for n in nights]


def test_panel_median_is_numpys_nanmedian_on_real_dollar_volumes():
    from trading_system.prepare.panels import long_arrays, right_aligned
    from trading_system.prepare.scoring import panel_median

    bars = pd.read_parquet(SAMPLE / "bars.parquet")
    bars = bars[(bars["date"] <= D(2021, 4, 19)) & (bars["date"] >= D(2021, 3, 1))]
    symbols, codes, _days, close, volume = long_arrays(bars)
    for depth in (1, 2, 19, 20):                 # even and odd counts; columns shorter than the depth
        panel = right_aligned(codes, close * volume, len(symbols), depth)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = np.nanmedian(panel, axis=0)
        assert np.array_equal(panel_median(panel), want, equal_nan=True), depth
    empty = np.full((20, 3), np.nan)
    assert np.isnan(panel_median(empty)).all()
