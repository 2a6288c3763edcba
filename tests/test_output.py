"""What the commands print, read at 80 columns, and what the execute summary and the order journal hold.

In a terminal of 80 columns rich lays tables out at 80; under click's runner (not a terminal) the CLI
prints at 120 (``cli_run.State``).  So the 80-column checks build the console the way the CLI does
(``highlight=False, soft_wrap=False``) at width 80, and hand it to the very functions the CLI calls.
Real nights of data/sample: the demo night (prepare 2021-04-19, validate and execute 2021-04-20),
2020-02-24 (ALB rejected at 84.7 %), 2020-03-20 (4 names over a 20 % cap).
"""

import datetime as dt
import io
import json
import stat

import pytest
from rich.console import Console

from trading_system.present import render
from trading_system.config import load_config
from trading_system.sessions import Clock

D = dt.date
WIDTH = 80


def at80(folder, as_of: str | None, work) -> str:
    """Run ``work(cfg, clock, console)`` on an 80-column console built like the CLI's; return what it printed."""
    console = Console(highlight=False, soft_wrap=False, width=WIDTH, file=io.StringIO())
    work(load_config(folder / "config.yaml"), Clock.from_env(as_of), console)
    return console.file.getvalue()


def assert_fits(output: str) -> None:
    """No line over 80 columns, and nothing cut short with an ellipsis."""
    long = [line for line in output.splitlines() if len(line) > WIDTH]
    assert not long, "\n".join(long)
    assert "…" not in output, output


def demo_night(prep) -> None:
    for as_of, cmd in (("2021-04-19T20:00", "prepare"), ("2021-04-20T09:00", "validate"),
                       ("2021-04-20T09:31", "execute")):
        r = prep("--as-of", as_of, cmd)
        assert r.exit_code == 0, r.output


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A workspace after the demo night (module-scoped: the tests below only read it)."""
    from conftest import Prep, write_config

    folder = tmp_path_factory.mktemp("demo")
    write_config(folder)
    prep = Prep(folder)
    demo_night(prep)
    return prep


def test_history_and_replay_fit_80_columns_and_keep_every_figure(demo, sample_bars):
    from trading_system.present import archives as show
    from trading_system.review.archives import history, replay

    out = at80(demo.folder, None, lambda cfg, clock, console: show.history(console, history(cfg)))
    assert_fits(out)
    archive = json.loads(next((demo.folder / "archived_trades").glob("*.json")).read_text())
    row = next(line for line in out.splitlines() if line.startswith("2021-04-20"))
    assert row.split() == ["2021-04-20", "20210420-b5367119", "executed", "ASYM", "100.0", "%", "0", "of", "18", "18"]

    out = at80(demo.folder, None, lambda cfg, clock, console: show.replay(
        console, replay(cfg, clock, None, True, str(demo.folder / "reports"))))
    assert_fits(out)
    # Every pick's return over its first session, whole: close of 2021-04-20 / its open - 1 (real bars).
    bars = sample_bars[sample_bars["date"] == D(2021, 4, 20)].set_index("symbol")
    vr = archive["plan"]["validation_results"]
    lines = out.splitlines()
    for sym in vr["checks"]:
        row = next(line for line in lines if line.startswith(f"{sym} "))
        first = bars.loc[sym, "close"] / bars.loc[sym, "open"] - 1
        assert row.split()[-3:] == [f"{first:+.1%}", "-", "-"], row
        assert f"{vr['checks'][sym]['retention'] * 100:.1f} %" in row
    assert any(line.startswith("ASYM (traded) ") and "past the data" in line for line in lines)


def test_validate_fits_80_columns_on_the_night_alb_was_rejected(prep):
    from trading_system.validate.run import run_validate

    assert prep("--as-of", "2020-02-21T20:00", "prepare").exit_code == 0
    out = at80(prep.folder, "2020-02-24T09:00",
               lambda cfg, clock, console: render.validate(console, run_validate(cfg, clock)))
    assert_fits(out)
    row = next(line for line in out.splitlines() if line.startswith("│ ALB "))
    assert "84.7 %" in row and "REJECT (kept 84.7 % of its" in row
    assert "under 85.0 %" in out
    # Every pick priced from one source: said once under the table, not in a column of its own.
    assert "pre-market prices: sample:session_open" in out and out.count("sample:session_open") == 1


def test_prepare_at_80_columns_says_when_the_cap_cannot_hold(prep):
    from trading_system.prepare.run import run_prepare

    out = at80(prep.folder, "2020-03-20T20:00",
               lambda cfg, clock, console: render.prepare(console, run_prepare(cfg, clock, dry_run=True)))
    assert_fits(out)
    assert "note: ASYM: 4 names cannot honour the 20 % cap; weights are equal, 25.0 % each" in out


def test_execute_totals_and_80_columns(prep):
    from trading_system.execute.run import run_execute

    for as_of, cmd in (("2021-04-19T20:00", "prepare"), ("2021-04-20T09:00", "validate")):
        assert prep("--as-of", as_of, cmd).exit_code == 0

    def work(cfg, clock, console):
        render.execute(console, run_execute(cfg, clock, announce=console.print))

    out = at80(prep.folder, "2021-04-20T09:31", work)
    assert_fits(out)
    ex = json.loads(next((prep.folder / "archived_trades").glob("*.json")).read_text())["execution"]
    bought = sum(o["filled_qty"] * o["filled_avg_price"] for o in ex["orders"] if o["side"] == "buy")
    assert round(bought, 2) == 97_999.90 and ex["account_after"]["cash"] == 2_000.10
    assert ("totals: bought $97,999.90, sold $0.00, turnover 0.98x equity, cash left $2,000.10"
            in " ".join(out.split()))
    # Client order ids: the pattern once under the table, not a column of 29 characters.
    assert "prep-20210420-b5367119-b-SYMBOL (buys)" in " ".join(out.split())
    assert "prep-20210420-b5367119-b-NUE" not in out
    nue = next(o for o in ex["orders"] if o["symbol"] == "NUE")
    row = next(line for line in out.splitlines() if line.startswith("│ NUE "))
    assert [c.strip() for c in row.strip("│").split("│")] == [
        "NUE", "buy", f"${nue['notional']:,.2f}", "filled", f"{nue['filled_qty']:.4f}",
        f"{nue['filled_avg_price']:,.2f}"]


def test_a_dry_run_execute_totals_what_it_would_send(prep):
    for as_of, cmd in (("2021-04-19T20:00", "prepare"), ("2021-04-20T09:00", "validate")):
        assert prep("--as-of", as_of, cmd).exit_code == 0
    r = prep("--as-of", "2021-04-20T09:31", "execute", "--dry-run")
    assert r.exit_code == 0, r.output
    # The same buys a live run sends (see above), from an all-cash account: nothing to sell.
    assert "totals (dry run, nothing sent): buys $97,999.90 planned, 0 sell order(s)" in " ".join(r.output.split())


def test_status_fits_80_columns(demo):
    from trading_system.present import status as show
    from trading_system.review.status import status

    (demo.folder / "KILL_SWITCH").write_text("")
    try:
        out = at80(demo.folder, "2021-04-20T17:00", lambda cfg, clock, console: show.status(console, status(cfg, clock)))
    finally:
        (demo.folder / "KILL_SWITCH").unlink()
    assert_fits(out)
    assert out.startswith("KILL SWITCH ON:")
    assert sum(line.startswith("│ ") for line in out.splitlines()) == 18 + 1   # 18 names and the cash


# --- the order journal is private, like the other state files -----------------------------------------

def test_the_order_journal_is_0600_like_the_state_files(demo):
    journal = demo.folder / "data" / "orders" / "20210420-b5367119.jsonl"
    archive = next((demo.folder / "archived_trades").glob("*.json"))
    account = demo.folder / "data" / "sim_account.json"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (journal, archive, account)}
    assert modes == {p.name: 0o600 for p in (journal, archive, account)}


def test_a_journal_an_older_version_left_0644_is_made_private(tmp_path):
    from trading_system.state.journal import Journal

    path = tmp_path / "orders" / "20210420-b5367119.jsonl"
    path.parent.mkdir()
    path.write_text('{"event": "intent", "client_order_id": "prep-20210420-b5367119-b-NUE"}\n')
    path.chmod(0o644)
    journal = Journal(path)
    journal.append("absent", client_order_id="prep-20210420-b5367119-b-NUE")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [e["event"] for e in Journal(path).entries] == ["intent", "absent"]
