"""The checks of ``prep doctor`` that ask a vendor: Polygon (reachable, key, entitlements) and Alpaca
(reachable, account kind and status, funds).

Each uses the project's own client, made impatient: Polygon's with no retry and one timeout of
at most ``polygon.give_up_after_seconds`` (and ``DOCTOR_TIMEOUT``), Alpaca's with at most two
reads, so an unreachable host fails in seconds instead of the runs' whole retry budget.  A first
request that does not get through (unreachable, unknown key) skips the rest of that vendor.
"""

from __future__ import annotations

import datetime as dt
import enum
import urllib.parse

import requests

from trading_system import sessions
from trading_system.config import Config
from trading_system.doctor.base import FAIL, OK, WARN, Check
from trading_system.doctor.local import newest_session
from trading_system.errors import ConfigError, DataError, PrepError
from trading_system.marketdata.polygon import NotEntitledError, NotPublishedError, PolygonClient

#: The longest the doctor waits for one answer, seconds (a blackholed host costs one of these).
DOCTOR_TIMEOUT = 15.0
#: Requests the doctor makes of Polygon at most; they go at once (the free plan allows 5 a minute).
POLYGON_REQUESTS = 3
INDEX = "I:SPX"


def public_url(url: str) -> str:
    """``url`` without user, password, path or query: what may be printed."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from, outermost first."""
    chain = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 10:
        chain.append(chain[-1].__cause__)
    return chain


def _doctor_client(cfg: Config) -> PolygonClient:
    p = cfg.polygon
    quick = p.model_copy(update={"max_retries": 0, "burst": max(p.burst, POLYGON_REQUESTS),
                                 "timeout_seconds": min(p.timeout_seconds, p.give_up_after_seconds, DOCTOR_TIMEOUT)})
    return PolygonClient.from_env(quick)


def _first_request(client: PolygonClient, session: dt.date, paid: bool) -> tuple[list[Check], bool]:
    """Grouped daily of ``session``: reachability, the key and the grouped-daily entitlement at once.
    Returns the checks and whether the other requests are worth making."""
    where = public_url(client.base_url)
    try:
        bars = client.grouped_daily(session)
    except NotPublishedError as exc:
        reached = Check("polygon", OK, f"reachable at {where}; the key is valid.")
        if paid:
            return [reached, Check("polygon daily", FAIL, f"polygon.plan is paid but Polygon has not published "
                                                           f"session {session} yet for this key (403: before end of "
                                                           "day), as on the free plan: set polygon.plan: free.")], True
        return [reached, Check("polygon daily", FAIL, str(exc))], True
    except NotEntitledError as exc:
        return [Check("polygon", OK, f"reachable at {where}; the key is valid."),
                Check("polygon daily", FAIL, f"not entitled: {exc}")], True
    except ConfigError as exc:  # 401
        return [Check("polygon", FAIL, f"unknown key: {exc}")], False
    except DataError as exc:  # no answer, 429 or 5xx (no retry here)
        chain = _causes(exc)
        network = next((c for c in chain if isinstance(c, requests.RequestException)), None)
        advice = "check the network, a proxy or POLYGON_BASE_URL."
        if isinstance(network, requests.Timeout):
            return [Check("polygon", FAIL, f"unreachable: no answer from {where} within "
                                           f"{client.cfg.timeout_seconds:g} s; {advice}")], False
        if network is not None:
            return [Check("polygon", FAIL, f"unreachable: the connection to {where} failed "
                                           f"({network.__class__.__name__}); {advice}")], False
        if "(429)" in str(chain[-1]):  # the client's reason for a rate-limited answer
            return [Check("polygon", WARN, f"reachable at {where} but rate limited (429), so the key and plan are "
                                           "unchecked: run prep doctor again in a minute.")], False
        return [Check("polygon", FAIL, f"answered with an error: {exc}")], False
    reached = Check("polygon", OK, f"reachable at {where}; the key is valid.")
    if bars.empty:
        return [reached, Check("polygon daily", WARN, f"entitled, but grouped daily of session {session}, a day "
                                                      "the NYSE traded, came back with no bars; prepare would stop: "
                                                      "try again later.")], True
    return [reached, Check("polygon daily", OK, f"entitled: grouped daily of session {session} has "
                                                f"{len(bars):,} bars.")], True


def _snapshot(client: PolygonClient) -> tuple[Check, bool | None]:
    try:
        client.snapshot(["SPY"])
    except NotEntitledError:
        return Check("polygon snapshot", WARN, "not entitled (403): pre-market prices will come from Alpaca."), False
    except PrepError as exc:
        return Check("polygon snapshot", WARN, f"not checked: {exc}"), None
    return Check("polygon snapshot", OK, "entitled: pre-market prices will come from Polygon's snapshot."), True


def _indices(client: PolygonClient, session: dt.date) -> Check:
    try:
        client.aggregates(INDEX, session - dt.timedelta(days=10), session)
    except NotEntitledError:
        return Check("polygon indices", WARN, f"not entitled to index bars ({INDEX}, 403): the regime will use "
                                              "the ETF proxies SPY, QQQ and IWM.")
    except PrepError as exc:
        return Check("polygon indices", WARN, f"not checked: {exc}")
    return Check("polygon indices", OK, f"entitled: the regime can read index bars ({INDEX}, I:NDX, I:RUT, "
                                        "I:VIX).")


def polygon_checks(cfg: Config, clock: sessions.Clock) -> tuple[list[Check], bool | None]:
    """Reachability and key, then the entitlements: grouped daily (one request for the newest
    session the plan publishes), the snapshot (paid plan only), index aggregates.

    Requires: ``POLYGON_API_KEY`` set.  Returns the checks and whether the key may read the
    snapshot (None when not asked).
    """
    try:
        client = _doctor_client(cfg)
    except PrepError as exc:
        return [Check("polygon", FAIL, str(exc))], None
    session = newest_session(cfg, clock.now())
    paid = cfg.polygon.plan == "paid"
    checks, go_on = _first_request(client, session, paid)
    if not go_on:
        return checks, None
    entitled = None
    if paid:
        snap, entitled = _snapshot(client)
        checks.append(snap)
    checks.append(_indices(client, session))
    return checks, entitled


def _quick(cfg: Config) -> Config:
    """``cfg`` with at most two reads per Alpaca request (the doctor fails fast; runs keep theirs)."""
    a = cfg.broker.alpaca
    alpaca = a.model_copy(update={"read_attempts": min(a.read_attempts, 2)})
    return cfg.model_copy(update={"broker": cfg.broker.model_copy(update={"alpaca": alpaca})})


def _status(broker) -> tuple[str | None, float | None, str]:
    """(status, buying power in dollars, why unknown) from alpaca-py's own account model: the broker
    protocol's ``Account`` carries neither.  A failed read gives (None, None, the reason)."""
    from alpaca.common.exceptions import APIError

    from trading_system.broker.alpaca import error_fields

    try:
        raw = broker.client.get_account()
    except APIError as exc:
        code, _, message = error_fields(exc)
        return None, None, f"HTTP {code}: {message}"
    except (requests.ConnectionError, requests.Timeout) as exc:
        return None, None, f"no answer: {exc.__class__.__name__}"
    status = raw.status.value if isinstance(raw.status, enum.Enum) else str(raw.status)
    try:
        buying_power = float(raw.buying_power) if raw.buying_power is not None else None
    except ValueError:
        buying_power = None
    return status, buying_power, ""


def alpaca_checks(cfg: Config, live: bool, environ) -> list[Check]:
    """The account behind the keys: reachable, the kind (paper or live) the switches name, its status,
    whether trading is blocked, and its money (dollars)."""
    from trading_system.broker.alpaca import make_alpaca_broker

    try:
        broker = make_alpaca_broker(_quick(cfg), live, environ)
    except PrepError as exc:  # keys, ALPACA_PAPER, a switch / host mismatch: nothing was sent
        return [Check("alpaca", FAIL, str(exc))]
    try:
        account = broker.get_account()  # checks the account's kind against the switches
    except PrepError as exc:  # BadInputError: not the kind the switches name; BrokerError: keys, network
        return [Check("alpaca", FAIL, str(exc))]
    paper_text = (environ.get("ALPACA_PAPER") or "").strip()
    switches = ("ALPACA_PAPER=false and --live name it" if not broker.paper
                else f"ALPACA_PAPER={paper_text} names it" if paper_text else "ALPACA_PAPER unset (paper) names it")
    kind = "paper" if broker.paper else "live (real-money)"
    checks = [Check("alpaca", OK, f"reachable at {public_url(broker.base_url)}; a {kind} account, as {switches}.")]
    status, buying_power, unknown = _status(broker)
    if account.account_blocked or account.trading_blocked:
        which = "the account is blocked" if account.account_blocked else "trading is blocked on the account"
        checks.append(Check("alpaca status", FAIL, f"{which}: orders would be refused; see the dashboard."))
    elif status is None:
        checks.append(Check("alpaca status", WARN, f"unknown: the second account read failed ({unknown})."))
    elif status != "ACTIVE":
        checks.append(Check("alpaca status", FAIL, f"the account is {status}, not ACTIVE: Alpaca accepts orders "
                                                   "only from an active account; see its dashboard."))
    else:
        checks.append(Check("alpaca status", OK, "ACTIVE; neither the account nor trading is blocked."))
    bp = "" if buying_power is None else f", buying power ${buying_power:,.2f}"
    money = (f"equity ${account.equity:,.2f}, cash ${account.cash:,.2f}{bp}; buys may spend "
             f"${account.cash_available:,.2f} (non-marginable buying power).")
    checks.append(Check("alpaca funds", OK if account.equity > 0 else WARN,
                        money if account.equity > 0 else f"the account is empty: {money}"))
    return checks
