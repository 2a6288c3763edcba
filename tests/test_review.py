"""`prep history` and `prep replay` over plans archived by the real nightly cycle."""

import datetime as dt
import json
from pathlib import Path

import pytest

from conftest import cycled_night

D = dt.date


_CYCLED: dict[tuple[str, str], Path] = {}   # (evening, morning) -> a workspace that ran that night, this module


@pytest.fixture(scope="module", autouse=True)
def _cycled_nights(tmp_path_factory):
    """Each night's cycle runs once per module (``cycle``); the tests read copies of its workspace."""
    _CYCLED.clear()
    _CYCLED["folder"] = tmp_path_factory.mktemp("cycled")
    yield
    _CYCLED.clear()


def cycle(prep, evening: str, morning: str):
    """The real nightly cycle (prepare D 20:00, validate D+1 09:00, execute D+1 09:31) in a fresh workspace,
    run once per night and module; ``prep``'s empty workspace gets a copy of its files."""
    assert not (prep.folder / "archived_trades").exists() and not (prep.folder / "pending_trades.json").exists()
    cycled_night(_CYCLED, _CYCLED["folder"], prep, evening, morning)


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
    row = next(line for line in r.output.splitlines() if line.startswith("2021-03-02"))
    assert row.split()[:4] == ["2021-03-02", archive["plan"]["plan_id"], "executed", vr["selected_strategy"]]
    assert f"{sum(not c['passed'] for c in vr['checks'].values())} of {len(vr['checks'])}" in row
    assert row.rstrip().endswith(f" {vr['orders_executed']}")
    assert f"prep replay {archive['plan']['plan_id']}" in r.output
    (prep.folder / "archived_trades" / "pending_trades_20990101_000000.json").write_text("{broken")
    r = prep("history")
    assert r.exit_code == 0 and "unreadable: pending_trades_20990101_000000.json" in r.output


def test_replay_shows_picks_and_forward_returns(prep, sample_bars):
    cycle(prep, "2021-03-01", "2021-03-02")
    r = prep("replay", "--latest")
    assert r.exit_code == 0, r.output
    plan = json.loads(next((prep.folder / "archived_trades").glob("*.json")).read_text())["plan"]
    vr = plan["validation_results"]
    assert f"selected {vr['selected_strategy']}" in r.output
    for sym, check in vr["checks"].items():
        assert any(line.startswith(f"{sym} ") and f"{check['original_score']:.1f}" in line
                   for line in r.output.splitlines()), sym
    # BUY_HOLD held from the open of 2021-03-02: 1 session (03-02), 5 (03-08), 20 (03-29), from real bars
    bh = plan["strategies"]["BUY_HOLD"]["allocations"]
    row = next(line for line in r.output.splitlines() if line.startswith("BUY_HOLD "))
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
    (["20210420-00000000"], "no archived plan has id 20210420-00000000"),
])
def test_replay_bad_input_exits_2(prep, args, message):
    r = prep("replay", *args)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_replay_refuses_a_broken_archive(prep):
    bad = prep.folder / "broken.json"
    bad.write_text(json.dumps({"status": "executed", "plan": {"plan_id": "x"}}))
    r = prep("replay", str(bad))
    assert r.exit_code == 2 and "does not hold a valid plan" in r.output


def test_replay_takes_the_plan_id_every_command_prints(prep):
    cycle(prep, "2021-04-19", "2021-04-20")
    folder = prep.folder / "archived_trades"
    first = next(folder.glob("*.json"))
    plan_id = json.loads(first.read_text())["plan"]["plan_id"]
    assert plan_id == "20210420-b5367119"
    r = prep("replay", plan_id)
    assert r.exit_code == 0, r.output
    assert f"replay plan {plan_id}:" in r.output and f"archive: {first.name}" in r.output
    # A plan archived twice (a rerun that finished it): the newest archive, and a word about the other.
    doc = json.loads(first.read_text())
    doc["status"] = "executed again"
    (folder / "pending_trades_20210420_093500.json").write_text(json.dumps(doc))
    (folder / "pending_trades_20210421_093100.json").write_text("{broken")   # passed over
    r = prep("replay", plan_id)
    assert r.exit_code == 0, r.output
    assert "archive: pending_trades_20210420_093500.json" in r.output and "executed again" in r.output
    assert f"2 archives hold plan {plan_id}" in r.output and "replaying the newest" in r.output


# --- charts: session ticks that do not overlap, one colour per account ----------------------------------

def _capture_figures(monkeypatch) -> list:
    """Keep every figure the charts module saves (the PNG is still written)."""
    from trading_system.present import charts

    figures, save = [], charts._save

    def keep(fig, path):
        figures.append(fig)
        return save(fig, path)

    monkeypatch.setattr(charts, "_save", keep)
    return figures


def _overlaps(labels) -> list[tuple[str, str]]:
    boxes = [(t.get_text(), t.get_window_extent()) for t in labels if t.get_text()]
    return [(a, b) for (a, ba), (b, bb) in zip(boxes, boxes[1:]) if ba.overlaps(bb)]


def test_replay_chart_has_session_ticks_that_do_not_overlap(prep, monkeypatch):
    from matplotlib.dates import num2date

    from trading_system.present.charts import ACCOUNT_COLOURS, MAX_SESSION_TICKS
    from trading_system.sessions import sessions_between

    cycle(prep, "2021-03-01", "2021-03-02")
    figures = _capture_figures(monkeypatch)
    r = prep("replay", "--latest")
    assert r.exit_code == 0, r.output
    fig = figures[-1]
    ax = fig.axes[0]
    fig.canvas.draw()
    held = sessions_between(D(2021, 3, 2), D(2021, 3, 29))
    assert len(held) == 20
    ticks = [num2date(x).date() for x in ax.get_xticks()]
    assert 2 <= len(ticks) <= MAX_SESSION_TICKS
    assert set(ticks) <= set(held) and ticks[0] == held[0]           # sessions only, never an hour between two
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"{d:%m-%d}" for d in ticks]
    assert not _overlaps(ax.get_xticklabels())
    colours = {line.get_label(): line.get_color() for line in ax.get_lines() if not line.get_label().startswith("_")}
    vr = json.loads(next((prep.folder / "archived_trades").glob("*.json")).read_text())["plan"]["validation_results"]
    assert colours[f"{vr['selected_strategy']} (traded)"] == ACCOUNT_COLOURS["system"]
    assert colours["BUY_HOLD"] == ACCOUNT_COLOURS["BUY_HOLD"]
    if any(not c["passed"] for c in vr["checks"].values()):
        rejected = next(label for label in colours if label.startswith("rejected picks"))
        assert colours[rejected] == ACCOUNT_COLOURS["rejected"]
    assert len(set(colours.values())) == len(colours)


def test_one_colour_per_account_in_the_backtest_and_replay_charts(sample_bars):
    """The backtest's accounts keep their colour whatever the column order; the same names in a replay
    chart get the same colours.  The curves are real closes (SPY, QQQ, IWM) standing in for accounts."""
    import pandas as pd

    from trading_system.present.charts import ACCOUNT_COLOURS, colour, equity_figure, forward_figure

    closes = sample_bars[sample_bars["symbol"].isin(["SPY", "QQQ", "AAPL"])
                         & (sample_bars["date"] >= D(2021, 3, 1))].pivot(index="date", columns="symbol", values="close")
    equity = pd.DataFrame({"BUY_HOLD": closes["SPY"], "system": closes["QQQ"], "no gate": closes["AAPL"]})
    seen = {}
    for frame in (equity, equity[["no gate", "system", "BUY_HOLD"]], equity[["BUY_HOLD"]]):
        fig = equity_figure(frame * 100, "accounts")
        for ax in fig.axes:   # the equity curves and the drawdowns below them
            for line in ax.get_lines():
                seen.setdefault(line.get_label(), set()).add(line.get_color())
    assert seen == {name: {ACCOUNT_COLOURS[name]} for name in ("system", "no gate", "BUY_HOLD")}
    paths = {label: closes["SPY"] / closes["SPY"].iloc[0] - 1 for label in ("ASYM (traded)", "BUY_HOLD", "odd one")}
    fig = forward_figure(paths, "replay", {"ASYM (traded)": "system", "BUY_HOLD": "BUY_HOLD"})
    colours = {line.get_label(): line.get_color() for line in fig.axes[0].get_lines()
               if not line.get_label().startswith("_")}
    assert colours["ASYM (traded)"] == ACCOUNT_COLOURS["system"] and colours["BUY_HOLD"] == ACCOUNT_COLOURS["BUY_HOLD"]
    assert colours["odd one"] == colour("odd one") not in ACCOUNT_COLOURS.values()
