"""Alerts (issue 9 item 2): messages built from the real night's results, sent through Apprise's
``json://`` plugin to a loopback receiver; failures, silence and secrets never reach the run or the log."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import time
from pathlib import Path

import pytest

from conftest import ROOT, Prep, write_config
from fakes.notify_receiver import NotifyReceiver
from trading_system.present import notify
from trading_system.config import NotifyConfig

EVENING, MORNING, OPEN = "2021-04-19T20:00", "2021-04-20T09:00", "2021-04-20T09:31"
USER, SECRET, TOKEN = "ops", "s3cret-pw-9f2c", "T0KEN-7c1d0e"
ALL = ["plan_ready", "validated", "orders_done", "failure", "kill_switch"]


def configure(folder: Path, urls: list[str], timeout: float = 5, events: list[str] | None = None,
              level: str = "INFO") -> Prep:
    """A workspace over the sample whose alerts go to ``urls``; its log at ``level``."""
    quoted = ", ".join(f"'{u}'" for u in urls)
    write_config(folder, f"notify:\n  urls: [{quoted}]\n  timeout_seconds: {timeout}\n"
                         f"  events: [{', '.join(ALL if events is None else events)}]\n"
                         f"logging:\n  level: {level}\n")
    return Prep(folder)


def secret_url(rx: NotifyReceiver) -> str:
    return rx.url(f"/hooks/{TOKEN}", f"{USER}:{SECRET}")


def log_text(folder: Path) -> str:
    return (folder / "logs" / "pre_market_prep.log").read_text()


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text and TOKEN not in text


# --- the real night, end to end ------------------------------------------------------------------


def test_real_night_sends_plan_ready_validated_and_orders_done(tmp_path):
    with NotifyReceiver() as rx:
        prep = configure(tmp_path, [secret_url(rx)], level="DEBUG")
        rx.on_post = lambda post: sorted(p.name for p in (tmp_path / "archived_trades").glob("*.json"))
        outputs = []
        for as_of, cmd in ((EVENING, "prepare"), (MORNING, "validate")):
            r = prep("--as-of", as_of, cmd)
            assert r.exit_code == 0, r.output
            outputs.append(r.output)
        plan = prep.plan()
        r = prep("--as-of", OPEN, "execute")
        assert r.exit_code == 0, r.output
        outputs.append(r.output)
        posts = rx.wait_for(3)
    assert len(posts) == 3
    for post in posts:   # the URL was used as given: its path and its credentials
        assert post["path"] == f"/hooks/{TOKEN}"
        assert base64.b64decode(post["authorization"].split()[1]).decode() == f"{USER}:{SECRET}"
    ready, valid, done = (p["json"] for p in posts)

    s = plan["scan_summary"]
    assert ready["title"] == "prep: plan ready for 2021-04-20" and ready["type"] == "info"
    assert f"Plan {plan['plan_id']} for session Tue 2021-04-20" in ready["message"]
    assert f"CORE {s['core_picks']}, SPEC {s['spec_picks']}, ASYM {s['asym_picks']}" in ready["message"]
    names = ", ".join(f"{n} {len(st['allocations'])}" for n, st in plan["strategies"].items())
    assert f"Names per strategy: {names}." in ready["message"]

    vr = plan["validation_results"]
    chosen = vr["selected_strategy"]
    assert valid["title"] == f"prep: {chosen} selected for 2021-04-20"
    assert vr["selection_reason"] in valid["message"]
    for name, v in vr["validated_strategies"].items():
        if name != "BUY_HOLD":
            assert f"{name} {v['validation_rate']:.0%}" in valid["message"]
    assert f"Rejected: none of {len(vr['checks'])} picks." in valid["message"]

    archive = json.loads(next((tmp_path / "archived_trades").glob("*.json")).read_text())
    orders, after = archive["execution"]["orders"], archive["execution"]["account_after"]
    bought = sum(o["filled_qty"] * o["filled_avg_price"] for o in orders if o["side"] == "buy")
    assert done["title"] == f"prep: {chosen} orders done for 2021-04-20" and done["type"] == "success"
    assert f"Orders: {len(orders)} filled, 0 not filled, 0 refused." in done["message"]
    assert f"Bought ${bought:,.2f}, sold $0.00; cash left ${after['cash']:,.2f}" in done["message"]
    assert "The account reached its targets." in done["message"] and "consumed" in done["message"]
    assert posts[2]["seen"], "orders_done must land after the archive is written"

    log = log_text(tmp_path)
    for event in ("plan_ready", "validated", "orders_done"):
        assert f"alert {event} sent to #1 json://" in log
    assert_no_secret(log, *outputs)


def test_gap_down_morning_names_each_rejection_and_its_reason(tmp_path):
    # Real night: Friday 2020-02-21 evening -> Monday 2020-02-24, when the market gapped down.
    with NotifyReceiver() as rx:
        prep = configure(tmp_path, [rx.url()], events=["validated"])
        assert prep("--as-of", "2020-02-21T20:00", "prepare").exit_code == 0
        assert prep("--as-of", "2020-02-24T09:00", "validate").exit_code == 0
        posts = rx.wait_for(1)
    assert len(posts) == 1   # only the events asked for: no plan_ready
    vr = prep.plan()["validation_results"]
    rejected = sorted(s for s, c in vr["checks"].items() if not c["passed"])
    body = posts[0]["json"]["message"]
    assert rejected and f"Rejected {len(rejected)} of {len(vr['checks'])} picks:" in body
    for sym in rejected[:notify.MAX_LISTED]:
        assert f"{sym} ({vr['checks'][sym]['reason']})" in body
    assert posts[0]["json"]["title"] == f"prep: {vr['selected_strategy']} selected for 2020-02-24"


# --- failures: the run goes on, the log says so, the secret stays out ----------------------------


@pytest.mark.parametrize("mode", ["error", "silent"])
def test_failing_or_silent_receiver_never_fails_the_run(tmp_path, mode):
    with NotifyReceiver(mode, hold_seconds=30) as rx:
        prep = configure(tmp_path, [secret_url(rx)], timeout=0.5, level="DEBUG")
        started = time.monotonic()
        r = prep("--as-of", EVENING, "prepare")
        elapsed = time.monotonic() - started
        assert len(rx.wait_for(1)) == 1
    assert r.exit_code == 0, r.output
    assert elapsed < 15, "a silent receiver must not hold the run (it holds 30 s)"
    assert (tmp_path / "pending_trades.json").exists()
    log = log_text(tmp_path)
    assert "alert plan_ready to #1 json:// FAILED" in log
    assert ("no answer within 0.5 s" in log) if mode == "silent" else ("error=500" in log)
    assert_no_secret(log, r.output)


def test_stale_plan_sends_the_sentence_as_a_failure_alert(tmp_path):
    with NotifyReceiver() as rx:
        prep = configure(tmp_path, [rx.url()])
        assert prep("--as-of", EVENING, "prepare").exit_code == 0
        r = prep("--as-of", "2021-04-21T09:00", "validate")
        posts = rx.wait_for(2)
    assert r.exit_code == 2
    alert = posts[-1]["json"]
    assert alert["title"] == "prep validate FAILED (exit 2)" and alert["type"] == "failure"
    assert alert["message"].startswith("prep validate: ") and "stale" in alert["message"]
    assert alert["message"] in " ".join(r.output.split())   # the very sentence printed


def test_a_crash_sends_a_failure_alert(tmp_path, monkeypatch):
    import trading_system.validate.run as pipeline

    def broken(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(pipeline, "run_validate", broken)
    with NotifyReceiver() as rx:
        prep = configure(tmp_path, [rx.url()])
        r = prep("--as-of", MORNING, "validate")
        posts = rx.wait_for(1)
    assert r.exit_code == 1
    assert posts[0]["json"]["title"] == "prep validate FAILED (exit 1)"
    assert "unexpected error (ValueError: boom)" in posts[0]["json"]["message"]


@pytest.mark.parametrize("events, title", [(ALL, "prep: kill switch is on"),
                                           (["failure"], "prep execute FAILED (exit 1)")])
def test_kill_switch_refusal(tmp_path, events, title):
    with NotifyReceiver() as rx:
        prep = configure(tmp_path, [rx.url()], events=events)
        prep("--as-of", EVENING, "prepare")
        prep("--as-of", MORNING, "validate")
        (tmp_path / "KILL_SWITCH").touch()
        before = len(rx.wait_for(2 if events == ALL else 0, timeout=2))
        r = prep("--as-of", OPEN, "execute")
        posts = rx.wait_for(before + 1)
        time.sleep(0.2)   # a second alert for the same refusal would land now
        posts = rx.posts
    assert r.exit_code == 1 and "kill switch" in r.output
    assert [p["json"]["title"] for p in posts[before:]] == [title]   # one alert for one refusal
    assert "kill switch" in posts[-1]["json"]["message"]
    assert str(tmp_path / "KILL_SWITCH") in posts[-1]["json"]["message"]


def test_dry_runs_send_no_success_alert(tmp_path):
    with NotifyReceiver() as rx:
        prep = configure(tmp_path, [rx.url()])
        assert prep("--as-of", EVENING, "prepare", "--dry-run").exit_code == 0
        assert prep("--as-of", MORNING, "validate").exit_code == 0   # no plan: nothing to do, no alert
        time.sleep(0.2)
    assert rx.posts == []


def test_no_url_means_apprise_is_never_imported(tmp_path, forks):
    """A process of its own (a child of the fork server, which never imports apprise: see its PRELOAD)."""
    from fakes.prep_forkserver import PRELOAD

    assert not any(name.startswith("apprise") for name in PRELOAD)
    script = tmp_path / "validate.py"
    script.write_text("import sys\nfrom trading_system.cli import main\n"
                      "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
                      "print('apprise loaded:', 'apprise' in sys.modules)\n")
    write_config(tmp_path)
    r = forks.run([script, "--config", tmp_path / "config.yaml", "--as-of", MORNING, "validate"], ROOT,
                  dict(os.environ), timeout=120)
    assert "no pending plan" in r.stdout and "apprise loaded: False" in r.stdout, r.stdout + r.stderr


# --- prep notify --test --------------------------------------------------------------------------


def test_notify_test_reports_each_url_without_its_secret(tmp_path):
    with NotifyReceiver() as good, NotifyReceiver("error") as bad:
        prep = configure(tmp_path, [good.url(), secret_url(bad), "not a url"])
        r = prep("--as-of", MORNING, "notify", "--test")
        assert len(good.wait_for(1)) == 1 and len(bad.wait_for(1)) == 1
    assert r.exit_code == 1
    assert "#1 json://: OK" in r.output
    assert "#2 json://: FAILED" in r.output and "#3 (not a URL): FAILED (not a valid Apprise URL)" in r.output
    assert good.posts[0]["json"]["title"] == "prep: test alert"
    assert_no_secret(r.output, log_text(tmp_path))


def test_notify_test_all_ok_and_usage(tmp_path):
    with NotifyReceiver() as rx:
        prep = configure(tmp_path, [rx.url(), rx.url("/second")])
        r = prep("--as-of", MORNING, "notify", "--test")
        assert len(rx.wait_for(2)) == 2
    assert r.exit_code == 0 and "#1 json://: OK" in r.output and "#2 json://: OK" in r.output
    r = prep("notify")
    assert r.exit_code == 2 and "Usage" in r.output and "--test" in r.output
    write_config(tmp_path)
    r = prep("notify", "--test")
    assert r.exit_code == 2 and "notify.urls" in r.output and "empty" in r.output


# --- the pure parts: messages, choice of alerts, redaction, the bound ----------------------------


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """The real night's three results (prepare, validate, execute), straight from the pipeline."""
    from trading_system.config import load_config
    from trading_system.execute.run import run_execute
    from trading_system.prepare.run import run_prepare
    from trading_system.validate.run import run_validate
    from trading_system.sessions import Clock

    cfg = load_config(write_config(tmp_path_factory.mktemp("night")))
    return (run_prepare(cfg, Clock.from_env(EVENING)), run_validate(cfg, Clock.from_env(MORNING)),
            run_execute(cfg, Clock.from_env(OPEN)))


def test_incomplete_run_reports_refusals_and_the_kept_plan(night):
    result = night[2]
    orders = list(result.report.orders)
    refused = dataclasses.replace(orders[0], status="rejected", error_kind="buying_power", error="insufficient",
                                  filled_qty=0.0, filled_avg_price=None)
    unfilled = dataclasses.replace(orders[1], status="canceled", error_kind="unfilled", canceled=True,
                                   filled_qty=0.0, filled_avg_price=None)
    report = dataclasses.replace(result.report, orders=[refused, unfilled, *orders[2:]],
                                 residual=[(refused.symbol, 100.0)])
    alert = notify.orders_done(dataclasses.replace(result, report=report, plan_kept=True))
    bought = sum(o.filled_qty * o.filled_avg_price for o in orders[2:])
    assert alert.level == "warning" and "INCOMPLETE" in alert.title
    assert f"Orders: {len(orders) - 2} filled, 1 not filled, 1 refused." in alert.body
    assert f"Bought ${bought:,.2f}, sold $0.00" in alert.body
    assert f"did NOT reach its targets: buying power: {refused.symbol}; unfilled: {unfilled.symbol}" in alert.body
    assert "The plan is kept: run 'prep execute' again" in alert.body


def test_which_alerts_a_command_sends(night):
    ready, valid, done = night
    kill = Path("/ws/KILL_SWITCH")
    dry = dataclasses.replace(done, report=dataclasses.replace(done.report, dry_run=True))
    refused = "prep execute: pre-trade check refused the run, nothing was sent: kill switch /ws/KILL_SWITCH is present"
    events = lambda *args: [a.event for a in notify.alerts_for(*args)]  # noqa: E731
    assert events("prepare", ready, None, 0, None, ALL) == ["plan_ready"]
    assert events("prepare", dataclasses.replace(ready, written=False), None, 0, None, ALL) == []
    assert events("validate", valid, None, 0, None, ["failure"]) == []
    assert events("execute", dry, None, 0, None, ALL) == []
    missed = dataclasses.replace(done, report=dataclasses.replace(done.report, residual=[("AAPL", 500.0)]))
    assert events("execute", missed, "prep execute: the account did not reach ...", 1, None, ALL) == ["orders_done"]
    # A crash after a run that reached its targets: the success alert, and the failure too.
    assert events("execute", done, "prep execute: unexpected error (KeyError: 'x')", 1, None, ALL) == [
        "orders_done", "failure"]
    assert events("execute", done, "prep execute: the account did not reach ...", 1, None,
                  ["failure"]) == ["failure"]
    assert events("execute", None, refused, 1, kill, ALL) == ["kill_switch"]
    assert events("execute", None, refused, 1, None, ALL) == ["kill_switch"]   # the file went since
    assert events("execute", None, refused, 1, kill, ["failure"]) == ["failure"]
    assert events("execute", None, None, 0, kill, ALL) == ["kill_switch"]      # e.g. a holiday, switch on
    assert events("execute", done, None, 0, kill, ALL) == ["orders_done", "kill_switch"]
    assert events("validate", None, "prep validate: stale", 2, None, ALL) == ["failure"]


@pytest.mark.parametrize("url", [
    f"json://{USER}:{SECRET}@hooks.example:8443/{TOKEN}?rto=2",
    f"tgram://123456789:{TOKEN}/-100987654",
    f"discord://555123456/{TOKEN}",
    f"ntfy://{TOKEN}",
    f"slack://{TOKEN}/B1234567/ZZZZZZZZ/#general",
    f"mailto://{USER}:{SECRET}@gmail.com",
    f"https://hooks.example/path?token={TOKEN}&x=1",
])
def test_urls_are_named_by_scheme_and_their_secrets_masked(url):
    scheme = url.split("://")[0]
    assert notify.label(3, url) == f"#3 {scheme}://"
    parts = notify.secret_parts(url)
    bare = url.split("://", 1)[1]   # a message may quote the URL without its scheme, or a part of it
    for masked in (notify.redact(f"POST {url} failed", parts), notify.redact(f"to {bare}: error", parts),
                   notify.redact(f"to {bare}: error", parts, urls=False)):
        assert TOKEN not in masked and SECRET not in masked, masked
    assert notify.label(1, "not a url") == "#1 (not a URL)"


def test_send_is_bounded_by_the_timeout_for_every_alert_at_once():
    with NotifyReceiver("silent", hold_seconds=30) as silent, NotifyReceiver() as ok:
        cfg = NotifyConfig(urls=[silent.url(), ok.url()], timeout_seconds=0.4)
        alerts = [notify.failure("prepare", "prep prepare: x", 1), notify.failure("validate", "prep validate: y", 1)]
        started = time.monotonic()
        deliveries = notify.send(cfg, alerts)
        elapsed = time.monotonic() - started
        assert len(ok.wait_for(2)) == 2
    assert elapsed < 3, elapsed   # not 2 x 0.4 s per URL in turn, and not the 30 s the receiver holds
    assert [d.ok for d in deliveries] == [False, True, False, True]
    assert deliveries[0].detail == "no answer within 0.4 s"
    assert notify.send(NotifyConfig(), alerts) == []


def test_a_mistyped_notify_url_never_echoes_its_token(tmp_path, forks):
    """Review finding: a config error under ``notify`` names the key and the type, never the value
    (an Apprise URL holds a token), on the terminal, with -v, or in the log (a `prep` process of its own,
    a child of the fork server)."""
    write_config(tmp_path, "notify:\n  urls: tgram://123456:SECRETTOKEN/-100\n")
    cmd = ["-m", "trading_system.cli", "--config", str(tmp_path / "config.yaml"), "-v",
           "--as-of", "2021-04-19T20:00", "prepare"]
    done = forks.run(cmd, tmp_path, dict(os.environ), timeout=60)
    assert done.returncode == 2 and "notify.urls" in done.stderr
    logs = "".join(p.read_text() for p in tmp_path.rglob("*.log"))
    assert "SECRETTOKEN" not in done.stdout + done.stderr + logs


def test_a_service_that_drips_bytes_never_holds_the_run(tmp_path):
    """Review finding: a service answering one byte at a time must not keep ``prep`` from exiting
    (cron's ``validate && execute`` would wait): the process ends within the alert timeout plus
    the run's own time, not after the service's minute."""
    import socket
    import subprocess
    import sys
    import threading
    import time

    from conftest import write_config

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    stop = threading.Event()

    def drip():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            for _ in range(120):               # at most 36 s, and the test stops it sooner
                if stop.wait(0.3):
                    break
                try:
                    conn.sendall(b"X")
                except OSError:
                    break
            conn.close()

    threading.Thread(target=drip, daemon=True).start()
    try:
        write_config(tmp_path, f"notify:\n  urls: ['json://127.0.0.1:{port}/hook']\n  timeout_seconds: 1\n")
        cmd = [sys.executable, "-m", "trading_system.cli", "--config", str(tmp_path / "config.yaml"),
               "--as-of", "2021-04-19T20:00", "prepare"]
        t0 = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        server.close()
    assert done.returncode == 0, done.stderr
    assert elapsed < 15, f"the process was held for {elapsed:.1f} s by the alert"
