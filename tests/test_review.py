"""`prep history` and `prep replay` over plans archived by the real nightly cycle."""

import datetime as dt
import json

import pytest

D = dt.date


def cycle(prep, evening: str, morning: str):
    for as_of, cmd in ((f"{evening}T20:00", "prepare"), (f"{morning}T09:00", "validate"),
                       (f"{morning}T09:31", "execute")):
        r = prep("--as-of", as_of, cmd)
        assert r.exit_code == 0, r.output


def basket(sample_bars, weights: dict, entry: D, exit_: D) -> float:
    """Buy at the entry session's open, mark at the exit session's close (no split in these windows)."""
    bars = sample_bars.set_index(["symbol", "date"])
    return sum(w * (bars.loc[(s, exit_), "close"] / bars.loc[(s, entry), "open"] - 1) for s, w in weights.items())


def test_history_lists_each_archive(prep):
    r = prep("history")
    assert r.exit_code == 0 and "no archived plans" in r.output
    cycle(prep, "2021-03-01", "2021-03-02")
    r = prep("history")
    assert r.exit_code == 0, r.output
    archive = json.loads(next((prep.folder / "archived_trades").glob("*.json")).read_text())
    vr = archive["plan"]["validation_results"]
    row = next(line for line in r.output.splitlines() if "2021-03-02" in line)
    assert "executed" in row and vr["selected_strategy"] in row
    assert f"{sum(not c['passed'] for c in vr['checks'].values())} of {len(vr['checks'])}" in row
    assert f" {vr['orders_executed']} " in row and row.rstrip(" │").endswith("no")
    (prep.folder / "archived_trades" / "pending_trades_20990101_000000.json").write_text("{broken")
    r = prep("history")
    assert r.exit_code == 0 and "unreadable" in r.output


def test_replay_shows_picks_and_forward_returns(prep, sample_bars):
    cycle(prep, "2021-03-01", "2021-03-02")
    r = prep("replay", "--latest")
    assert r.exit_code == 0, r.output
    plan = json.loads(next((prep.folder / "archived_trades").glob("*.json")).read_text())["plan"]
    vr = plan["validation_results"]
    assert f"selected {vr['selected_strategy']}" in r.output
    for sym, check in vr["checks"].items():
        assert any(line.startswith(f"│ {sym} ") and f"{check['original_score']:.1f}" in line
                   for line in r.output.splitlines()), sym
    # BUY_HOLD held from the open of 2021-03-02: 1 session (03-02), 5 (03-08), 20 (03-29), from real bars
    bh = plan["strategies"]["BUY_HOLD"]["allocations"]
    row = next(line for line in r.output.splitlines() if line.startswith("│ BUY_HOLD"))
    for exit_ in (D(2021, 3, 2), D(2021, 3, 8), D(2021, 3, 29)):
        assert f"{basket(sample_bars, bh, D(2021, 3, 2), exit_):+.1%}" in row
    chosen = vr["validated_strategies"][vr["selected_strategy"]]["validated_allocations"]
    row = next(line for line in r.output.splitlines() if "(traded)" in line)
    assert f"{basket(sample_bars, chosen, D(2021, 3, 2), D(2021, 3, 8)):+.1%}" in row
    png = prep.folder / "reports" / f"replay_{plan['plan_id']}.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_replay_says_when_a_horizon_runs_past_the_data_or_the_as_of(prep):
    cycle(prep, "2021-04-19", "2021-04-20")
    r = prep("replay", "--latest")
    assert r.exit_code == 0, r.output
    assert "5-session horizon: runs past the data (last bar 2021-04-21)" in r.output
    name = next((prep.folder / "archived_trades").glob("*.json")).name
    r = prep("--as-of", "2021-04-20T12:00", "replay", name)  # by file name, before the session closed
    assert r.exit_code == 0 and "has not closed" in r.output


@pytest.mark.parametrize("args,message", [
    ([], "or pass --latest"),
    (["nowhere.json"], "no archived plan at nowhere.json"),
])
def test_replay_bad_input_exits_2(prep, args, message):
    r = prep("replay", *args)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_replay_refuses_a_broken_archive(prep):
    bad = prep.folder / "broken.json"
    bad.write_text(json.dumps({"status": "executed", "plan": {"plan_id": "x"}}))
    r = prep("replay", str(bad))
    assert r.exit_code == 2 and "does not hold a valid plan" in r.output
