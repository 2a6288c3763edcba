"""`prep prepare` / `prep validate` / `prep universe` with data.source: polygon against the loopback fake.

The plan must equal the one the sample source makes for the same --as-of (the fake serves
the same real bars), cold, warm and under injected faults; every refusal is one sentence,
the right exit code and no plan.

A cold fill (276 grouped-daily requests, ~1.5 CPU-s) is made only by the tests whose subject is
the cold fill: the cold night and its faults.  Tests about a later night (the warm night, the free
plan's D+1 rule and morning prices, a morning without a price source, a watchlist name grouped daily
leaves out) start from a copy of the store (or the whole workspace) of a paid key after the evening
of 2021-04-16 (``filled``, made once per module): what a real workspace has the day after a night.
The bars earlier nights stored are seeded from the sample's, as traded (``seeded``: the bars the
fake serves); the nights under test fetch their own sessions, the splits and the ticker types over
HTTP.  The split learnt after the bars were stored starts from such a store through 2020-08-27.
"""

import datetime as dt
import json
import shutil

import pandas as pd
import pytest

from conftest import SAMPLE, Prep, write_config
from trading_system import sessions
from trading_system.marketdata.store import BarStore
from trading_system.prepare.discovery import HISTORY_DAYS

EVENING, MORNING = "2021-04-19T20:00", "2021-04-20T09:00"
SCAN, TARGET = dt.date(2021, 4, 19), dt.date(2021, 4, 20)
FAST = ("polygon:\n  plan: {plan}\n  requests_per_minute: 600000\n  backoff_seconds: 0.01\n"
        "  max_backoff_seconds: 0.05\n  max_retries: 3\n  timeout_seconds: 0.5\n")


def reset(fake, monkeypatch):
    """The fake without faults, requests or knobs set; the Polygon key and URL set, no Alpaca keys."""
    fake.faults.clear()
    fake.requests.clear()
    fake.published_through = fake.history_from = fake.splits_known_through = None
    fake.snapshot_entitled, fake.snapshot_session, fake.page_size = True, TARGET, 1000
    monkeypatch.setenv("POLYGON_API_KEY", "test-key")
    monkeypatch.setenv("POLYGON_BASE_URL", fake.url)
    for name in ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "ALPACA_DATA_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def clean(fake, monkeypatch):
    reset(fake, monkeypatch)


def polygon_workspace(folder, plan="paid", universe=""):
    (folder / "config.yaml").write_text(
        f"data:\n  source: polygon\n  sample_dir: {SAMPLE}\n  store_dir: {folder / 'store'}\n"
        f"universe:\n  constituents_file: {SAMPLE / 'constituents.csv'}\n{universe}" + FAST.format(plan=plan))
    return Prep(folder)


@pytest.fixture
def poly(tmp_path):
    return polygon_workspace(tmp_path)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Plans the sample source makes: {as_of: plan after prepare}, and the validated plan of MORNING."""
    plans = {}
    for as_of in ("2020-08-28T20:00", "2020-08-31T20:00", "2021-04-16T20:00", EVENING):
        folder = tmp_path_factory.mktemp("sample")
        write_config(folder)
        p = Prep(folder)
        assert p("--as-of", as_of, "prepare").exit_code == 0
        plans[as_of] = p.plan()
        if as_of == EVENING:
            assert p("--as-of", MORNING, "validate").exit_code == 0
            plans[MORNING] = p.plan()
            plans["scan"] = json.loads((folder / "data" / "scan_results.json").read_text())
    return plans


@pytest.fixture(scope="module")
def filled(tmp_path_factory, fake, reference, sample_bars):
    """The workspace of a paid key after the night of 2021-04-16: its store held the other sessions of that
    night's window (``seeded``), the night fetched 2021-04-16, the splits and the ticker types over HTTP and
    made the plan of that evening (checked against the sample source's).  Made once per module;
    ``from_filled`` copies it.  (The cold fill is the subject of ``test_cold_prepare_and_validate_equal_the_sample``
    and ``test_faults_are_retried_and_the_plan_is_unchanged``.)"""
    folder = tmp_path_factory.mktemp("filled")
    with pytest.MonkeyPatch.context() as mp:
        reset(fake, mp)
        p = seeded(folder, sample_bars, dt.date(2021, 4, 16))
        r = p("--as-of", "2021-04-16T20:00", "prepare")
        assert r.exit_code == 0, r.output
        assert [q for q, _, _ in fake.requests if "/grouped/" in q] == [
            "/v2/aggs/grouped/locale/us/market/stocks/2021-04-16"]
        assert fake.count("/v3/reference/splits") >= 1 and fake.count("/v3/reference/tickers") >= 1
        assert decided(p.plan()) == decided(reference["2021-04-16T20:00"])
        fake.requests.clear()
    return folder


def from_filled(filled, folder, plan="paid", universe="", whole=False):
    """A workspace in ``folder`` whose store is a copy of ``filled``'s (sessions through 2021-04-16);
    ``whole``: its plan, data/ and logs too (the same workspace, the next night)."""
    if whole:
        shutil.copytree(filled, folder, dirs_exist_ok=True)
    else:
        shutil.copytree(filled / "store", folder / "store", dirs_exist_ok=True)
    return polygon_workspace(folder, plan=plan, universe=universe)


def seeded(folder, bars: pd.DataFrame, night: dt.date):
    """A workspace in ``folder`` whose store holds ``bars`` (the sample's real bars, raw: as traded, as the
    fake serves them) of every session of the scan window of ``night`` but ``night`` itself, and nothing else
    (no splits, no ticker types, no meta.json): the bars earlier nights stored, before any later split was known."""
    first = night - dt.timedelta(days=HISTORY_DAYS)
    BarStore(folder / "store").write_bars(bars[(bars["date"] >= first) & (bars["date"] < night)])
    return polygon_workspace(folder)


def decided(plan: dict) -> dict:
    """What a plan decides: everything but where the data came from (source name, config, price sources,
    the regime's source label, which names the data source)."""
    out = {k: v for k, v in plan.items() if k not in ("data_source", "config")}
    if out.get("context"):
        out["context"] = json.loads(json.dumps(out["context"]))
        out["context"]["regime"].pop("source")
    if out.get("validation_results"):
        vr = json.loads(json.dumps(out["validation_results"]))
        for check in vr["checks"].values():
            check.pop("price_source")
        out["validation_results"] = vr
    return out


def sessions_read(scan: dt.date) -> int:
    return len(sessions.sessions_between(scan - dt.timedelta(days=HISTORY_DAYS), scan))


@pytest.mark.slow
def test_cold_prepare_and_validate_equal_the_sample(poly, fake, reference):
    r = poly("--as-of", EVENING, "prepare")
    assert r.exit_code == 0, r.output
    plan = poly.plan()
    assert plan["data_source"] == "polygon" and decided(plan) == decided(reference[EVENING])
    grouped = [(p, q) for p, q, _ in fake.requests if "/grouped/" in p]
    assert len(grouped) == sessions_read(SCAN) == 276
    assert all(q == {"adjusted": "false"} for _, q in grouped)
    assert not any("2021-04-02" in p for p, _ in grouped)  # Good Friday: never asked for
    indices = [p for p, _, _ in fake.requests if p.startswith("/v2/aggs/ticker/I%3A")]
    assert len(indices) == 4   # the regime's I:SPX, I:NDX, I:RUT and I:VIX, once each
    assert len(fake.requests) - len(indices) <= sessions_read(SCAN) + 5
    snap = json.loads((poly.folder / "data" / "universe" / "universe_2021-04-19.json").read_text())
    assert snap["data_source"] == "polygon" and snap["source"].startswith("constituents file")
    assert snap["steps"][1]["step"] == "type in ['CS', 'ETF']" and "skipped" not in snap["steps"][1]
    assert json.loads((poly.folder / "data" / "scan_results.json").read_text())["tickers"] == reference["scan"]["tickers"]

    r = poly("--as-of", MORNING, "validate")
    assert r.exit_code == 0, r.output
    morning = poly.plan()
    assert decided(morning) == decided(reference[MORNING])
    assert {c["price_source"] for c in morning["validation_results"]["checks"].values()} == {"polygon:snapshot.lastTrade"}


@pytest.mark.slow
def test_warm_night_fetches_only_the_new_session(tmp_path, filled, fake, reference):
    poly = from_filled(filled, tmp_path, whole=True)   # the night of 2021-04-16 (see ``filled``)
    assert decided(poly.plan()) == decided(reference["2021-04-16T20:00"])
    r = poly("--as-of", EVENING, "prepare")
    assert r.exit_code == 0, r.output
    # The bars: one grouped daily and the splits (the regime's index bars are asked apart, once each).
    bars = [p for p, _, _ in fake.requests if not p.startswith("/v2/aggs/ticker/I%3A")]
    assert len(bars) <= 3, bars
    assert sorted(p.split("/")[4] for p, _, _ in fake.requests if p.startswith("/v2/aggs/ticker/I%3A")) == [
        "I%3ANDX", "I%3ARUT", "I%3ASPX", "I%3AVIX"]
    assert [p for p, _, _ in fake.requests if "/grouped/" in p] == ["/v2/aggs/grouped/locale/us/market/stocks/2021-04-19"]
    assert decided(poly.plan()) == decided(reference[EVENING])


@pytest.mark.slow
def test_faults_are_retried_and_the_plan_is_unchanged(poly, fake, reference):
    fake.inject("429", "/stocks/2021-04-19", retry_after="0")
    fake.inject("429", "/stocks/2021-04-16")
    fake.inject("500", "/stocks/2021-03-01")
    fake.inject("timeout", "/stocks/2020-12-01")
    fake.inject("drop", "/stocks/2020-06-01")
    fake.inject("500", "/stocks/2020-06-01")  # twice in a row on one session
    fake.inject("429", "/v3/reference/splits")
    fake.inject("drop", "/v3/reference/tickers")
    fake.inject("500", "/v2/snapshot/")
    assert poly("--as-of", EVENING, "prepare").exit_code == 0
    assert poly("--as-of", MORNING, "validate").exit_code == 0
    assert decided(poly.plan()) == decided(reference[MORNING])
    assert fake.faults == [] and fake.count(status=429) == 3 and fake.count(status=500) == 3
    assert fake.count("/grouped/", 200) == sessions_read(SCAN)


def test_retries_that_run_out_leave_no_plan(poly, fake):
    fake.inject("500", "/grouped/", times=4)
    r = poly("--as-of", EVENING, "prepare")
    assert r.exit_code == 1
    assert "did not deliver grouped daily bars for session 2021-04-19 after 4 attempts" in r.output
    assert "Traceback" not in r.output and not (poly.folder / "pending_trades.json").exists()


def test_stale_data_is_refused_naming_the_session(poly, fake):
    fake.published_through = dt.date(2021, 4, 16)  # a paid key asked too early
    r = poly("--as-of", EVENING, "prepare")
    assert r.exit_code == 1 and "session 2021-04-19" in r.output and "not published" in r.output
    assert not (poly.folder / "pending_trades.json").exists()
    assert not (poly.folder / "data" / "scan_results.json").exists()


@pytest.mark.slow
def test_free_plan_never_asks_for_today_and_works_after_midnight(tmp_path, filled, fake, reference):
    free = polygon_workspace(tmp_path, plan="free")   # an empty store: refused before any request
    r = free("--as-of", EVENING, "prepare")
    assert r.exit_code == 1 and "session 2021-04-19 are not published yet" in r.output and "D+1" in r.output
    assert fake.requests == [] and not (tmp_path / "pending_trades.json").exists()
    free = from_filled(filled, tmp_path, plan="free")   # after midnight: 2021-04-19 is asked for
    r = free("--as-of", "2021-04-20T00:30", "prepare")
    assert r.exit_code == 0, r.output
    plan = free.plan()
    assert plan["plan_id"] == reference[EVENING]["plan_id"] and plan["strategies"] == reference[EVENING]["strategies"]
    assert fake.count("/v2/snapshot/") == 0 and fake.count("/grouped/locale/us/market/stocks/2021-04-19", 200) == 1


@pytest.mark.slow
def test_free_plan_prices_come_from_alpaca(tmp_path, filled, fake, alpaca, reference, monkeypatch):
    monkeypatch.setenv("ALPACA_API_KEY", alpaca.key)
    monkeypatch.setenv("ALPACA_SECRET_KEY", alpaca.secret)
    monkeypatch.setenv("ALPACA_DATA_BASE_URL", alpaca.url)
    alpaca.session = TARGET
    free = from_filled(filled, tmp_path, plan="free")
    assert free("--as-of", "2021-04-20T00:30", "prepare").exit_code == 0
    r = free("--as-of", MORNING, "validate")
    assert r.exit_code == 0, r.output
    checks = free.plan()["validation_results"]["checks"]
    assert {c["price_source"] for c in checks.values()} == {"alpaca:latest_trade"}
    assert fake.count("/v2/snapshot/") == 0 and alpaca.count("/v2/stocks/trades/latest", 200) == 1
    ref = reference[MORNING]["validation_results"]
    assert {s: c["current_score"] for s, c in checks.items()} == {s: c["current_score"] for s, c in ref["checks"].items()}
    assert free.plan()["validation_results"]["selected_strategy"] == ref["selected_strategy"]


@pytest.mark.slow
def test_without_any_price_source_validate_stops_and_nothing_is_selected(tmp_path, filled, fake):
    """Issue 8 item 2: no source answering is a data failure, never "reject every pick -> BUY_HOLD"."""
    poly = from_filled(filled, tmp_path)
    fake.snapshot_entitled = False  # and no Alpaca keys
    assert poly("--as-of", EVENING, "prepare").exit_code == 0
    before = (poly.folder / "pending_trades.json").read_text()
    r = poly("--as-of", MORNING, "validate")
    assert r.exit_code == 1, r.output
    assert "no pre-market price source answered" in r.output and "Traceback" not in r.output
    assert (poly.folder / "pending_trades.json").read_text() == before
    assert poly.plan()["validation_results"] is None


@pytest.mark.parametrize("key, code, words, requests", [
    ("wrong-key", 2, "Polygon does not know POLYGON_API_KEY (401: Unknown API Key)", 1),
    (None, 2, "POLYGON_API_KEY is not set", 0),
])
def test_key_problems_are_one_sentence(poly, fake, monkeypatch, key, code, words, requests):
    if key is None:
        monkeypatch.delenv("POLYGON_API_KEY")
    else:
        monkeypatch.setenv("POLYGON_API_KEY", key)
    r = poly("--as-of", EVENING, "prepare")
    assert r.exit_code == code and words in r.output and "Traceback" not in r.output
    assert len(fake.requests) == requests and not (poly.folder / "pending_trades.json").exists()


def test_history_outside_the_plan_is_refused(poly, fake):
    fake.history_from = dt.date(2021, 1, 4)
    r = poly("--as-of", EVENING, "prepare")
    assert r.exit_code == 2 and "does not reach back to grouped daily bars for session 2020-" in r.output
    assert not (poly.folder / "pending_trades.json").exists()


@pytest.mark.slow
def test_a_split_learnt_after_the_bars_were_stored_is_applied_on_read(tmp_path, fake, reference, sample_bars):
    # The store holds the bars as traded through 2020-08-27: the first night fetches 2020-08-28 and, cold, the
    # splits, while AAPL's and TSLA's 2020-08-31 splits are not announced yet; the second night learns them.
    poly = seeded(tmp_path, sample_bars, dt.date(2020, 8, 28))
    fake.splits_known_through = dt.date(2020, 8, 28)
    assert poly("--as-of", "2020-08-28T20:00", "prepare").exit_code == 0
    assert [p for p, _, _ in fake.requests if "/grouped/" in p] == [
        "/v2/aggs/grouped/locale/us/market/stocks/2020-08-28"]
    assert decided(poly.plan()) == decided(reference["2020-08-28T20:00"])
    fake.splits_known_through = None
    assert poly("--as-of", "2020-08-31T20:00", "prepare").exit_code == 0
    assert decided(poly.plan()) == decided(reference["2020-08-31T20:00"])
    scan = {t["symbol"]: t for t in json.loads((poly.folder / "data" / "scan_results.json").read_text())["tickers"]}
    assert scan["AAPL"]["max_drawdown"] < 0.5  # no -75 % day


def test_universe_chain_top_n_filters_and_watchlist(tmp_path, fake, sample_bars):
    p = polygon_workspace(tmp_path, universe="  generator: top_dollar_volume\n  top_n: 40\n  min_price: 100\n"
                                              "  exclude: [AAPL]\n  watchlist: [F]\n")
    r = p("--as-of", EVENING, "universe")
    assert r.exit_code == 0, r.output
    snap = json.loads((tmp_path / "data" / "universe" / "universe_2021-04-19.json").read_text())
    day = sample_bars[sample_bars["date"] == SCAN].assign(dv=lambda d: d["close"] * d["volume"])
    top = day.sort_values("dv", ascending=False, kind="stable").head(40)
    expected = set(top.loc[top["close"] >= 100, "symbol"]) - {"AAPL"} | {"F", "SPY", "QQQ"}
    assert set(snap["symbols"]) == expected and "top 40 by dollar volume" in snap["source"]
    assert [s["step"] for s in snap["steps"]] == ["generator", "close >= 100", "type in ['CS', 'ETF']", "exclude",
                                                  "watchlist + benchmarks"]
    assert fake.count("/grouped/") == 1 and not (tmp_path / "pending_trades.json").exists()


@pytest.mark.slow
def test_a_watchlist_name_missing_from_grouped_daily_is_backfilled_per_ticker(tmp_path, filled, fake, reference,
                                                                              sample_bars):
    """Grouped daily leaves out HBI (as it leaves out OTC names) and HBI joins the watchlist: its whole window
    comes from one per-ticker request.  The store is ``filled``'s without HBI: what the nights before stored
    with grouped daily never listing it."""
    p = from_filled(filled, tmp_path, universe="  watchlist: [HBI]\n")
    bars_path = tmp_path / "store" / "bars.parquet"
    stored = pd.read_parquet(bars_path)
    assert (stored["symbol"] == "HBI").any()
    stored[stored["symbol"] != "HBI"].to_parquet(bars_path, index=False)
    fake._grouped_cache.clear()
    saved = fake._by_date
    # as grouped daily leaves out OTC names: every session's rows but HBI's (one pass over the raw bars)
    fake._by_date = dict(list(fake.raw[fake.raw["symbol"] != "HBI"].groupby("date")))
    assert fake._by_date.keys() == saved.keys()
    try:
        assert p("--as-of", EVENING, "prepare").exit_code == 0
    finally:
        fake._by_date = saved
        fake._grouped_cache.clear()
    assert fake.count("/v2/aggs/ticker/HBI/") == 1
    assert fake.count("/grouped/") == 1   # 2021-04-19 only, without HBI: the rest of HBI came from that request
    window = dt.date(2021, 4, 19) - dt.timedelta(days=HISTORY_DAYS)
    cols = ["date", "open", "high", "low", "close", "volume"]
    hbi = pd.read_parquet(bars_path).query("symbol == 'HBI'")[cols]
    real = sample_bars[(sample_bars["symbol"] == "HBI") & (sample_bars["date"] >= window)
                       & (sample_bars["date"] <= SCAN)][cols]
    assert len(real) == sessions_read(SCAN)
    assert sorted(hbi.itertuples(index=False)) == sorted(real.itertuples(index=False))
    assert decided(p.plan()) == decided(reference[EVENING])


def test_universe_on_the_sample_source_notes_the_skipped_type_filter(tmp_path, fake):
    write_config(tmp_path, "  generator: top_dollar_volume\n  top_n: 25\n  exclude: [SPY]\n")
    r = Prep(tmp_path)("--as-of", EVENING, "universe")
    assert r.exit_code == 0, r.output
    snap = json.loads((tmp_path / "data" / "universe" / "universe_2021-04-19.json").read_text())
    assert snap["data_source"] == "sample" and "SPY" not in snap["symbols"] and "QQQ" in snap["symbols"]
    assert snap["steps"][1]["skipped"] == "the sample source has no ticker reference data"
    assert len(fake.requests) == 0


@pytest.mark.slow
def test_a_data_failure_at_0900_is_not_a_liquidation(tmp_path, filled, fake, alpaca, monkeypatch):
    """Issue 8 item 2: over validation.max_unpriced_fraction of the picks unpriced -> exit 1, plan
    left unvalidated; under it, the unpriced few are rejected with the reason and the rest trade.
    The evening warns when the morning will have no price source."""
    free = from_filled(filled, tmp_path, plan="free")
    r = free("--as-of", "2021-04-20T00:30", "prepare")
    assert r.exit_code == 0 and "warning:" in r.output and "ALPACA_API_KEY" in r.output
    monkeypatch.setenv("ALPACA_API_KEY", alpaca.key)
    monkeypatch.setenv("ALPACA_SECRET_KEY", alpaca.secret)
    monkeypatch.setenv("ALPACA_DATA_BASE_URL", alpaca.url)
    alpaca.session = TARGET
    plan = free.plan()
    picks = sorted({s for n, st in plan["strategies"].items() if n != "BUY_HOLD" for s in st["allocations"]})
    before = (tmp_path / "pending_trades.json").read_text()
    try:
        alpaca.stale = set(picks[: len(picks) // 3])          # a third of the picks: no trade yet today
        r = free("--as-of", MORNING, "validate")
        assert r.exit_code == 1 and "have no pre-market price" in r.output
        assert "validation.max_unpriced_fraction" in r.output
        assert (tmp_path / "pending_trades.json").read_text() == before
        alpaca.stale = {picks[0]}                             # one pick: a verdict on that pick only
        r = free("--as-of", MORNING, "validate")
        assert r.exit_code == 0, r.output
        checks = free.plan()["validation_results"]["checks"]
        assert checks[picks[0]]["reason"] == "no pre-market price" and not checks[picks[0]]["passed"]
        assert all(c["price"] for s, c in checks.items() if s != picks[0])
    finally:
        alpaca.stale = set()


def test_an_answer_in_another_shape_stops_the_night_and_nothing_of_it_is_stored(tmp_path, fake, reference,
                                                                               sample_bars):
    """Synthetic body: the real grouped-daily answer of 2021-04-19 with every bar's ``o`` taken out (as a
    changed schema or a proxy's page would come back).  The night stops with one sentence and nothing of
    that session reaches the store, so the next night asks for it again and gets the real answer."""
    poly = seeded(tmp_path, sample_bars, SCAN)
    real = json.loads(fake._grouped(str(SCAN), {"adjusted": "false"})[1])
    bad = {**real, "results": [{k: v for k, v in bar.items() if k != "o"} for bar in real["results"]]}
    fake._grouped_cache[(SCAN, True)] = json.dumps(bad).encode()
    try:
        r = poly("--as-of", EVENING, "prepare")
    finally:
        fake._grouped_cache.pop((SCAN, True), None)
    assert r.exit_code == 1, r.output
    assert "Polygon answered the bars of session 2021-04-19 in an unexpected shape (no o on any bar)" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "pending_trades.json").exists()
    assert SCAN not in set(pd.read_parquet(tmp_path / "store" / "bars.parquet")["date"])
    fake.requests.clear()
    assert poly("--as-of", EVENING, "prepare").exit_code == 0
    assert [p for p, _, _ in fake.requests if "/grouped/" in p] == ["/v2/aggs/grouped/locale/us/market/stocks/2021-04-19"]
    assert decided(poly.plan()) == decided(reference[EVENING])


def test_a_long_fill_writes_the_store_as_it_goes(tmp_path, fake, monkeypatch):
    """With ``FLUSH_SECONDS`` at 0 every session fetched is in ``bars.parquet`` before the next is asked for:
    what a fill keeps when it is killed (SIGKILL skips the ``finally`` that writes the rest).  The fake notes
    the store file's stamp and dates when each grouped request arrives (a fill of nine sessions)."""
    from trading_system.config import load_config
    from trading_system.marketdata import polygon_source

    monkeypatch.setattr(polygon_source, "FLUSH_SECONDS", 0.0)
    cfg = load_config(polygon_workspace(tmp_path).folder / "config.yaml")
    source = polygon_source.PolygonSource(cfg, sessions.Clock(dt.datetime(2021, 4, 19, 20, 0, tzinfo=sessions.ET)))
    path = tmp_path / "store" / "bars.parquet"
    seen: list[tuple[str, int, set]] = []
    grouped = fake._grouped

    def noting(date_text, query):
        written = path.exists()
        on_disk = set(pd.read_parquet(path, columns=["date"])["date"]) if written and len(seen) == 5 else set()
        seen.append((date_text, path.stat().st_mtime_ns if written else 0, on_disk))
        return grouped(date_text, query)

    monkeypatch.setattr(fake, "_grouped", noting)
    window = sessions.sessions_between(dt.date(2021, 4, 1), dt.date(2021, 4, 14))
    assert source.fill(window[0], window[-1]) == len(window) == 9
    assert [d for d, _, _ in seen] == [str(s) for s in window]
    stamps = [m for _, m, _ in seen]
    assert all(a < b for a, b in zip(stamps, stamps[1:]))   # a write between every two requests
    assert set(window[:5]) <= seen[5][2]
    assert set(pd.read_parquet(path, columns=["date"])["date"]) == set(window)
