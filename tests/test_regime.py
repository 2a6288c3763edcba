"""The market regime (DESIGN §11, issue 12) on real nights of data/sample: the states and their inputs
recomputed here with plain Python over market_context.parquet, the ETF-proxy fallback (a Polygon key
without indices, a sample without the context file), missing history, ``regime.required``, the effect
on the morning's selection and on the account after execute, and the config checks.

Real facts used (checked below where a test relies on them): on 2020-03-16 the S&P 500 closed 29.5 %
under its 52-week high (VIX 82.7); on 2020-02-27 it closed under its 200-session SMA with the VIX at
39.2; 2019-06-20 and 2019-11-15 were record closes with the VIX at 14.8 and 12.1; on 2021-01-27 the
VIX jumped to 37.2 with the index 2.7 % off its high and over its SMA.  SPY has no split in the sample.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import SAMPLE, Prep, write_config

D = dt.date
#: Calendar days of index history regime_for reads (build.REGIME_DAYS): the EMAs are seeded with the
#: first close of that window, so the hand-made EMAs below read the same window.
WINDOW_DAYS = 550
SMA, HIGH, PCT, VOL = 200, 252, 252, 20           # the defaults of RegimeConfig
EMAS = (8, 21, 50)
CASH_BUFFER = 0.02                                # ExecutionConfig.cash_buffer default
PROXY_SOURCE = "ETF proxies SPY, QQQ, IWM, and SPY's 20-session realised volatility for the VIX"


# ------------------------------------------------------------------ independent arithmetic

@pytest.fixture(scope="module")
def context() -> pd.DataFrame:
    return pd.read_parquet(SAMPLE / "market_context.parquet", columns=["symbol", "date", "close"])


def closes(frame: pd.DataFrame, ticker: str, night: dt.date, days: int = WINDOW_DAYS) -> list[float]:
    """``ticker``'s closes dated in [night - days, night], oldest first, as plain floats."""
    rows = frame[(frame["symbol"] == ticker) & (frame["date"] >= night - dt.timedelta(days=days))
                 & (frame["date"] <= night)].sort_values("date")
    assert rows["date"].iloc[-1] == night, f"no {ticker} close on {night}"
    return [float(c) for c in rows["close"]]


def ema(values: list[float], n: int) -> float:
    """alpha = 2 / (n + 1), seeded with the first value, by explicit recursion."""
    alpha, out = 2.0 / (n + 1), values[0]
    for x in values[1:]:
        out = alpha * x + (1.0 - alpha) * out
    return out


def expected_inputs(index: list[float], vix: list[float]) -> dict[str, float | bool]:
    assert len(index) >= max(SMA, HIGH) and len(vix) >= PCT  # the windows are full on these nights
    close = index[-1]
    sma = sum(index[-SMA:]) / SMA
    fast, mid, slow = (ema(index, n) for n in EMAS)
    last_year = vix[-PCT:]
    return {"close": close, "sma": sma, "above_sma": close > sma, "ema8": fast, "ema21": mid, "ema50": slow,
            "ema_stack": fast > mid > slow, "drawdown": 1.0 - close / max(index[-HIGH:]),
            "vix": vix[-1], "vix_percentile": sum(1 for v in last_year if v <= vix[-1]) / len(last_year)}


def spy_realised_volatility(night: dt.date) -> float:
    """Std (ddof=1) of SPY's last 20 daily log returns to ``night`` x sqrt(252) x 100, from the raw
    sample bars (SPY has no split in the sample, so raw closes are the split-adjusted ones)."""
    splits = pd.read_csv(SAMPLE / "splits.csv", dtype={"symbol": str})
    assert "SPY" not in set(splits["symbol"])
    bars = pd.read_parquet(SAMPLE / "bars.parquet", columns=["symbol", "date", "close"])
    spy = bars[(bars["symbol"] == "SPY") & (bars["date"] <= night)].sort_values("date")
    assert spy["date"].iloc[-1] == night
    last = [float(c) for c in spy["close"].iloc[-(VOL + 1):]]
    returns = [math.log(b / a) for a, b in zip(last, last[1:])]
    mean = sum(returns) / len(returns)
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
    return std * math.sqrt(252) * 100.0


def one_line(output: str, start: str) -> str:
    """The only line of ``output`` that starts with ``start`` (lines re-joined where the console wrapped)."""
    text = " ".join(output.split())
    found = re.findall(re.escape(start) + r".*?(?= plan \S+ written| earnings gate| note:| warning:|$)", text)
    assert len(found) == 1, output
    return found[0].strip()


def assert_one_sentence(output: str) -> None:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in output, output
    assert lines[0].endswith(".") and not re.search(r"\.\s+[A-Z]", lines[0][:-1]), lines[0]


# ------------------------------------------------------------------ prepare / validate / execute, once per module

class Night:
    """One workspace over the sample, one evening; later stages run on demand and every result is kept
    (so a test reading the evening's plan does not depend on whether execute already consumed it)."""

    def __init__(self, folder: Path, evening: str, extra: str):
        # No slippage: these nights measure the regime's exposure, so fills are at the open exactly
        # (the costs have their own tests).
        write_config(folder, "costs: {slippage_bps: 0}\n" + extra)
        self.folder, self.prep = folder, Prep(folder)
        r = self.prep("--as-of", evening, "prepare")
        assert r.exit_code == 0, r.output
        self.prepare_output, self.evening = r.output, self.prep.plan()
        self.morning: dict | None = None
        self.archive: dict | None = None

    def validate(self, as_of: str) -> dict:
        if self.morning is None:
            r = self.prep("--as-of", as_of, "validate")
            assert r.exit_code == 0, r.output
            self.morning = self.prep.plan()
        return self.morning

    def execute(self, as_of: str) -> dict:
        if self.archive is None:
            r = self.prep("--as-of", as_of, "execute")
            assert r.exit_code == 0, r.output
            (path,) = (self.folder / "archived_trades").glob("*.json")
            self.archive = json.loads(path.read_text())
            assert self.archive["status"] == "executed" and not (self.folder / "pending_trades.json").exists()
        return self.archive


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    made: dict[tuple[str, str], Night] = {}

    def night(evening: str, extra: str = "") -> Night:
        if (evening, extra) not in made:
            made[(evening, extra)] = Night(tmp_path_factory.mktemp("night"), evening, extra)
        return made[(evening, extra)]

    return night


# ------------------------------------------------------------------ 1. states and inputs on real nights

@pytest.mark.parametrize("night, state, words", [
    (D(2020, 3, 16), "RISK_OFF", "I:SPX 29.5% under its 252-session high (bear line 20%)"),
    (D(2020, 2, 27), "RISK_OFF", "I:SPX under its 200-session SMA; VIX 39.2 >= 30; 12.0% off its high"),
    (D(2019, 6, 20), "RISK_ON", "I:SPX over its SMA, EMAs stacked 8>21>50, VIX 14.8 < 25"),
    (D(2019, 11, 15), "RISK_ON", "I:SPX over its SMA, EMAs stacked 8>21>50, VIX 12.1 < 25"),
    (D(2021, 1, 27), "NEUTRAL", "I:SPX over its SMA; EMAs stacked; VIX 37.2"),
])
def test_the_regime_of_real_nights_and_its_inputs(nights, context, night, state, words):
    n = nights(f"{night}T20:00")
    regime = n.evening["context"]["regime"]
    want = expected_inputs(closes(context, "I:SPX", night), closes(context, "I:VIX", night))

    # The inputs, as the plan records them, equal the hand-made ones.
    got = regime["inputs"]
    for name in ("close", "sma", "ema8", "ema21", "ema50", "drawdown"):
        assert got[f"I:SPX.{name}"] == pytest.approx(want[name], rel=1e-9, abs=1e-12), name
    assert got["I:SPX.above_sma"] is want["above_sma"] and got["I:SPX.ema_stack"] is want["ema_stack"]
    assert got["vix"] == pytest.approx(want["vix"], rel=1e-12)
    assert got["vix_percentile"] == pytest.approx(want["vix_percentile"], rel=1e-12)

    # The night is what the rules (config_context's defaults) say it is, from the hand-made figures.
    if state == "RISK_OFF" and night == D(2020, 3, 16):
        assert want["drawdown"] >= 0.20
    elif state == "RISK_OFF":
        assert not want["above_sma"] and want["vix"] >= 30 and want["drawdown"] < 0.20
    elif state == "RISK_ON":
        assert want["above_sma"] and want["ema_stack"] and want["vix"] < 25 and want["drawdown"] < 0.10
    else:  # the VIX spike in an uptrend: not RISK_OFF (trend intact), not RISK_ON (VIX >= 25)
        assert want["above_sma"] and want["drawdown"] < 0.10 and want["vix"] >= 25

    assert regime["status"] == "ok" and regime["state"] == state
    assert regime["source"] == "indices I:SPX, I:NDX, I:RUT, I:VIX (sample)"
    assert "; ".join(regime["reasons"]) == words
    exposure, strategy, effect = {"RISK_OFF": (0.5, "BUY_HOLD", "BUY_HOLD only, exposure 50%"),
                                  "NEUTRAL": (0.75, None, "exposure 75%"),
                                  "RISK_ON": (1.0, None, "trades as planned")}[state]
    assert regime["exposure"] == exposure and regime["strategy"] == strategy
    assert one_line(n.prepare_output, "regime:") == f"regime: {state} ({words}): {effect}"


# ------------------------------------------------------------------ 2. a Polygon key without indices

SUBSET = ["AAPL", "MSFT", "JNJ", "KO", "PG", "XOM", "JPM", "WMT", "HD", "PEP", "MRK", "CVX"]
FAST = ("polygon:\n  plan: paid\n  requests_per_minute: 600000\n  backoff_seconds: 0.01\n"
        "  max_backoff_seconds: 0.05\n  max_retries: 3\n  timeout_seconds: 0.5\n")
POLY_NIGHT = D(2021, 4, 19)


@pytest.fixture(scope="module")
def polygon_regimes(tmp_path_factory):
    """The regime of POLY_NIGHT from prepare against the loopback Polygon fake, first with a key not
    entitled to indices (403), then entitled (--force, warm store).  The fake serves the real bars of
    twelve constituents and SPY/QQQ, so the cold fill stays short."""
    from fakes.polygon_server import PolygonFake

    folder = tmp_path_factory.mktemp("polygon")
    names = pd.read_csv(SAMPLE / "constituents.csv", dtype=str)
    names[names["symbol"].isin(SUBSET)].to_csv(folder / "constituents.csv", index=False)
    bars = pd.read_parquet(SAMPLE / "bars.parquet")
    (folder / "config.yaml").write_text(
        f"data:\n  source: polygon\n  sample_dir: {SAMPLE}\n  store_dir: {folder / 'store'}\n"
        f"universe:\n  constituents_file: {folder / 'constituents.csv'}\n" + FAST)
    out = {}
    with PolygonFake(bars=bars[bars["symbol"].isin([*SUBSET, "SPY", "QQQ"])]) as fake, pytest.MonkeyPatch.context() as mp:
        mp.setenv("POLYGON_API_KEY", "test-key")
        mp.setenv("POLYGON_BASE_URL", fake.url)
        prep = Prep(folder)
        fake.indices_entitled = False
        r = prep("--as-of", f"{POLY_NIGHT}T20:00", "prepare")
        assert r.exit_code == 0, r.output
        out["proxies"] = (prep.plan()["context"]["regime"], r.output, fake.count("/v2/aggs/ticker/I%3A", 403))
        fake.indices_entitled = True
        fake.requests.clear()
        r = prep("--as-of", f"{POLY_NIGHT}T20:00", "prepare", "--force")
        assert r.exit_code == 0, r.output
        out["indices"] = (prep.plan()["context"]["regime"], r.output, fake.count("/v2/aggs/ticker/I%3A", 200))
    return out


@pytest.mark.slow
def test_a_key_without_indices_uses_the_etf_proxies_and_spy_realised_volatility(polygon_regimes):
    regime, output, refused = polygon_regimes["proxies"]
    assert refused >= 1
    assert regime["status"] == "ok"
    assert regime["source"] == f"{PROXY_SOURCE} (the key is not entitled to Polygon's indices)"
    assert regime["inputs"]["vix"] == pytest.approx(spy_realised_volatility(POLY_NIGHT), rel=1e-9)
    assert not any(k.startswith("I:") for k in regime["inputs"])
    bars = pd.read_parquet(SAMPLE / "bars.parquet", columns=["symbol", "date", "close"])
    spy = bars[(bars["symbol"] == "SPY") & (bars["date"] <= POLY_NIGHT)].sort_values("date")["close"].tolist()
    assert regime["inputs"]["SPY.close"] == spy[-1]
    assert regime["inputs"]["SPY.sma"] == pytest.approx(sum(spy[-SMA:]) / SMA, rel=1e-12)
    assert one_line(output, "regime:").startswith(f"regime: {regime['state']} (SPY over its SMA")


@pytest.mark.slow
def test_a_key_with_indices_reads_the_indices(polygon_regimes, context):
    regime, output, answered = polygon_regimes["indices"]
    assert answered == 4  # I:SPX, I:NDX, I:RUT, I:VIX
    assert regime["status"] == "ok" and regime["source"] == "indices I:SPX, I:NDX, I:RUT, I:VIX (polygon)"
    assert regime["inputs"]["vix"] == closes(context, "I:VIX", POLY_NIGHT)[-1]
    assert regime["inputs"]["I:SPX.close"] == closes(context, "I:SPX", POLY_NIGHT)[-1]
    assert one_line(output, "regime:").startswith("regime: RISK_ON (I:SPX over its SMA")


# ------------------------------------------------------------------ 3. no market_context.parquet

@pytest.fixture(scope="module")
def bare_sample(tmp_path_factory) -> Path:
    """A copy of data/sample without market_context.parquet."""
    folder = tmp_path_factory.mktemp("bare") / "sample"
    folder.mkdir()
    for f in SAMPLE.iterdir():
        if f.name != "market_context.parquet":
            shutil.copy(f, folder / f.name)
    assert not (folder / "market_context.parquet").exists() and (folder / "bars.parquet").exists()
    return folder


def bare_workspace(folder: Path, sample: Path, extra: str = "") -> Prep:
    (folder / "config.yaml").write_text(f"data:\n  sample_dir: {sample}\n"
                                        f"universe:\n  constituents_file: {sample / 'constituents.csv'}\n" + extra)
    return Prep(folder)


def test_without_the_context_file_the_regime_uses_the_proxies(tmp_path, bare_sample):
    prep = bare_workspace(tmp_path, bare_sample)
    r = prep("--as-of", "2021-04-19T20:00", "prepare")
    assert r.exit_code == 0, r.output
    regime = prep.plan()["context"]["regime"]
    assert regime["status"] == "ok" and regime["state"] == "RISK_ON"
    assert regime["source"] == (f"{PROXY_SOURCE} (the index bars could not be read (no index bars: "
                                f"{bare_sample / 'market_context.parquet'} not found))")
    assert regime["inputs"]["vix"] == pytest.approx(spy_realised_volatility(D(2021, 4, 19)), rel=1e-9)
    assert {k.split(".")[0] for k in regime["inputs"] if "." in k} == {"SPY", "QQQ"}  # the sample has no IWM bars


def test_too_little_proxy_history_is_unavailable_and_the_night_goes_on(tmp_path, bare_sample):
    # The sample's bars start 2019-01-02: on 2019-06-19 SPY has 116 sessions, short of the 200-session SMA.
    prep = bare_workspace(tmp_path, bare_sample)
    r = prep("--as-of", "2019-06-19T20:00", "prepare")
    assert r.exit_code == 0, r.output
    lines = [line for line in r.output.splitlines() if "regime" in line]
    assert lines == ["regime: unavailable (SPY lacks the history for SMA)"], r.output
    plan = prep.plan()
    regime = plan["context"]["regime"]
    assert regime["status"] == "unavailable" and regime["state"] is None and regime["note"] == "SPY lacks the history for SMA"
    assert regime["exposure"] == 1.0 and regime["strategy"] is None and regime["source"].startswith(PROXY_SOURCE)
    assert regime["inputs"]["SPY.sma"] is None and regime["inputs"]["SPY.ema50"] is not None
    assert plan["target_session"] == "2019-06-20"

    # regime.required: exit 1, one sentence, and the plan (and the scan) of the night before untouched.
    plan_before = (tmp_path / "pending_trades.json").read_bytes()
    scan_before = (tmp_path / "data" / "scan_results.json").read_bytes()
    bare_workspace(tmp_path, bare_sample, "regime: {required: true}\n")
    r = prep("--as-of", "2019-06-20T20:00", "prepare")
    assert r.exit_code == 1, r.output
    assert_one_sentence(r.output)
    assert "market regime is unavailable for session 2019-06-20 (SPY lacks the history for SMA)" in r.output
    assert "regime.required is true" in r.output
    assert (tmp_path / "pending_trades.json").read_bytes() == plan_before
    assert (tmp_path / "data" / "scan_results.json").read_bytes() == scan_before
    assert not (tmp_path / "archived_trades").exists() or not list((tmp_path / "archived_trades").iterdir())


def test_required_regime_unavailable_writes_no_plan(tmp_path, bare_sample):
    prep = bare_workspace(tmp_path, bare_sample, "regime: {required: true}\n")
    r = prep("--as-of", "2019-06-19T20:00", "prepare")
    assert r.exit_code == 1, r.output
    assert_one_sentence(r.output)
    assert "regime.required is true, so no plan was written" in r.output
    assert not (tmp_path / "pending_trades.json").exists()


# ------------------------------------------------------------------ 4. the effect, end to end

def invested(archive: dict) -> tuple[float, float, float, dict[str, float]]:
    """(equity before, invested after, cash after, dollars per symbol) of an executed first run."""
    ex = archive["execution"]
    before, after = ex["account_before"], ex["account_after"]
    assert before["cash"] == before["equity"]  # a fresh simulated account: nothing held before
    bought: dict[str, float] = {}
    for o in ex["orders"]:
        assert o["side"] == "buy" and o["status"] == "filled"
        bought[o["symbol"]] = bought.get(o["symbol"], 0.0) + o["filled_qty"] * o["filled_avg_price"]
    assert after["equity"] - after["cash"] == pytest.approx(sum(bought.values()), abs=0.05)
    return before["equity"], after["equity"] - after["cash"], after["cash"], bought


def assert_invested(archive: dict, weights: dict[str, float], exposure: float) -> None:
    equity, total, cash, bought = invested(archive)
    slack = max(10.0, 0.001 * equity)                  # the minimum order: smaller deltas are not sent
    assert set(bought) == {s for s, w in weights.items() if w > 0}
    assert total == pytest.approx(exposure * (1 - CASH_BUFFER) * equity, abs=slack * len(weights))
    assert cash == pytest.approx((1 - exposure * (1 - CASH_BUFFER)) * equity, abs=slack * len(weights))
    for symbol, w in weights.items():
        assert bought[symbol] == pytest.approx(w * exposure * (1 - CASH_BUFFER) * equity, abs=slack)


RISK_OFF = ("2020-03-16T20:00", "2020-03-17T09:00", "2020-03-17T09:31")
NEUTRAL = ("2021-01-27T20:00", "2021-01-28T09:00", "2021-01-28T09:31")
OFF = "regime: {enabled: false}\n"


def test_a_risk_off_night_trades_buy_hold_at_half_exposure(nights):
    n = nights(RISK_OFF[0])
    vr = n.validate(RISK_OFF[1])["validation_results"]
    assert vr["selected_strategy"] == "BUY_HOLD" and vr["exposure"] == 0.5
    reason = vr["selection_reason"]
    assert reason.startswith("regime RISK_OFF (I:SPX 29.5% under its 252-session high (bear line 20%)) imposes "
                             "BUY_HOLD; the gate had chosen ")
    assert reason.endswith("; regime RISK_OFF: exposure 50 % of the investable equity")
    assert re.search(r"the gate had chosen (TACTICAL|SPEC|ASYM):", reason)  # the regime overruled a contestant
    weights = vr["validated_strategies"]["BUY_HOLD"]["validated_allocations"]
    assert weights == {"SPY": 0.6, "QQQ": 0.4}
    assert_invested(n.execute(RISK_OFF[2]), weights, 0.5)


def test_a_neutral_night_keeps_the_gates_choice_at_three_quarters(nights):
    n = nights(NEUTRAL[0])
    vr = n.validate(NEUTRAL[1])["validation_results"]
    off = nights(NEUTRAL[0], OFF).validate(NEUTRAL[1])["validation_results"]
    assert off["exposure"] == 1.0 and "regime" not in off["selection_reason"]
    assert vr["selected_strategy"] == off["selected_strategy"] != "BUY_HOLD"
    assert vr["exposure"] == 0.75 and "imposes" not in vr["selection_reason"]
    assert vr["selection_reason"] == f"{off['selection_reason']}; regime NEUTRAL: exposure 75 % of the investable equity"
    weights = vr["validated_strategies"][vr["selected_strategy"]]["validated_allocations"]
    assert_invested(n.execute(NEUTRAL[2]), weights, 0.75)


def test_regime_off_trades_the_gates_own_choice_fully_invested(nights):
    on = nights(RISK_OFF[0]).validate(RISK_OFF[1])["validation_results"]
    gate_choice = re.search(r"the gate had chosen (\w+):", on["selection_reason"]).group(1)
    n = nights(RISK_OFF[0], OFF)
    regime = n.evening["context"]["regime"]
    assert regime["status"] == "off" and regime["exposure"] == 1.0 and regime["strategy"] is None
    assert one_line(n.prepare_output, "regime:") == "regime: off (regime.enabled is false)"
    vr = n.validate(RISK_OFF[1])["validation_results"]
    assert vr["selected_strategy"] == gate_choice != "BUY_HOLD"
    assert vr["exposure"] == 1.0 and "regime" not in vr["selection_reason"]
    assert on["selection_reason"].endswith(f"the gate had chosen {gate_choice}: {vr['selection_reason']}; "
                                           "regime RISK_OFF: exposure 50 % of the investable equity")
    assert_invested(n.execute(RISK_OFF[2]), vr["validated_strategies"][gate_choice]["validated_allocations"], 1.0)


# ------------------------------------------------------------------ 5. config checks

@pytest.mark.parametrize("extra, words", [
    ("regime: {ema_windows: [21, 8, 50]}\n", "regime.ema_windows must be three increasing windows in [2, 400] "
                                             "(21, 8, 50 given)"),
    ("regime: {ema_windows: [8, 8, 50]}\n", "regime.ema_windows must be three increasing windows"),
    ("regime: {risk_on_vix: 35}\n", "regime.risk_on_vix 35 is above risk_off_vix 30"),
    ("regime: {risk_on_vix: 25, risk_off_vix: 20}\n", "regime.risk_on_vix 25 is above risk_off_vix 20"),
    ("regime: {exposure_neutral: 1.5}\n", "invalid value for 'regime.exposure_neutral' (1.5)"),
    ("regime: {exposure_risk_off: 1.5}\n", "invalid value for 'regime.exposure_risk_off' (1.5)"),
])
def test_bad_regime_settings_are_exit_2_one_sentence(tmp_path, extra, words):
    write_config(tmp_path, extra)
    r = Prep(tmp_path)("--as-of", "2021-04-19T20:00", "prepare")
    assert r.exit_code == 2, r.output
    assert_one_sentence(r.output)
    assert words in r.output and "config.yaml" in r.output
    assert not (tmp_path / "pending_trades.json").exists()


# ------------------------------------------------------------------ a stale VIX


def test_a_vix_without_a_close_on_the_session_is_not_a_verdict(tmp_path):
    """On 2021-01-27 (NEUTRAL: VIX 37.2), a context file that lacks that night's VIX close must not
    give a verdict from the 2021-01-26 close (23.0, which would read RISK_ON at full exposure)."""
    from trading_system.config import Config
    from trading_system.marketdata.sample import SampleSource
    from trading_system.prepare.context.build import regime_for

    for f in SAMPLE.iterdir():
        if f.name != "market_context.parquet":
            shutil.copy(f, tmp_path / f.name)
    frame = pd.read_parquet(SAMPLE / "market_context.parquet")
    night = D(2021, 1, 27)
    frame[~((frame["symbol"] == "I:VIX") & (frame["date"] == night))].to_parquet(tmp_path / "market_context.parquet")
    record = regime_for(Config(), SampleSource(tmp_path), night)
    assert record.status == "unavailable" and "I:VIX" in (record.note or "")
