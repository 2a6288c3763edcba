"""What ``prep scanners``, ``prep scan`` and ``prep scan-backtest`` print (``review.scanners`` and
``review.scan_backtest`` compute them).

Tables have a rule under the header and no outer frame; figures are never cut.  Returns are
shown as signed percentages, times in milliseconds.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trading_system.review.scan_backtest import UNIVERSE
from trading_system.review.scan_backtest_report import ScanBacktestReport
from trading_system.review.scanners import Enabled, ScannersStatus, ScanNight, module_text


def _table(title: str) -> Table:
    return Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)


def _when(iso: str | None) -> str:
    """``2021-04-19T20:00:00-04:00`` -> ``2021-04-19 20:00``; ``-`` for never."""
    if not iso:
        return "-"
    try:
        return f"{dt.datetime.fromisoformat(iso):%Y-%m-%d %H:%M}"
    except ValueError:
        return iso


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:+.2%}"


def figure(value: Any) -> str:
    """A metadata figure for a person: thousands with separators, prices with cents, ratios with 4 decimals."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    x = float(value)
    if not math.isfinite(x):
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:,.2f}" if abs(x) >= 10 else f"{x:.4f}"


# --- prep scanners ------------------------------------------------------------------------------

NO_SCANNERS = ("no scanners are configured: add a 'scanners:' list to config.yaml, e.g. "
               "'scanners: [{name: gappers, module: \"builtin:gap\"}]' (built-ins: breakout, gap, momentum, "
               "top_dollar_volume, volume); 'prep scan NAME' runs a built-in without it.")


def status(console: Console, s: ScannersStatus) -> None:
    """One row per configured scanner: on/off and why, phase, action, last run, its finds, mean time,
    failures in a row and the last error; or one line when none is configured."""
    if not s.rows:
        console.print(NO_SCANNERS, markup=False, soft_wrap=True)
        return
    table = _table(f"scanners ({len(s.rows)})")
    for col in ("name", "enabled", "phase", "action", "last run", "finds", "mean ms", "fails"):
        number = col in ("finds", "mean ms", "fails")
        table.add_column(col, justify="right" if number else "left", no_wrap=col != "name", overflow="fold",
                         min_width=6 if col == "name" else None)
    for r in s.rows:
        on = "yes" if r.enabled else "[red]no: fails[/]" if r.disabled else "no: config"
        table.add_row(escape(r.name), on, r.phase, r.action, _when(r.last_run),
                      "-" if r.last_found is None else str(r.last_found),
                      "-" if r.mean_ms is None else f"{r.mean_ms:,.1f}", str(r.failures))
    console.print(table)
    for r in s.rows:
        if r.disabled:
            console.print(f"[yellow]{escape(r.name)} is disabled[/] after {r.failures} failed runs in a row "
                          f"(last error: {escape(r.last_error or '-')}); 'prep scanners --enable {escape(r.name)}' "
                          "turns it back on.", soft_wrap=True)
        elif r.last_error and r.failures:
            console.print(f"{escape(r.name)}: {r.failures} failed run(s) in a row; last error: "
                          f"{escape(r.last_error)}", soft_wrap=True)
    console.print(f"record: {s.folder} (state.json, stats.jsonl); finds and mean ms are from stats.jsonl "
                  "(mean over the runs that did not fail); fails: failed runs in a row", markup=False, soft_wrap=True)


def enabled(console: Console, e: Enabled) -> None:
    """What ``--enable`` did, in one line (and a second when config.yaml keeps it off)."""
    if e.was_disabled:
        line = f"scanner {e.name} re-enabled (it was disabled after {e.failures_cleared} failed runs in a row)."
    else:
        line = (f"scanner {e.name} was not disabled; its count of failed runs in a row "
                f"({e.failures_cleared}) is reset to 0.")
    console.print(line, markup=False, soft_wrap=True)
    if not e.configured:
        console.print(f"note: config.yaml says enabled: false for {e.name}; it stays off until you change that.",
                      markup=False, soft_wrap=True)


# --- prep scan NAME -----------------------------------------------------------------------------

def _jsonable(value: Any) -> Any:
    """numpy scalars and other numbers a user's scanner put in its metadata -> JSON numbers (NaN -> null)."""
    if isinstance(value, (bool, str)) or value is None:
        return value
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    return x if math.isfinite(x) else None


def scan_json(r: ScanNight) -> str:
    """``{"scanner", "session", "symbols", "metadata"}`` as one line of strict JSON."""
    data = r.to_json()
    data["metadata"] = {s: {k: _jsonable(v) for k, v in meta.items()} for s, meta in data["metadata"].items()}
    return json.dumps(data, allow_nan=False)


def notes(console: Console, r: ScanNight) -> None:
    """The run's notes, one line each (on stderr for ``--json``)."""
    for note in r.notes:
        console.print(f"note: {note}", markup=False, soft_wrap=True)


def scan(console: Console, r: ScanNight) -> None:
    """The finds, best first, with every figure of their metadata; the notes; the time."""
    e, run = r.entry, r.run
    console.print(f"[bold]scan[/] {escape(e.name)} ({escape(module_text(e))}, {e.phase}, action {e.what}): session "
                  f"{r.session}, as of {r.now:%Y-%m-%d %H:%M %Z}, data {escape(r.data_source)}")
    console.print(f"{len(run.symbols)} find(s) among {r.scanned} symbols with a bar (universe {r.universe}) "
                  f"in {run.execution_time_ms:,.1f} ms", markup=False)
    notes(console, r)
    if run.skipped:
        console.print(f"its setup declined session {r.session}: nothing was scanned.", markup=False)
        return
    if not run.symbols:
        console.print("no finds that night.", markup=False)
        return
    keys = list(dict.fromkeys(k for s in run.symbols for k in run.metadata.get(s, {})))
    table = _table(f"{e.name}: finds of {r.session}, best first")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("symbol", no_wrap=True)
    for k in keys:
        table.add_column(k, justify="right", no_wrap=True, overflow="fold")
    for i, s in enumerate(run.symbols, 1):
        meta = run.metadata.get(s, {})
        table.add_row(str(i), s, *(escape(figure(meta.get(k))) for k in keys))
    console.print(table)
    console.print("nothing written (prep scan records no state, no stats, no plan).", markup=False)


# --- prep scan-backtest -------------------------------------------------------------------------

def scan_backtest(console: Console, report: ScanBacktestReport) -> None:
    """Nights and hits; finds against the universe at each horizon; the overlap; notes; the files."""
    r = report.result
    hits = r.hits
    console.print(f"[bold]scan-backtest[/] {escape(r.entry.name)} {r.start} -> {r.end}: {len(r.nights)} nights, "
                  f"{r.nights_with_hits} with finds, {sum(hits)} finds (per night: mean {sum(hits) / len(hits):.2f}, "
                  f"max {max(hits)}), data {escape(r.data_source)} through {r.last_data}", soft_wrap=True)
    table = _table("forward returns: next session's open -> close of the h-th session after the night")
    for col in ("h", "nights", "finds", "finds mean", "universe (same nights)", "difference", "universe (all nights)"):
        table.add_column(col, justify="right")
    for h in r.horizons:
        table.add_row(str(h.sessions), str(h.nights), str(h.finds), _pct(h.finds_mean), _pct(h.universe_mean),
                      _pct(h.difference), _pct(h.universe_all))
    console.print(table)
    short = [h for h in r.horizons if h.nights < len(r.nights)]
    if short:
        console.print(f"nights without h sessions after them in the data (to {r.last_data}) count only for the "
                      "horizons they have: " + ", ".join(f"h={h.sessions}: {h.nights} of {len(r.nights)} nights"
                                                          for h in short), markup=False, soft_wrap=True)
    if r.overlap:
        console.print(f"overlap: the share of {r.entry.name}'s finds that another scanner also found that night",
                      markup=False, soft_wrap=True)
        ov = _table("")
        for col in ("scanner", "shared", "share", "its finds", "nights missed"):
            ov.add_column(col, justify="left" if col == "scanner" else "right", no_wrap=True)
        for o in r.overlap:
            ov.add_row(escape(o.name), str(o.shared), "-" if o.share is None else f"{o.share:.1%}",
                       str(o.their_finds), str(o.missing_nights))
        console.print(ov)
    else:
        console.print("overlap: no other scanner is enabled in config.yaml.", markup=False)
    for note in r.notes:
        console.print(f"note: {note}", markup=False, soft_wrap=True)
    console.print(f"[yellow]{escape(report.survivorship)}[/]", soft_wrap=True)
    if len(r.curve):
        last = r.curve.iloc[-1]
        console.print(f"next-session returns compounded: finds {_pct(float(last[r.entry.name]))}, "
                      f"{UNIVERSE} {_pct(float(last[UNIVERSE]))}", markup=False)
    console.print(f"summary: {report.json_path}", markup=False)
    console.print(f"chart: {report.png_path}", markup=False)
    console.print(f"{len(r.nights)} nights in {r.seconds:.1f} s", markup=False)
