"""`prep status`: the next session to open, the kill switch, the positions and when they are valued.

Real nights of data/sample: after the close of Friday 2020-03-13, and the demo night (prepare 2021-04-19,
validate and execute 2021-04-20).
"""

import datetime as dt
import json

import pytest

from fakes.alpaca_workspace import alpaca_workspace, make_fake, validated_plan  # noqa: F401
from trading_system.sessions import ET
from trading_system.review.status import market_line

D = dt.date


def flat(output: str) -> str:
    """The output with its line wraps undone (rich wraps a sentence longer than the console)."""
    return " ".join(output.split())


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=ET)


@pytest.mark.parametrize("now, line, valued", [
    # After a Friday's close: the next session to open is Monday's; the account is valued at Friday's.
    ("2020-03-13T17:00", "market closed; next session 2020-03-16 opens Mon 09:30 ET", D(2020, 3, 13)),
    # Before the open on a session day: today opens next; yesterday's prices are the last known.
    ("2021-04-20T08:00", "market closed; next session 2021-04-20 opens 09:30 ET today", D(2021, 4, 19)),
    ("2021-04-20T10:00", "market open: session 2021-04-20 closes 16:00 ET; next session 2021-04-21", D(2021, 4, 20)),
    ("2021-04-18T12:00", "market closed; next session 2021-04-19 opens Mon 09:30 ET", D(2021, 4, 16)),   # Sunday
    ("2021-04-02T12:00", "market closed; next session 2021-04-05 opens Mon 09:30 ET", D(2021, 4, 1)),    # Good Friday
    # The early close of the day after Thanksgiving (13:00): at 14:00 the market is closed.
    ("2020-11-27T14:00", "market closed; next session 2020-11-30 opens Mon 09:30 ET", D(2020, 11, 27)),
])
def test_market_line_names_the_next_session_to_open(now, line, valued):
    assert market_line(at(now)) == (line, valued)


def test_after_the_close_next_session_is_monday(prep):
    r = prep("--as-of", "2020-03-13T17:00", "status")
    assert r.exit_code == 0, r.output
    assert "next session 2020-03-16 opens Mon 09:30 ET" in r.output
    assert "next session 2020-03-13" not in r.output
    assert "equity $100,000.00, cash $100,000.00, valued at the opening prices of session 2020-03-13" in flat(r.output)
    assert "positions: none (all cash)" in r.output
    assert "KILL SWITCH" not in r.output


def test_an_active_kill_switch_comes_first(prep):
    (prep.folder / "KILL_SWITCH").write_text("")
    r = prep("--as-of", "2020-03-13T17:00", "status")
    assert r.exit_code == 0, r.output
    first = r.output.splitlines()[0]
    assert first.startswith("KILL SWITCH ON:") and str(prep.folder / "KILL_SWITCH") in flat(r.output)
    assert "no order is sent" in flat(r.output)
    (prep.folder / "KILL_SWITCH").unlink()
    assert "KILL SWITCH" not in prep("--as-of", "2020-03-13T17:00", "status").output


def test_positions_after_the_demo_night(prep):
    (prep.folder / "config.yaml").write_text((prep.folder / "config.yaml").read_text()
                                             + "costs: {slippage_bps: 0}\n")   # fills at the opens exactly
    for as_of, cmd in (("2021-04-19T20:00", "prepare"), ("2021-04-20T09:00", "validate"),
                       ("2021-04-20T09:31", "execute")):
        r = prep("--as-of", as_of, cmd)
        assert r.exit_code == 0, r.output
    archive = json.loads(next((prep.folder / "archived_trades").glob("*.json")).read_text())
    account = json.loads((prep.folder / "data" / "sim_account.json").read_text())
    r = prep("--as-of", "2021-04-20T17:00", "status")
    assert r.exit_code == 0, r.output
    assert "next session 2021-04-21 opens Wed 09:30 ET" in r.output
    # The simulated broker values at the opens of 2021-04-20: the prices the orders filled at.
    fills = {o["symbol"]: o["filled_avg_price"] for o in archive["execution"]["orders"]}
    values = {s: q * fills[s] for s, q in account["positions"].items()}
    equity = account["cash"] + sum(values.values())
    assert equity == pytest.approx(100_000.0, abs=0.01)
    assert (f"equity ${equity:,.2f}, cash ${account['cash']:,.2f}, valued at the opening prices of "
            "session 2021-04-20") in flat(r.output)
    lines = r.output.splitlines()
    assert len(account["positions"]) == 18
    for sym, qty in account["positions"].items():
        row = next(line for line in lines if line.startswith(f"│ {sym} "))
        cells = [c.strip() for c in row.strip("│").split("│")]
        assert cells == [sym, f"{qty:,.4f}", f"${values[sym]:,.2f}", f"{values[sym] / equity:.1%}"]
    # Largest first, cash last.
    order = [line.split("│")[1].strip() for line in lines if line.startswith("│ ")]
    assert order[:-1] == sorted(values, key=lambda s: -values[s]) and order[-1] == "cash"
    cash_row = next(line for line in lines if line.startswith("│ cash "))
    assert f"${account['cash']:,.2f}" in cash_row and f"{account['cash'] / equity:.1%}" in cash_row


def test_alpaca_equity_is_valued_now(tmp_path, validated_plan, monkeypatch):  # noqa: F811
    from conftest import Prep

    with make_fake(validated_plan) as fake:
        for k in ("PREP_AS_OF", "ALPACA_PAPER"):
            monkeypatch.delenv(k, raising=False)
        for k, v in fake.env().items():
            monkeypatch.setenv(k, v)
        prep = Prep(alpaca_workspace(tmp_path, validated_plan))
        r = prep("status")
        assert r.exit_code == 0, r.output
        assert "broker alpaca: reachable" in r.output and "valued now, by the broker" in r.output
        assert "--as-of does not apply" not in r.output
        for sym, qty in fake.positions.items():
            assert any(line.startswith(f"│ {sym} ") and f"${qty * fake.prices[sym]:,.2f}" in line
                       for line in r.output.splitlines()), sym
        r = prep("--as-of", "2021-04-20T09:00", "status")
        assert "valued now, by the broker (--as-of does not apply to a real account)" in flat(r.output)


def test_a_live_account_is_read_with_status_live(tmp_path, validated_plan, monkeypatch):  # noqa: F811
    """Review finding: with ALPACA_PAPER=false, `status` needs `--live` like `execute`, and then
    reads the live account (a live-looking account number at the fake); without it, says so."""
    from conftest import Prep

    with make_fake(validated_plan, account_number="3AB1234567") as fake:
        monkeypatch.delenv("PREP_AS_OF", raising=False)
        for k, v in fake.env().items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("ALPACA_PAPER", "false")
        prep = Prep(alpaca_workspace(tmp_path, validated_plan))
        r = prep("status")
        assert r.exit_code == 0 and "add --live" in " ".join(r.output.split())
        r = prep("status", "--live")
        assert r.exit_code == 0, r.output
        assert "broker alpaca: reachable" in r.output and fake.orders == []
