"""Alerts through Apprise (DESIGN §1): what a run tells the trader's phone, and the sending.

The messages are built from the run results by pure functions (``plan_ready``, ``validated``,
``orders_done``, ``failure``, ``kill_switch``; ``alerts_for`` picks the ones a finished command
sends), so they are tested without a network.  ``send`` is the only part that talks to a service.
The CLI calls it once a command's work is done (for ``execute``: after the orders and the archive);
it sends to every URL at once, each in its own thread, and waits at most ``notify.timeout_seconds``
for them all.  A refusal, an error or a timeout is logged and swallowed: an alert never fails a
run and never delays its orders.

Apprise URLs hold secrets (a bot token as the host, a webhook token in the path, a password, an
ntfy topic), so no URL is ever logged or printed: a URL is named by its place in ``notify.urls``
and its scheme (``#1 json://``).  Apprise's own ``url(privacy=True)`` is not enough (it keeps path
tokens and ntfy topics).  Apprise's logger is detached from ours: only its warnings and errors
reach our log, with every part of the configured URLs masked and anything URL-shaped dropped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import threading
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from trading_system.vocabulary import StrategyName

if TYPE_CHECKING:  # type names only: importing the pipeline here would slow the CLI's start
    from trading_system.config import NotifyConfig
    from trading_system.execute.run import ExecuteResult
    from trading_system.prepare.run import PrepareResult
    from trading_system.state.plan import PickCheck
    from trading_system.validate.run import ValidateResult

log = logging.getLogger(__name__)

#: Rejected picks a "validated" alert names one by one; the rest are counted.
MAX_LISTED = 8


@dataclasses.dataclass(frozen=True)
class Alert:
    """One message: ``event`` (a ``notify.events`` name, or ``test``), a title and a plain-text
    body; ``level`` is Apprise's notify type: info, success, warning or failure."""

    event: str
    title: str
    body: str
    level: str = "info"


@dataclasses.dataclass(frozen=True)
class Delivery:
    """What became of one alert at one URL; ``label`` names the URL without its secrets."""

    label: str
    ok: bool
    detail: str = ""


# --- the messages (pure) -------------------------------------------------------------------------


def _money(x: float) -> str:
    return f"${x:,.2f}"


def plan_ready(r: PrepareResult) -> Alert:
    """The evening plan: target session, picks per bucket, names per strategy, plan id."""
    p, s = r.plan, r.plan.scan_summary
    names = ", ".join(f"{name} {len(st.allocations)}" for name, st in p.strategies.items())
    lines = [f"Plan {p.plan_id} for session {p.target_session:%a %Y-%m-%d} (scan of {p.scan_session}, "
             f"data: {p.data_source}).",
             f"Picks: CORE {s.core_picks}, SPEC {s.spec_picks}, ASYM {s.asym_picks} "
             f"({s.eligible} eligible of {s.total_tickers_scanned} scanned).",
             f"Names per strategy: {names}."]
    lines += [f"Warning: {w}" for w in r.warnings]
    if r.expired_archive:
        lines.append("The previous plan was never executed: archived as expired.")
    if r.replaced_archive:
        lines.append("--force: the plan it replaced was archived.")
    return Alert("plan_ready", f"prep: plan ready for {p.target_session}", "\n".join(lines))


def _rejections(checks: dict[str, PickCheck]) -> str:
    """``Rejected 2 of 18 picks: REG (kept 80% of its score), ...`` (at most ``MAX_LISTED`` named)."""
    rejected = sorted(s for s, c in checks.items() if not c.passed)
    if not rejected:
        return f"Rejected: none of {len(checks)} picks."
    named = ", ".join(f"{s} ({checks[s].reason})" for s in rejected[:MAX_LISTED])
    more = f", and {len(rejected) - MAX_LISTED} more" if len(rejected) > MAX_LISTED else ""
    return f"Rejected {len(rejected)} of {len(checks)} picks: {named}{more}."


def validated(r: ValidateResult) -> Alert:
    """The morning gate: the strategy selected and why, each contestant's rate, the rejections."""
    p = r.plan
    vr = p.validation_results
    assert vr is not None  # run_validate returns its plan with validation_results set (dry run included)
    chosen = vr.validated_strategies[vr.selected_strategy]
    rates = ", ".join(f"{name} {v.validation_rate:.0%}" + ("" if v.contestant else " (too few names left)")
                      for name, v in vr.validated_strategies.items() if name != StrategyName.BUY_HOLD)
    lines = [f"Selected {vr.selected_strategy} ({len(chosen.validated_allocations)} names): "
             f"{vr.selection_reason.rstrip('.')}.",
             f"Validation rates: {rates or 'none'}.",
             _rejections(vr.checks),
             f"Plan {p.plan_id}, session {p.target_session:%a %Y-%m-%d}."]
    return Alert("validated", f"prep: {vr.selected_strategy} selected for {p.target_session}", "\n".join(lines))


def orders_done(r: ExecuteResult) -> Alert:
    """The rebalance: orders filled / not filled / refused, dollars bought and sold, cash left,
    whether the account reached its targets and whether the plan is kept for a rerun."""
    rep, p = r.report, r.plan
    mine = [o for o in rep.orders if not o.earlier_run]
    filled = sum(1 for o in mine if o.status == "filled")
    refused = sum(1 for o in mine if o.status != "filled" and o.error_kind not in (None, "unfilled"))
    traded = {side: sum(o.filled_qty * (o.filled_avg_price or 0.0) for o in mine if o.side == side)
              for side in ("buy", "sell")}
    after = rep.account_after or rep.account_before
    counts = f"Orders: {filled} filled, {len(mine) - filled - refused} not filled, {refused} refused"
    counts += f", {len(rep.skipped)} skipped." if rep.skipped else "."
    lines = [f"{r.strategy} for session {p.target_session:%a %Y-%m-%d}, plan {p.plan_id}.", counts]
    if len(mine) < len(rep.orders):
        lines.append(f"{len(rep.orders) - len(mine)} order(s) were sent by an earlier run of this plan.")
    lines.append(f"Bought {_money(traded['buy'])}, sold {_money(traded['sell'])}; "
                 f"cash left {_money(after.cash)} of equity {_money(after.equity)}.")
    reached = rep.reached_targets
    lines.append("The account reached its targets." if reached
                 else f"The account did NOT reach its targets: {rep.summary()}.")
    if r.plan_kept:
        lines.append("The plan is kept: run 'prep execute' again to finish (no order is sent twice).")
    elif r.archive_path:
        lines.append("The plan is consumed (archived).")
    title = f"prep: {r.strategy} orders {'done' if reached else 'INCOMPLETE'} for {p.target_session}"
    return Alert("orders_done", title, "\n".join(lines), "success" if reached else "warning")


def failure(command: str, sentence: str, exit_code: int) -> Alert:
    """A failed run: the command and the one sentence the CLI printed."""
    return Alert("failure", f"prep {command} FAILED (exit {exit_code})", sentence, "failure")


def kill_switch(path: Path | None, sentence: str | None) -> Alert:
    """The kill switch is on: its file was there when ``execute`` ran, or it refused the run."""
    if sentence:
        lines = [f"This run: {sentence}"] + ([f"Remove {path} to trade again."] if path is not None else [])
    else:
        lines = [f"{path} is present: execute sends no order while it exists; remove the file to trade again."]
    return Alert("kill_switch", "prep: kill switch is on", "\n".join(lines), "warning")


def test_alert(events: Sequence[str], now: dt.datetime) -> Alert:
    """What ``prep notify --test`` sends to every URL."""
    return Alert("test", "prep: test alert",
                 f"Test alert from 'prep notify --test' at {now:%Y-%m-%d %H:%M %Z}. This URL will get: "
                 f"{', '.join(events) or 'nothing (notify.events is empty)'}.")


def _done_alert(command: str, result: Any) -> Alert | None:
    """The success alert of a command's result; none for a dry run (it did nothing)."""
    if result is None:
        return None
    if command == "prepare" and result.written:
        return plan_ready(result)
    if command == "validate" and result.written:
        return validated(result)
    if command == "execute" and not result.report.dry_run:
        return orders_done(result)
    return None


def alerts_for(command: str, result: Any, sentence: str | None, exit_code: int, kill_file: Path | None,
               events: Sequence[str]) -> list[Alert]:
    """The alerts a finished command sends, among ``events`` (pure: the CLI gathers the facts).

    ``result``: what the command's work returned (an ``ExecuteResult`` also when the account
    then missed its targets), or None.  ``sentence``: the one sentence the CLI printed for a
    failure, or None.  ``kill_file``: the kill-switch file when it exists at the end of ``execute``.
    A dry run sends no plan_ready / validated / orders_done.  A failure already told by a more
    specific alert that is sent (orders_done of a run that missed its targets, the kill switch)
    is not sent twice; any other failure after a successful run is.
    """
    wanted = set(events)
    out = []
    done = _done_alert(command, result)
    if done is not None and done.event in wanted:
        out.append(done)
    named = "kill switch" in (sentence or "").lower()
    switch = command == "execute" and (kill_file is not None or named)
    if switch and "kill_switch" in wanted:
        out.append(kill_switch(kill_file, sentence if named else None))
    # orders_done tells a failure only when it is the targets-missed one; a crash after a run
    # that reached its targets still sends its failure alert (the exit code is 1).
    missed = done is not None and done.event == "orders_done" and not result.report.reached_targets
    told = (switch and "kill_switch" in wanted) or (missed and "orders_done" in wanted)
    if sentence and "failure" in wanted and not told:
        out.append(failure(command, sentence, exit_code))
    return out


# --- redaction ----------------------------------------------------------------------------------

_URL_SHAPED = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")


def label(index: int, url: str) -> str:
    """How logs and the terminal name a URL: its place in ``notify.urls`` and its scheme only."""
    scheme = url.split("://", 1)[0].strip().lower() if "://" in url else ""
    return f"#{index} {scheme}://" if re.fullmatch(r"[a-z][a-z0-9+.-]{0,30}", scheme) else f"#{index} (not a URL)"


def secret_parts(url: str) -> set[str]:
    """Every part of ``url`` after its scheme that could be a secret (3 characters or more):
    user, password, host, port, path segments and query values, raw and percent-decoded."""
    rest, _, query = url.split("://", 1)[-1].partition("?")
    parts = set(re.split(r"[/:@#]+", rest)) | {chunk.partition("=")[2] for chunk in query.split("&")}
    parts |= {urllib.parse.unquote(p) for p in parts} | {urllib.parse.unquote_plus(p) for p in parts}
    return {p for p in parts if len(p) >= 3}


def redact(text: str, secrets: frozenset[str] | set[str], urls: bool = True) -> str:
    """``text`` with every secret part masked as ``***`` (and, with ``urls``, every URL-shaped run
    replaced by ``<url>``)."""
    if urls:
        text = _URL_SHAPED.sub("<url>", text)
    for part in sorted(secrets, key=len, reverse=True):
        text = text.replace(part, "***")
    return text


class _AppriseLogGate(logging.Handler):
    """Apprise's warnings and errors, forwarded to our log with the URLs' secret parts masked
    (its debug lines, which print URLs and payloads, are never created: its level is WARNING)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.secrets: frozenset[str] = frozenset()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = redact(record.getMessage(), self.secrets)
        except Exception:  # a message that cannot be formatted is not worth a leak
            return
        log.log(record.levelno, "apprise: %s", text)


class _RedactFilter(logging.Filter):
    """On our log's handlers: masks the URLs' secret parts in every record, whoever logs it
    (urllib3 logs each request line, path included, at DEBUG: a webhook token, a bot token)."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _GATE.secrets
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 (the handler reports a record it cannot format)
            return True
        masked = redact(message, secrets, urls=False)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), secrets, urls=False)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, secrets, urls=False)
        return True


_GATE = _AppriseLogGate()
_FILTER = _RedactFilter()


def _guard_logs(urls: Sequence[str]) -> None:
    """Keep the URLs' secrets out of our log, for the rest of the process (a send abandoned at
    its timeout may still log): apprise's logger is detached from ours (``_AppriseLogGate``),
    and every handler of our log masks the secret parts of any record (``_RedactFilter``)."""
    _GATE.secrets = _GATE.secrets.union(*(secret_parts(url) for url in urls))  # a new set: readers never see it change
    alog = logging.getLogger("apprise")
    alog.setLevel(logging.WARNING)
    alog.propagate = False
    if _GATE not in alog.handlers:
        alog.addHandler(_GATE)
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


# --- sending ------------------------------------------------------------------------------------


def _plugin(apprise: Any, url: str, timeout: float) -> Any:
    """Apprise's plugin for ``url`` (None when it is not a valid Apprise URL), its socket connect
    and read timeouts (what the ``cto`` / ``rto`` URL arguments set) at most ``timeout``.

    Why both this and the join in ``send``: the socket timeouts end a silent service's request,
    the join bounds the command's wait even for a service that answers a byte at a time (the
    daemon thread is then abandoned and never holds the process's exit)."""
    try:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    except Exception:  # noqa: BLE001 (a URL apprise cannot even parse)
        return None
    if plugin is not None:
        query = urllib.parse.parse_qs(url.partition("?")[2])
        plugin.socket_connect_timeout = min(plugin.socket_connect_timeout, timeout) if "cto" in query else timeout
        plugin.socket_read_timeout = min(plugin.socket_read_timeout, timeout) if "rto" in query else timeout
    return plugin


def _deliver(apprise: Any, plugin: Any, alert: Alert, box: dict) -> None:
    """One alert to one URL, in a worker thread: ``box`` gets ``ok`` and ``why``.  Never raises."""
    try:
        # The plugin itself, in this daemon thread: ``Apprise.notify`` would run the request in its
        # own (non-daemon) pool, which the interpreter waits for at exit, so a service that drips
        # bytes could hold the process, and cron's ``validate && execute``, for a minute.
        ok = bool(plugin.notify(body=alert.body, title=alert.title, notify_type=apprise.NotifyType(alert.level),
                                body_format=apprise.NotifyFormat.TEXT))
        box["why"] = "" if ok else "the service refused it or could not be reached"
        box["ok"] = ok
    except Exception as exc:  # noqa: BLE001 (a plugin's bug must not reach the run)
        box["why"] = f"{exc.__class__.__name__}: {redact(str(exc), _GATE.secrets)}"
        box["ok"] = False


def _start(apprise: Any, cfg: NotifyConfig, alerts: Sequence[Alert]) -> list[tuple[Alert, str, Any, dict]]:
    """One daemon thread per (alert, URL), started: (alert, label, thread or None, box)."""
    jobs = []
    for alert in alerts:
        for i, url in enumerate(cfg.urls, 1):
            box: dict = {"ok": False, "why": "not a valid Apprise URL"}
            plugin, thread = _plugin(apprise, url, cfg.timeout_seconds), None
            if plugin is not None:
                thread = threading.Thread(target=_deliver, args=(apprise, plugin, alert, box), daemon=True,
                                          name=f"prep-alert-{alert.event}-{i}")
                thread.start()
            jobs.append((alert, label(i, url), thread, box))
    return jobs


def send(cfg: NotifyConfig, alerts: Sequence[Alert]) -> list[Delivery]:
    """Send every alert to every URL of ``cfg.urls`` at once; wait at most ``cfg.timeout_seconds``.

    Never raises and never waits longer: a URL that is invalid, refused, failing or silent is
    logged (by its ``label``, never the URL) as FAILED and the caller goes on; a silent one is
    abandoned to its daemon thread, whose socket times out after ``timeout_seconds`` as well.
    Returns one ``Delivery`` per alert and URL, in order (empty when there is no URL or alert).
    """
    if not cfg.urls or not alerts:
        return []
    try:
        import apprise

        _guard_logs(cfg.urls)
        apprise.Apprise.instantiate(cfg.urls[0], suppress_exceptions=True)  # loads the plugins: not timed
    except Exception as exc:  # noqa: BLE001 (apprise missing or broken: the run goes on)
        log.warning("alerts not sent: apprise could not be loaded (%s)", exc.__class__.__name__)
        return [Delivery(label(i, u), False, "apprise could not be loaded")
                for _ in alerts for i, u in enumerate(cfg.urls, 1)]
    deadline = time.monotonic() + cfg.timeout_seconds
    out = []
    for alert, name, thread, box in _start(apprise, cfg, alerts):
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        if thread is not None and thread.is_alive():
            delivery = Delivery(name, False, f"no answer within {cfg.timeout_seconds:g} s")
        else:
            delivery = Delivery(name, bool(box["ok"]), str(box["why"]))
        if delivery.ok:
            log.info("alert %s sent to %s", alert.event, name)
        else:
            log.warning("alert %s to %s FAILED: %s", alert.event, name, delivery.detail)
        out.append(delivery)
    return out
