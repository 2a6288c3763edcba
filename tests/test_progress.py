"""Progress on long work, and a bounded give-up on a host that does not answer (issue 9, item 3).

A Polygon fill and a backtest run through the real CLI (click's runner: stdout is not a
terminal) print a line per ~10 % with counts and log the same lines; a Polygon host that does
not answer (a closed loopback port) is given up on after ``polygon.give_up_after_seconds`` in
one sentence.  The client talks over HTTP to the loopback fake serving the real sample bars.
"""

import datetime as dt
import io
import logging
import re
import time

import pytest
from rich.console import Console

from conftest import SAMPLE, Prep, write_config
from fakes.polygon_server import PolygonFake
from trading_system import sessions
from trading_system.config import PolygonConfig, load_config
from trading_system.errors import DataError
from trading_system.marketdata.polygon import HostUnreachable, PolygonClient
from trading_system.marketdata.polygon_source import PolygonSource
from trading_system.marketdata.store import BarStore
from trading_system.prepare.discovery import HISTORY_DAYS
from trading_system.progress import Reporter, duration, log_only

EVENING = "2021-04-19T20:00"
FAST = ("polygon:\n  plan: paid\n  requests_per_minute: 600000\n  backoff_seconds: 0.01\n"
        "  max_backoff_seconds: {max_backoff}\n  max_retries: {retries}\n  timeout_seconds: 0.5\n"
        "  give_up_after_seconds: {give_up}\n")
LINE = re.compile(r"^(?P<label>polygon fill|backtest): (?P<done>\d+)/(?P<total>\d+) sessions \((?P<pct>\d+) %\)")


@pytest.fixture(autouse=True)
def env(fake, monkeypatch):
    fake.faults.clear()
    fake.requests.clear()
    monkeypatch.setenv("POLYGON_API_KEY", "test-key")
    monkeypatch.setenv("POLYGON_BASE_URL", fake.url)
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def polygon_workspace(folder, give_up=60, retries=3, max_backoff=0.05) -> Prep:
    (folder / "config.yaml").write_text(
        f"data:\n  source: polygon\n  sample_dir: {SAMPLE}\n  store_dir: {folder / 'store'}\n"
        f"universe:\n  constituents_file: {SAMPLE / 'constituents.csv'}\n"
        + FAST.format(give_up=give_up, retries=retries, max_backoff=max_backoff))
    return Prep(folder)


def progress_lines(text: str, label: str) -> list[re.Match]:
    return [m for m in map(LINE.match, text.splitlines()) if m and m["label"] == label]


def assert_tenths(lines: list[re.Match], total: int) -> None:
    """About one line per 10 %, counts rising to a final 100 % line."""
    assert 9 <= len(lines) <= 12, [m.string for m in lines]
    done = [int(m["done"]) for m in lines]
    assert done == sorted(done) and len(set(done)) == len(done)
    assert {int(m["total"]) for m in lines} == {total}
    assert done[-1] == total and lines[-1]["pct"] == "100" and lines[-1].string.endswith("done")


# ---------------------------------------------------------------------- the fill through the CLI


def test_a_fill_prints_a_line_per_tenth_and_logs_them(tmp_path, fake, sample_bars):
    """The store holds the sample's bars as traded through 2021-02-26 (what earlier nights stored): the
    night of 2021-04-19 fills the 34 sessions from 2021-03-01 over HTTP, enough for a line per tenth."""
    poly = polygon_workspace(tmp_path)
    first, stored = dt.date(2021, 4, 19) - dt.timedelta(days=HISTORY_DAYS), dt.date(2021, 2, 26)
    BarStore(tmp_path / "store").write_bars(
        sample_bars[(sample_bars["date"] >= first) & (sample_bars["date"] <= stored)])
    result = poly("--as-of", EVENING, "prepare")
    assert result.exit_code == 0, result.output
    total = len([s for s in sessions.sessions_between(dt.date(2021, 3, 1), dt.date(2021, 4, 19))
                 if s != dt.date(2021, 4, 19)])  # the scan's own session is fetched first, on its own
    assert total == 34 and fake.count("/grouped/") == total + 1
    lines = progress_lines(result.stdout, "polygon fill")
    assert_tenths(lines, total)
    assert all(re.search(r", \d+ requests, through 20\d\d-\d\d-\d\d, ", m.string) for m in lines)
    requests = [int(re.search(r"(\d+) requests", m.string)[1]) for m in lines]
    assert requests == sorted(requests) and requests[-1] == total
    assert f"polygon fill: {total} sessions to go (2021-03-01 to 2021-04-16, one request each" in result.stdout
    assert all("ETA" in m.string for m in lines[:-1])
    log = (tmp_path / "logs" / "pre_market_prep.log").read_text()
    assert all(m.string in log for m in lines)
    assert (tmp_path / "pending_trades.json").exists()

    # A warm night fetches only its own session (ensure_session, no fill): no progress printed.
    warm = poly("--as-of", "2021-04-20T20:00", "prepare", "--dry-run")
    assert warm.exit_code == 0, warm.output
    assert "polygon fill" not in warm.stdout


def test_an_unreachable_host_is_given_up_in_bounded_time_in_one_sentence(tmp_path, monkeypatch, refused_url):
    url = refused_url
    monkeypatch.setenv("POLYGON_BASE_URL", url)
    poly = polygon_workspace(tmp_path, give_up=1, retries=20, max_backoff=0.2)
    t0 = time.monotonic()
    result = poly("--as-of", EVENING, "prepare")
    elapsed = time.monotonic() - t0
    assert result.exit_code == 1
    host = url.removeprefix("http://")
    sentence = (f"Polygon ({host}) did not answer for 1 s (ConnectionError); check the network or "
                "POLYGON_BASE_URL; nothing was written.")
    assert f"prep prepare: {sentence}" in " ".join(result.stderr.split())
    assert "test-key" not in result.output and "Traceback" not in result.output
    assert 1.0 <= elapsed < 15
    assert not (tmp_path / "pending_trades.json").exists()


def test_a_host_lost_mid_fill_keeps_what_was_fetched_and_says_so(tmp_path):
    """The server goes away after 12 sessions: the fill stops within the give-up time, keeps them."""
    polygon_workspace(tmp_path, give_up=0.5, retries=20, max_backoff=0.2)
    cfg = load_config(tmp_path / "config.yaml")
    with PolygonFake() as lost:
        client = PolygonClient("test-key", cfg.polygon, base_url=lost.url)

        class Sink:
            def __init__(self):
                self.calls = []

            def begin(self, total, note=""):
                self.calls.append(("begin", total))

            def update(self, done, note=""):
                self.calls.append(("update", done))
                if done == 12:  # the network goes: no new connection can be made
                    lost.httpd.shutdown()
                    lost.httpd.server_close()
                    client.session.close()

            def end(self, ok=True):
                self.calls.append(("end", ok))

        sink = Sink()
        src = PolygonSource(cfg, sessions.Clock(dt.datetime(2021, 4, 19, 20, tzinfo=sessions.ET)), client=client,
                            progress=sink)
        t0 = time.monotonic()
        with pytest.raises(HostUnreachable) as info:
            src.fill(dt.date(2021, 3, 1), dt.date(2021, 4, 16))
    assert time.monotonic() - t0 < 10
    assert str(info.value).startswith(f"Polygon ({lost.url.removeprefix('http://')}) did not answer for ")
    assert str(info.value).endswith("(ConnectionError); check the network or POLYGON_BASE_URL; the 12 sessions "
                                    "fetched before it are kept, so a rerun asks only for the rest.")
    assert len(src.store.dates()) == 12
    assert sink.calls[0] == ("begin", 34) and sink.calls[-1] == ("end", False)
    assert [c for c in sink.calls if c[0] == "update"] == [("update", i) for i in range(1, 13)]


# ---------------------------------------------------------------------- the client's give-up


def client_with_fake_time(base_url, **cfg):
    """A client whose waits advance a fake clock (``waits``) instead of being slept."""
    settings = dict(requests_per_minute=600000, backoff_seconds=12, max_backoff_seconds=120, max_retries=5,
                    timeout_seconds=0.5, give_up_after_seconds=60)
    now = [0.0]

    def sleep(seconds):
        c.waits.append(seconds)
        now[0] += seconds

    c = PolygonClient("test-key", PolygonConfig(**{**settings, **cfg}), base_url=base_url, sleep=sleep,
                      clock=lambda: now[0])
    c.waits = []
    return c


def test_no_connection_stops_at_the_give_up_time_with_the_last_wait_cut(refused_url):
    c = client_with_fake_time(refused_url)
    with pytest.raises(HostUnreachable, match=r"did not answer for 60 s \(ConnectionError\); check the network "
                                              r"or POLYGON_BASE_URL; nothing was written\.$") as info:
        c.grouped_daily(dt.date(2021, 4, 19))
    assert isinstance(info.value, DataError) and info.value.exit_code == 1
    # 12 s + jitter, 24 s + jitter, then cut so the last attempt starts at 60 s: 4 attempts, not 6.
    assert 12 <= c.waits[0] <= 24 and 24 <= c.waits[1] <= 36
    assert sum(c.waits) == pytest.approx(60) and c.requests_made == 4


def test_the_attempt_limit_still_bounds_a_silent_host(refused_url):
    c = client_with_fake_time(refused_url, max_retries=1, give_up_after_seconds=3600)
    with pytest.raises(HostUnreachable, match=r"did not answer for (1[2-9]|2[0-4]) s \(ConnectionError\)"):
        c.splits(dt.date(2021, 1, 1))
    assert c.requests_made == 2


@pytest.mark.parametrize("kind, last", [("500", "HTTP 500"), ("429", "rate limited (429)"),
                                        ("drop", "the connection dropped")])
def test_a_host_that_answers_keeps_its_retry_budget(fake, kind, last):
    """429, 5xx and a dropped connection (the host did answer) are retried max_retries times,
    however long that takes: the give-up time is for a host that does not answer at all."""
    fake.inject(kind, "grouped", times=6)
    c = client_with_fake_time(fake.url, give_up_after_seconds=1)
    with pytest.raises(DataError, match=rf"after 6 attempts \(last: {re.escape(last)}") as info:
        c.grouped_daily(dt.date(2021, 4, 19))
    assert not isinstance(info.value, HostUnreachable)
    assert c.requests_made == 6 and sum(c.waits) > 60


# ---------------------------------------------------------------------- the backtest through the CLI


def test_the_backtest_prints_a_line_per_tenth_when_not_a_terminal(tmp_path):
    """13 sessions (2021-04-01..20, Good Friday out): enough for a line per tenth, each a different count."""
    write_config(tmp_path)
    result = Prep(tmp_path)("--as-of", "2021-04-21T20:00", "backtest", "--start", "2021-04-01", "--end",
                            "2021-04-20", "--out", str(tmp_path / "reports"))
    assert result.exit_code == 0, result.output
    total = len(sessions.sessions_between(dt.date(2021, 4, 1), dt.date(2021, 4, 20)))
    assert total == 13
    lines = progress_lines(result.stdout, "backtest")
    assert_tenths(lines, total)
    assert all(re.search(r"\), session 2021-\d\d-\d\d, .+ elapsed, ", m.string) for m in lines)
    assert all("ETA" in m.string for m in lines[:-1])
    assert f"backtest: {total} sessions to go (2021-04-01 to 2021-04-20)" in result.stdout
    log = (tmp_path / "logs" / "pre_market_prep.log").read_text()
    assert all(m.string in log for m in lines)


# ---------------------------------------------------------------------- the reporter itself


def reporter(**kw):
    out = io.StringIO()
    now = [0.0]
    rep = Reporter("fill", console=Console(file=out, width=200), clock=lambda: now[0], **kw)
    return rep, out, now


def test_lines_per_tenth_with_elapsed_and_eta():
    rep, out, now = reporter()
    with rep.task(276, "about 55 min"):
        for i in range(1, 277):
            now[0] += 12.0
            rep.update(i, f"{i} requests")
    lines = out.getvalue().splitlines()
    assert lines[0] == "fill: 276 sessions to go (about 55 min)"
    assert len(lines) == 11
    assert lines[1] == "fill: 28/276 sessions (10 %), 28 requests, 5 min 36 s elapsed, ETA 49 min 36 s"
    assert lines[-1] == "fill: 276/276 sessions (100 %), 276 requests, 55 min 12 s elapsed, done"
    assert duration(59.4) == "59 s" and duration(3725) == "1 h 02 min"


def test_short_tasks_are_logged_not_printed_and_log_only_never_prints(caplog, capsys):
    rep, out, _ = reporter(min_total=10)
    with caplog.at_level(logging.INFO, logger="trading_system.progress"):
        rep.begin(3)
        for i in (1, 2, 3):
            rep.update(i)
        rep.end()
        quiet = log_only("quiet")
        quiet.begin(50)
        quiet.update(50)
        quiet.end()
    assert out.getvalue() == "" and capsys.readouterr().out == ""
    logged = [r.getMessage() for r in caplog.records]
    assert "fill: 3/3 sessions (100 %), 0 s elapsed, done" in logged
    assert any(m.startswith("quiet: 50/50") for m in logged)


def test_a_terminal_gets_a_bar_not_lines_and_a_failed_task_is_logged(caplog):
    rep, out, _ = reporter(live=True)
    with caplog.at_level(logging.INFO, logger="trading_system.progress"):
        with pytest.raises(RuntimeError):
            with rep.task(20):
                rep.update(5, "halfway there")
                raise RuntimeError("boom")
    assert "fill: 5/20" not in out.getvalue()  # the bar is drawn and removed, no plain lines
    assert any(r.getMessage().startswith("fill: 5/20 sessions (25 %), halfway there") and
               r.getMessage().endswith("(stopped)") for r in caplog.records)
