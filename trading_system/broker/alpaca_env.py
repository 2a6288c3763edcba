"""Which Alpaca account a run may talk to, from the environment: keys, the paper/live switches and
the host (DESIGN §1: live money needs both ``ALPACA_PAPER=false`` and ``--live``, whatever the
base URL says).  Keys never come from ``config.yaml``.  The account itself is checked once
connected (``AlpacaBroker._check_account_kind``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from trading_system.errors import BadInputError, ConfigError

PAPER_HOST, LIVE_HOST = "paper-api.alpaca.markets", "api.alpaca.markets"
PAPER_URL, LIVE_URL = f"https://{PAPER_HOST}", f"https://{LIVE_HOST}"


def _base_url(raw: str) -> tuple[str | None, str, str]:
    """(url_override, host, scheme) of an ``ALPACA_BASE_URL`` value; (None, "", "") when unset.

    The override is the root without a trailing ``/`` or ``/v2`` (alpaca-py appends ``/v2``); the
    host is lower-case without a trailing dot, also for a value without a scheme.
    """
    base = raw.strip().rstrip("/")
    if not base:
        return None, "", ""
    if base.lower().endswith("/v2"):
        base = base[:-3].rstrip("/")
    parts = urlsplit(base if "://" in base else "//" + base)
    return base, (parts.hostname or "").rstrip("."), (parts.scheme if "://" in base else "").lower()


def credentials_from_env(live: bool, environ) -> dict:
    """Keys, paper flag and base URL from the environment (never from config.yaml).

    Paper vs live follows what the run will talk to.  Live money needs both ``ALPACA_PAPER=false``
    and ``--live`` (``live``); Alpaca's live host (``api.alpaca.markets``, any scheme, port,
    path or case) is refused without them, and its paper host (``paper-api.alpaca.markets``)
    is refused with them.  Any other host (a proxy, a loopback fake) is allowed: the switches
    say which kind of account is expected and ``AlpacaBroker`` checks the account itself.

    Raises:
        ConfigError: keys missing, or ``ALPACA_PAPER`` not ``true``/``false``.
        BadInputError: a live account without both switches, a switch/host mismatch, or a base
            URL that is not http(s) (exit 2, nothing sent).
    """
    key = (environ.get("ALPACA_API_KEY") or "").strip()
    secret = (environ.get("ALPACA_SECRET_KEY") or "").strip()
    if not key or not secret:
        raise ConfigError("ALPACA_API_KEY and ALPACA_SECRET_KEY must be set (environment or .env) for broker alpaca.")
    paper_text = (environ.get("ALPACA_PAPER") or "true").strip().lower()
    if paper_text not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"ALPACA_PAPER must be true or false, not {paper_text!r}.")
    paper = paper_text in ("true", "1", "yes")
    if not paper and not live:
        raise BadInputError("ALPACA_PAPER=false selects a live (real-money) account: "
                            "add --live to trade it, or unset ALPACA_PAPER for paper.")
    base, host, scheme = _base_url(environ.get("ALPACA_BASE_URL") or "")
    if paper and host == LIVE_HOST:
        raise BadInputError(f"ALPACA_BASE_URL points at Alpaca's live (real-money) host {LIVE_HOST}: "
                            f"set ALPACA_PAPER=false and add --live to trade it, or set it to {PAPER_URL} for paper.")
    if not paper and host == PAPER_HOST:
        raise BadInputError(f"ALPACA_PAPER=false and --live ask for a live account but ALPACA_BASE_URL points at "
                            f"Alpaca's paper host {PAPER_HOST}: unset ALPACA_BASE_URL (or set it to {LIVE_URL}) "
                            "to trade live, or unset ALPACA_PAPER and drop --live for paper.")
    if base is not None and (scheme not in ("http", "https") or not host):
        raise BadInputError(f"ALPACA_BASE_URL must be an http(s) URL such as {PAPER_URL}, not {base!r}.")
    return {"api_key": key, "secret_key": secret, "paper": paper, "url_override": base}
