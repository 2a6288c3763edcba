"""`prep doctor` (issue 9 item 1): the pre-flight check, run through the real CLI.

Polygon and Alpaca are the loopback fakes (real HTTP, the project's own clients); the bar store a
test fills is cut from the real bars of data/sample.  Each test asserts the lines (status, check,
sentence), the exit code, and that no key or secret is printed.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from conftest import SAMPLE, Prep
from fakes.alpaca_server import FakeAlpaca
from fakes.alpaca_workspace import prep_env, run_prep, sample_prices
from fakes.polygon_server import PolygonFake
from trading_system import sessions
from trading_system.config import load_config
from trading_system.doctor import FAIL, OK, WARN, brief_checks
from trading_system.doctor.local import disk_checks
from trading_system.marketdata.store import BarStore

POLYGON_KEY = "pk-doctor-0123456789-SECRET"
MORNING = "2021-04-20T09:00"          # the last closed session is 2021-04-19
EVENING = "2021-04-19T20:00"          # free plan: 2021-04-19 is not published yet, so 2021-04-16
LAST_CLOSED, BEFORE = dt.date(2021, 4, 19), dt.date(2021, 4, 16)
POLYGON = ("data:\n  source: polygon\n  sample_dir: {sample}\n  store_dir: store\n"
           "universe:\n  constituents_file: {sample}/constituents.csv\n"
           "polygon:\n  plan: {plan}\n  requests_per_minute: 600000\n  backoff_seconds: 0.01\n"
           "  max_backoff_seconds: 0.05\n  max_retries: 3\n  timeout_seconds: 0.5\n  give_up_after_seconds: 2\n")
ALPACA = ("broker:\n  kind: alpaca\n  alpaca:\n    timeout_seconds: 2\n    connect_timeout_seconds: 1\n"
          "    read_attempts: 3\n    retry_wait_seconds: 0.05\n")
ENV_NAMES = ("POLYGON_API_KEY", "POLYGON_BASE_URL", "ALPACA_API_KEY", "ALPACA_SECRET_KEY", "ALPACA_BASE_URL",
             "ALPACA_PAPER", "ALPACA_DATA_BASE_URL", "PREP_AS_OF", "PREP_CONFIG")


@pytest.fixture(scope="module")
def polygon():
    with PolygonFake(key=POLYGON_KEY) as f:
        yield f


@pytest.fixture(scope="module")
def alpaca():
    with FakeAlpaca(sample_prices(), cash=25_000.0, key="PKDOCTORKEY0001", secret="doctor-secret-0001") as f:
        yield f


@pytest.fixture(autouse=True)
def clean(polygon, alpaca, monkeypatch):
    polygon.faults.clear()
    polygon.requests.clear()
    polygon.snapshot_entitled = polygon.indices_entitled = True
    polygon.timeout_sleep = 1.0
    alpaca.account_number = "PA3EXAMPLE01"
    alpaca.account_flags["trading_blocked"] = False
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def workspace(folder: Path, plan: str = "paid", broker: str = "", fill: dt.date | None = None) -> Prep:
    """A polygon workspace; ``fill``: a bar store holding the real bars of that session."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(POLYGON.format(sample=SAMPLE, plan=plan) + broker)
    if fill is not None:
        bars = BarStore(SAMPLE).raw_bars()
        BarStore(folder / "store").write_bars(bars[bars["date"] == fill])
    return Prep(folder)


def use_keys(monkeypatch, polygon=None, alpaca=None, polygon_key=POLYGON_KEY, env_file: Path | None = None):
    """Keys in the environment (monkeypatched, so undone) and, with ``env_file``, the same in .env."""
    env = {}
    if polygon is not None:
        env.update(POLYGON_API_KEY=polygon_key, POLYGON_BASE_URL=polygon.url)
    if alpaca is not None:
        env.update(alpaca.env())
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    if env_file is not None:  # the same values: loading .env then changes nothing in this process
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return env


def sample_alpaca_workspace(folder: Path) -> Prep:
    (folder / "config.yaml").write_text(f"data:\n  sample_dir: {SAMPLE}\nuniverse:\n  constituents_file: "
                                        f"{SAMPLE / 'constituents.csv'}\n" + ALPACA)
    return Prep(folder)


def rows(output: str) -> dict[str, tuple[str, str]]:
    """The report's table as {check: (status, sentence)}; wrapped sentences are joined."""
    table: dict[str, tuple[str, str]] = {}
    last = None
    for line in output.splitlines():
        head = line.split(maxsplit=1)
        if head and head[0] in (OK, WARN, FAIL) and "  " in line.strip():
            status, rest = head[0], head[1]
            name, _, message = rest.partition("  ")
            table[name] = (status, message.strip())
            last = name
        elif last and line.startswith(" ") and line.strip():
            status, message = table[last]
            table[last] = (status, f"{message} {line.strip()}")
        elif not line.strip() or not line.startswith(" "):
            last = None
    return table


def no_secret(text: str, *secrets: str) -> None:
    for s in secrets:
        assert s not in text


def test_valid_keys_everything_ok_exit_0(tmp_path, polygon, alpaca, monkeypatch):
    prep = workspace(tmp_path, broker=ALPACA, fill=LAST_CLOSED)
    use_keys(monkeypatch, polygon, alpaca, env_file=tmp_path / ".env")
    r = prep("--as-of", MORNING, "doctor")
    assert r.exit_code == 0, r.output
    table = rows(r.output)
    assert {s for s, _ in table.values()} == {OK}, r.output
    assert "0 WARN, 0 FAIL" in r.output
    assert table["config"][1] == f"valid: {tmp_path / 'config.yaml'}."
    assert table["polygon key"][1].startswith("POLYGON_API_KEY is set in ")
    assert table["alpaca keys"][1].startswith("ALPACA_API_KEY and ALPACA_SECRET_KEY are set in ")
    assert table["polygon"][1] == f"reachable at {polygon.url}; the key is valid."
    n = len(BarStore(SAMPLE).session_bars(LAST_CLOSED))
    assert table["polygon daily"][1] == f"entitled: grouped daily of session {LAST_CLOSED} has {n:,} bars."
    assert table["polygon snapshot"][1] == "entitled: pre-market prices will come from Polygon's snapshot."
    assert table["polygon indices"][1].startswith("entitled: the regime can read index bars (I:SPX")
    assert table["alpaca"][1] == f"reachable at {alpaca.url}; a paper account, as ALPACA_PAPER=true names it."
    assert table["alpaca status"][1] == "ACTIVE; neither the account nor trading is blocked."
    assert table["alpaca funds"][1].startswith("equity $25,000.00, cash $25,000.00, buying power $50,000.00;")
    assert table["price source"][1] == ("Polygon's snapshot (paid plan), Alpaca's latest trade as the fallback.")
    assert table["bar store"][1].startswith(f"up to date: newest session {LAST_CLOSED},")
    assert table["disk"][1].split(" free ")[0].endswith("GB")
    for name in ("paths.plan", "paths.log_dir", "data.store_dir"):
        assert table[name][1].endswith("is writable."), name
    for name, folder in (("paths.archive_dir", "archived_trades"), ("paths.data_dir", "data")):
        assert table[name][1] == f"{tmp_path / folder} will be created by the first run ({tmp_path} is writable)."
        assert not (tmp_path / folder).exists()  # and the doctor did not make it
    # one request per entitlement, no retry, one bucket's burst: grouped daily, snapshot, index
    assert [p.split("/")[2] for p, _, _ in polygon.requests] == ["aggs", "snapshot", "aggs"]
    assert any("I:SPX" in p or "I%3ASPX" in p for p, _, _ in polygon.requests)
    # the crontab of this checkout, absolute paths, paid plan: prepare at 20:00
    prep_exe = Path(sys.executable).absolute().parent / "prep"
    run = f"{prep_exe} --config {tmp_path / 'config.yaml'}"
    assert "CRON_TZ=America/New_York" in r.output.splitlines()
    assert f"0 20 * * 1-5  {run} prepare" in r.output.splitlines()
    assert f"0 9 * * 1-5   {run} validate && {run} execute" in r.output.splitlines()
    log = (tmp_path / "logs" / "pre_market_prep.log").read_text()
    no_secret(r.output + log, POLYGON_KEY, alpaca.key, alpaca.secret)


def test_subprocess_keys_from_the_shell_only_warn_for_cron(tmp_path, polygon, alpaca):
    """The real console script in a subprocess, keys in its environment but no .env: cron would not see them."""
    workspace(tmp_path, broker=ALPACA, fill=LAST_CLOSED)
    env = prep_env(alpaca, POLYGON_API_KEY=POLYGON_KEY, POLYGON_BASE_URL=polygon.url)
    r = run_prep(tmp_path, env, "--as-of", MORNING, "doctor", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    table = rows(r.stdout)
    assert table["polygon key"][0] == WARN
    assert table["polygon key"][1].startswith("POLYGON_API_KEY is set in this shell but not in ")
    assert "cron starts with a bare environment" in table["alpaca keys"][1]
    assert (Path(sys.executable).parent / "prep").exists()
    no_secret(r.stdout + r.stderr, POLYGON_KEY, alpaca.key, alpaca.secret)


def test_unknown_polygon_key_fails_exit_1(tmp_path, polygon, monkeypatch):
    prep = workspace(tmp_path, fill=LAST_CLOSED)
    use_keys(monkeypatch, polygon, polygon_key="pk-not-a-key-SECRET")
    r = prep("--as-of", MORNING, "doctor")
    assert r.exit_code == 1, r.output
    table = rows(r.output)
    assert table["polygon"] == (FAIL, "unknown key: Polygon does not know POLYGON_API_KEY (401: Unknown API Key); "
                                      "check the key in the environment or .env.")
    assert not {"polygon daily", "polygon snapshot", "polygon indices"} & set(table)  # nothing more was asked
    assert polygon.count() == 1
    assert "prep doctor: 1 check failed: polygon; see the lines above." in r.stderr
    no_secret(r.output, "pk-not-a-key-SECRET", POLYGON_KEY)


def test_snapshot_not_entitled_warns_and_prices_come_from_alpaca(tmp_path, polygon, alpaca, monkeypatch):
    polygon.snapshot_entitled = False
    prep = workspace(tmp_path, fill=LAST_CLOSED)
    use_keys(monkeypatch, polygon, alpaca)
    r = prep("--as-of", MORNING, "doctor")
    assert r.exit_code == 0, r.output
    table = rows(r.output)
    assert table["polygon snapshot"] == (WARN, "not entitled (403): pre-market prices will come from Alpaca.")
    assert table["price source"] == (OK, "Alpaca's latest trade (the key is not entitled to Polygon's snapshot).")


def test_snapshot_not_entitled_and_no_alpaca_keys_fails(tmp_path, polygon, monkeypatch):
    polygon.snapshot_entitled = False
    prep = workspace(tmp_path, fill=LAST_CLOSED)
    use_keys(monkeypatch, polygon)
    r = prep("--as-of", MORNING, "doctor")
    assert r.exit_code == 1, r.output
    status, message = rows(r.output)["price source"]
    assert status == FAIL and message.startswith("the key is not entitled to Polygon's snapshot and ALPACA_API_KEY/")
    assert "validate will stop" in message
    assert "1 check failed: price source" in r.stderr


def test_indices_not_entitled_warns_regime_uses_etf_proxies(tmp_path, polygon, alpaca, monkeypatch):
    polygon.indices_entitled = False
    prep = workspace(tmp_path, fill=LAST_CLOSED)
    use_keys(monkeypatch, polygon, alpaca)
    r = prep("--as-of", MORNING, "doctor")
    assert r.exit_code == 0, r.output
    assert rows(r.output)["polygon indices"] == (
        WARN, "not entitled to index bars (I:SPX, 403): the regime will use the ETF proxies SPY, QQQ and IWM.")


def test_unreachable_polygon_fails_within_seconds(tmp_path, monkeypatch, refused_url):
    prep = workspace(tmp_path, fill=LAST_CLOSED)
    monkeypatch.setenv("POLYGON_API_KEY", POLYGON_KEY)
    monkeypatch.setenv("POLYGON_BASE_URL", refused_url)
    start = time.monotonic()
    r = prep("--as-of", MORNING, "doctor")
    assert time.monotonic() - start < 5
    assert r.exit_code == 1, r.output
    status, message = rows(r.output)["polygon"]
    assert status == FAIL
    assert message == (f"unreachable: the connection to {refused_url} failed (ConnectionError); check the "
                       "network, a proxy or POLYGON_BASE_URL.")
    assert "1 check failed: polygon;" in r.stderr


def test_a_host_that_does_not_answer_fails_after_one_timeout(tmp_path, polygon, monkeypatch):
    polygon.timeout_sleep = 1.0       # the fake holds its answer past the 0.5 s timeout of the config
    polygon.inject("timeout", match="/grouped/", times=5)
    prep = workspace(tmp_path, fill=LAST_CLOSED)
    use_keys(monkeypatch, polygon)
    start = time.monotonic()
    r = prep("--as-of", MORNING, "doctor")
    assert time.monotonic() - start < 3   # one timeout, not polygon.max_retries + 1 of them
    assert r.exit_code == 1, r.output
    assert rows(r.output)["polygon"] == (FAIL, f"unreachable: no answer from {polygon.url} within 0.5 s; check the "
                                               "network, a proxy or POLYGON_BASE_URL.")
    assert polygon.count("/grouped/") == 1


def test_rate_limited_warns_without_retrying(tmp_path, polygon, monkeypatch):
    polygon.inject("429", match="/grouped/", retry_after="30")
    prep = workspace(tmp_path, fill=LAST_CLOSED)
    use_keys(monkeypatch, polygon, env_file=tmp_path / ".env")
    r = prep("--as-of", MORNING, "doctor")
    assert r.exit_code == 0, r.output
    assert rows(r.output)["polygon"] == (WARN, f"reachable at {polygon.url} but rate limited (429), so the key and "
                                               "plan are unchecked: run prep doctor again in a minute.")
    assert polygon.count() == 1


@pytest.mark.parametrize("number, paper, live, words", [
    ("912345678", "true", False, "the keys reach a live (real-money) Alpaca account (its number does not start with "
                                 "PA) but this run expects paper, so no order is sent"),
    ("PA3EXAMPLE01", "false", True, "ALPACA_PAPER=false and --live ask for a live account but the keys reach a paper "
                                    "account (its number starts with PA)"),
])
def test_alpaca_account_of_the_wrong_kind_fails(tmp_path, alpaca, monkeypatch, number, paper, live, words):
    alpaca.account_number = number
    prep = sample_alpaca_workspace(tmp_path)
    use_keys(monkeypatch, alpaca=alpaca, env_file=tmp_path / ".env")
    monkeypatch.setenv("ALPACA_PAPER", paper)
    r = prep("doctor", *(["--live"] if live else []))
    assert r.exit_code == 1, r.output  # a failed check, not bad input: everything was printed first
    table = rows(r.output)
    assert table["alpaca"][0] == FAIL and table["alpaca"][1].startswith(words)
    assert "alpaca status" not in table and "bar store" in table
    assert "1 check failed: alpaca;" in r.stderr
    if live:
        assert "execute --live" in r.output
    no_secret(r.output, alpaca.key, alpaca.secret)


def test_alpaca_trading_blocked_fails(tmp_path, alpaca, monkeypatch):
    alpaca.account_flags["trading_blocked"] = True
    prep = sample_alpaca_workspace(tmp_path)
    use_keys(monkeypatch, alpaca=alpaca, env_file=tmp_path / ".env")
    r = prep("doctor")
    assert r.exit_code == 1, r.output
    table = rows(r.output)
    assert table["alpaca"][0] == OK
    assert table["alpaca status"] == (FAIL, "trading is blocked on the account: orders would be refused; see the "
                                            "dashboard.")
    assert table["alpaca funds"][0] == OK


def test_unreachable_alpaca_fails_within_seconds(tmp_path, alpaca, monkeypatch, refused_url):
    prep = sample_alpaca_workspace(tmp_path)
    use_keys(monkeypatch, alpaca=alpaca)
    monkeypatch.setenv("ALPACA_BASE_URL", refused_url)
    start = time.monotonic()
    r = prep("doctor")
    assert time.monotonic() - start < 5
    assert r.exit_code == 1, r.output
    assert rows(r.output)["alpaca"] == (FAIL, "Alpaca did not answer while reading the account (ConnectionError); "
                                              "check the network and status.alpaca.markets.")
    no_secret(r.output, alpaca.key, alpaca.secret)


def test_live_switch_without_live_flag_fails(tmp_path, alpaca, monkeypatch):
    prep = sample_alpaca_workspace(tmp_path)
    use_keys(monkeypatch, alpaca=alpaca, env_file=tmp_path / ".env")
    monkeypatch.setenv("ALPACA_PAPER", "false")
    r = prep("doctor")
    assert r.exit_code == 1, r.output
    assert rows(r.output)["alpaca"] == (FAIL, "ALPACA_PAPER=false selects a live (real-money) account: add --live "
                                              "to trade it, or unset ALPACA_PAPER for paper.")


def test_sample_workspace_as_make_run_builds_it(tmp_path):
    """build/demo of `make run`: its relative config, the night replayed, then the doctor on the wall clock."""
    demo = tmp_path / "build" / "demo"
    demo.mkdir(parents=True)
    rel = os.path.relpath(SAMPLE, demo)  # ../../data/sample in the checkout
    (demo / "config.yaml").write_text(f"data:\n  sample_dir: {rel}\nuniverse:\n  constituents_file: "
                                      f"{rel}/constituents.csv\n")
    prep = Prep(demo)
    for as_of, cmd in (("2021-04-19T20:00", "prepare"), ("2021-04-20T09:00", "validate"),
                       ("2021-04-20T09:31", "execute")):
        assert prep("--as-of", as_of, cmd).exit_code == 0
    r = prep("doctor")
    assert r.exit_code == 0, r.output
    table = rows(r.output)
    assert FAIL not in {s for s, _ in table.values()}
    assert table["keys"] == (OK, "none needed: data.source sample and broker.kind simulated run without keys.")
    assert table["price source"][0] == OK and table["price source"][1].startswith("the sample's opening print")
    assert table["bar store"] == (WARN, "the sample ends 2021-04-21: it replays --as-of dates up to then, but cron "
                                        "needs fresh bars, so set data.source: polygon.")
    assert "# data.source is sample (a fixed history): set data.source: polygon before installing these lines" \
        in r.output.splitlines()


def test_free_plan_asks_the_session_before_and_crontab_runs_after_midnight(tmp_path, polygon, monkeypatch):
    prep = workspace(tmp_path, plan="free")  # no store yet, no Alpaca keys
    use_keys(monkeypatch, polygon, env_file=tmp_path / ".env")
    r = prep("--as-of", EVENING, "doctor")
    assert r.exit_code == 1, r.output
    table = rows(r.output)
    n = len(BarStore(SAMPLE).session_bars(BEFORE))
    assert table["polygon daily"] == (OK, f"entitled: grouped daily of session {BEFORE} has {n:,} bars.")
    assert "polygon snapshot" not in table and polygon.count("snapshot") == 0  # a paid-plan feature
    assert table["price source"][0] == FAIL
    assert table["price source"][1].startswith("no ALPACA_API_KEY/ALPACA_SECRET_KEY: on the free Polygon plan")
    status, message = table["bar store"]
    assert status == WARN and message.startswith(f"empty ({tmp_path / 'store'}): the first prepare fetches about")
    assert not (tmp_path / "store").exists()
    run = f"{Path(sys.executable).absolute().parent / 'prep'} --config {tmp_path / 'config.yaml'}"
    assert f"30 0 * * 2-6  {run} prepare" in r.output.splitlines()
    assert "1 check failed: price source;" in r.stderr


def test_store_sessions_behind_warn(tmp_path, polygon, alpaca, monkeypatch):
    prep = workspace(tmp_path, fill=BEFORE)  # 2021-04-16; at 09:00 on the 21st the paid plan has 2021-04-20
    use_keys(monkeypatch, polygon, alpaca, env_file=tmp_path / ".env")
    r = prep("--as-of", "2021-04-21T09:00", "doctor")
    assert r.exit_code == 0, r.output
    assert rows(r.output)["bar store"] == (WARN, "newest session 2021-04-16, 2 sessions behind 2021-04-20; the next "
                                                 "prepare fetches them (one request each).")


def test_a_state_folder_that_is_a_file_fails(tmp_path, monkeypatch):
    (tmp_path / "config.yaml").write_text(f"data:\n  sample_dir: {SAMPLE}\nuniverse:\n  constituents_file: "
                                          f"{SAMPLE / 'constituents.csv'}\npaths:\n  data_dir: state/data\n")
    (tmp_path / "state").write_text("not a folder")
    r = Prep(tmp_path)("doctor")
    assert r.exit_code == 1, r.output
    status, message = rows(r.output)["paths.data_dir"]
    assert status == FAIL and message.endswith("is not a folder; change paths.data_dir.")
    assert "1 check failed: paths.data_dir;" in r.stderr


@pytest.mark.parametrize("free_mb, status", [(50, FAIL), (500, WARN), (5000, OK)])
def test_disk_thresholds(tmp_path, monkeypatch, free_mb, status):
    """shutil's answer stands in for a small disk (the only stand-in here: a full disk cannot be made in a test)."""
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=free_mb * 1024 ** 2))
    (check,) = disk_checks([("paths.plan", tmp_path), ("paths.log_dir", tmp_path / "logs")])
    assert check.name == "disk" and check.status == status
    assert check.message.startswith(("50 MB free" if free_mb == 50 else "500 MB free" if free_mb == 500
                                     else "4.9 GB free"))


def test_brief_checks_need_no_network(tmp_path, monkeypatch):
    """What prepare prints before a night: keys, the price source, disk, folders; no request is made."""
    workspace(tmp_path, plan="free")
    monkeypatch.setenv("POLYGON_API_KEY", POLYGON_KEY)
    monkeypatch.setenv("POLYGON_BASE_URL", "http://127.0.0.1:9")  # would fail if anything were asked
    cfg = load_config(tmp_path / "config.yaml")
    checks = brief_checks(cfg, sessions.Clock(dt.datetime(2021, 4, 19, 20, tzinfo=sessions.ET)))
    names = [c.name for c in checks]
    assert names == ["polygon key", "price source", "disk", "paths.plan", "paths.archive_dir", "paths.data_dir",
                     "paths.log_dir", "data.store_dir"]
    assert checks[0].status == WARN  # set in this process, not in .env
    assert checks[1].status == FAIL and "ALPACA_API_KEY/ALPACA_SECRET_KEY" in checks[1].message
    assert all(POLYGON_KEY not in c.message for c in checks)
    assert not (tmp_path / "logs").exists() and not (tmp_path / "store").exists()
