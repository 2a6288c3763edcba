"""``prep backtest`` as a command: where the bars come from, the progress, the report.

Progress (``progress.Reporter`` on the command's console): a live bar on a terminal; otherwise
(cron, pipes) a line per ~10 % of the sessions (session, done/total, elapsed, ETA), also logged.

Writes ``reports/backtest_YYYYMMDD_YYYYMMDD.json`` (the summary, the equity curves and
every session's choice) and a ``.png`` beside it (equity curves over drawdowns), and
prints the table a user reads: the system against BUY_HOLD (and against itself with
the retention gate, the regime or the earnings gate off: ``--no-gate``, ``--no-regime``,
``--no-events``), the nights the system's plans spent in each regime state, one sentence per
gate switched off saying whether it helped, with the sample's survivorship bias stated.

``--bars FILE`` finds its splits in ``splits.csv`` in the same folder as FILE (as
``data/sample/`` and ``shared/data/`` ship them), unless ``--splits FILE`` names another; the
regime's index bars in ``market_context.parquet`` beside FILE (``CachedSource.from_files``; the
ETF proxies when it is absent); and the earnings gate's report dates in ``earnings.csv`` beside FILE
when there is one (``bars_events``: the CSV provider reads it, whatever ``events.provider`` names,
unless it is ``none``), else the configured provider.  The report names both.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from trading_system import sessions
from trading_system.config import Config
from trading_system.errors import BadInputError
from trading_system.marketdata.cached import CachedSource
from trading_system.prepare.discovery import HISTORY_DAYS
from trading_system.prepare.run import TooLittleHistory
from trading_system.present.charts import equity_chart, preload
from trading_system.progress import Reporter
from trading_system.review.backtest import (
    BUY_HOLD,
    NO_EVENTS,
    NO_GATE,
    NO_REGIME,
    SYSTEM,
    BacktestResult,
    default_source,
    run_backtest,
)
from trading_system.review.backtest_workers import default_workers
from trading_system.state.atomic import write_json_atomic


def survivorship_note(cfg: Config) -> str:
    """The plain statement of the universe's survivorship bias."""
    return (f"survivorship bias: the universe is the index list in {cfg.universe.constituents_file} "
            "(the S&P 500 of 2021 for the sample); stocks that left the index before then are absent, so every "
            "name the scan could pick is a future survivor, which flatters the system against BUY_HOLD.")


def load_source(cfg: Config, bars: str | None, splits: str | None, start: dt.date) -> CachedSource:
    """The bars of ``--bars`` (splits beside it, or ``--splits``), else the configured store.

    Raises:
        BadInputError: a file is missing or is not bars / splits.
    """
    if bars is None:
        if splits is not None:
            raise BadInputError("--splits goes with --bars; pass both, or neither to use the configured data.")
        return default_source(cfg)
    bars_path = Path(bars)
    splits_path = Path(splits) if splits else bars_path.parent / "splits.csv"
    if not bars_path.is_file():
        raise BadInputError(f"--bars {bars_path}: no such file; pass a Parquet file of raw daily bars.")
    if not splits_path.is_file():
        raise BadInputError(f"no splits file for {bars_path}: expected {splits_path} beside it; "
                            "pass --splits FILE (symbol, date, ratio).")
    since = sessions.previous_session(start) - dt.timedelta(days=HISTORY_DAYS + 7)
    return CachedSource.from_files(bars_path, splits_path, since=since)


def bars_events(cfg: Config, bars: str | None) -> Config:
    """``cfg`` with the earnings gate reading ``earnings.csv`` beside ``--bars FILE`` when there is one
    (provider ``csv``, that file), as the splits and the index bars are found there; ``cfg`` as it is
    without ``--bars``, without that file, or with ``events.provider: none``."""
    if bars is None or cfg.events.provider == "none":
        return cfg
    beside = Path(bars).parent / "earnings.csv"
    if not beside.is_file():
        return cfg
    events = cfg.events.model_copy(update={"provider": "csv", "file": str(beside.absolute())})
    return cfg.model_copy(update={"events": events})


def earnings_source(cfg: Config) -> str:
    """Where the earnings gate's report dates come from, in words (the file for the CSV provider)."""
    from trading_system.marketdata.earnings import CsvEarnings, make_earnings

    if not cfg.events.enabled:
        return "none (events.enabled is false)"
    if cfg.events.provider == "polygon":
        return "Polygon's Benzinga earnings endpoint"
    provider = make_earnings(cfg)
    return str(provider.path) if isinstance(provider, CsvEarnings) else "none (events.provider is none)"


#: account switched off -> (the gate's name in the sentences, the account's label in the table)
GATES = {NO_GATE: ("the retention gate", "system, gate off"),
         NO_REGIME: ("the regime", "system, regime off"),
         NO_EVENTS: ("the earnings gate", "system, earnings gate off")}
LABELS = {SYSTEM: "system (gate on)", BUY_HOLD: "BUY_HOLD (SPY/QQQ)", **{k: v[1] for k, v in GATES.items()}}


def gate_verdicts(result: BacktestResult) -> dict[str, dict]:
    """Per account switched off (NO_GATE, NO_REGIME, NO_EVENTS, those the run has): whether the gate
    helped (the system ended with more equity than the account without it), both returns and max
    drawdowns, and the sentence the report prints."""
    on = result.figures[SYSTEM]
    out = {}
    for name, (gate, _) in GATES.items():
        off = result.figures.get(name)
        if off is None:
            continue
        helped = on["end_equity"] > off["end_equity"]
        sentence = (f"{gate} {'helped' if helped else 'did not help'}: {_pct(on['total_return'], True)} with it, "
                    f"{_pct(off['total_return'], True)} with it off; max drawdown {_pct(on['max_drawdown'])} "
                    f"against {_pct(off['max_drawdown'])}")
        out[name] = {"gate": gate, "helped": helped, "end_equity_on": on["end_equity"],
                     "end_equity_off": off["end_equity"], "return_on": _clean(on["total_return"]),
                     "return_off": _clean(off["total_return"]), "max_drawdown_on": _clean(on["max_drawdown"]),
                     "max_drawdown_off": _clean(off["max_drawdown"]), "sentence": sentence}
    return out


def _clean(x):
    """NaN / inf -> None so the summary is strict JSON."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def summary(result: BacktestResult, cfg: Config, bars_file: str | None, splits_file: str | None) -> dict:
    """The JSON summary: figures per account, selections, rejection rates, the regime's nights, the
    earnings gate's removals, the gates' verdicts, curves and nights."""
    accounts = [c for c in result.equity.columns if c != BUY_HOLD]
    eq = result.equity
    removed, removal_nights = result.earnings_removals()
    return {
        "start": str(result.start), "end": str(result.end), "sessions": len(result.nights),
        "data_source": result.data_source, "bars_file": bars_file, "splits_file": splits_file,
        "index_bars": result.index_file, "earnings": earnings_source(cfg),
        "universe": cfg.universe.constituents_file,
        "survivorship_bias": survivorship_note(cfg),
        "premarket_price": "the session's opening print (the data has no pre-market quotes)",
        "settings": {"retention_threshold": cfg.validation.retention_threshold,
                     "min_validation_rate": cfg.validation.min_validation_rate,
                     "starting_cash": cfg.broker.simulated.starting_cash,
                     "cash_buffer": cfg.execution.cash_buffer,
                     "benchmarks": dict(cfg.strategies.benchmarks),
                     "regime_enabled": cfg.regime.enabled, "events_enabled": cfg.events.enabled},
        "figures": {name: {k: _clean(v) for k, v in f.items()} for name, f in result.figures.items()},
        "selections": {name: result.selections(name) for name in accounts},
        "picks_checked": sum(n.checked for n in result.nights),
        "picks_checked_by": {name: result.picks_checked(name) for name in accounts},
        "rejection_rate": {name: _clean(result.rejection_rate(name)) for name in accounts},
        "regime_nights": result.regime_nights(),
        "earnings_removed": {"picks": removed, "nights": removal_nights},
        "gates": gate_verdicts(result),
        "equity": {"session": [str(d) for d in eq.index], **{c: [round(float(v), 2) for v in eq[c]] for c in eq}},
        "nights": [{"session": str(n.session), "plan_id": n.plan_id, "selected": n.selected,
                    "checked": n.checked, "checks": n.checks, "rejected": n.rejected,
                    "regime": n.regime, "exposure": n.exposure, "earnings_removed": n.earnings_removed,
                    "traded": {k: round(v, 2) for k, v in n.traded.items()}} for n in result.nights],
        "seconds": round(result.seconds, 2), "engine": result.engine,
    }


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:+.1%}" if signed else f"{x:.1%}"


def _table(result: BacktestResult) -> Table:
    """One row per account: end equity (net of costs), total return, CAGR, volatility, Sharpe, max
    drawdown, turnover, the costs paid and the return before them (gross)."""
    table = Table(title="accounts (marked at each session's close; net of costs; turnover per year; "
                        "gross = before costs)")
    for col in ("account", "end equity", "return", "CAGR", "volatility", "Sharpe", "max DD",
                "turnover", "costs paid", "gross"):
        # figures never wrap nor get cut: the account's name wraps instead
        table.add_column(col, justify="left" if col == "account" else "right", no_wrap=col != "account")
    for name, f in result.figures.items():
        table.add_row(LABELS.get(name, name), f"${f['end_equity']:,.2f}", _pct(f["total_return"], True),
                      _pct(f["cagr"], True), _pct(f["volatility"]),
                      "-" if not math.isfinite(f["sharpe"]) else f"{f['sharpe']:.2f}",
                      _pct(f["max_drawdown"]), "-" if not math.isfinite(f["turnover"]) else f"{f['turnover']:.1f}x",
                      f"${f['costs']:,.2f}", _pct(f['gross_total_return'], True))
    return table


def _context_lines(result: BacktestResult, cfg: Config) -> list[str]:
    """The regime's nights and the earnings gate's removals in the system's plans, and their sources."""
    nights = ", ".join(f"{state} {count}" for state, count in result.regime_nights().items())
    removed, on_nights = result.earnings_removals()
    return [f"regime of the system's plans, nights: {nights} (index bars: "
            f"{result.index_file or 'none, the ETF proxies SPY, QQQ, IWM stand in'})",
            f"earnings gate of the system's plans: {removed} scan picks removed before the strategies were "
            f"built, on {on_nights} of {len(result.nights)} nights (report dates: {earnings_source(cfg)})"]


def render(console: Console, result: BacktestResult, cfg: Config, json_path: Path | None,
           png_path: Path | None) -> None:
    """The table (one row per account), selections, rejection rates, the regime's nights, the
    earnings gate's removals, a sentence per gate switched off, the bias, the files."""
    console.print(f"[bold]backtest[/] {result.start} -> {result.end}: {len(result.nights)} sessions, "
                  f"data {result.data_source}, starting cash ${cfg.broker.simulated.starting_cash:,.0f}, "
                  f"gate {cfg.validation.retention_threshold:.0%}")
    console.print(_table(result))
    console.print(f"costs charged on every fill: ${cfg.costs.commission_per_order:,.2f} per order and "
                  f"{cfg.costs.slippage_bps:g} bps slippage against the open (costs: in config.yaml); gross = "
                  "end equity + costs paid")
    for name in (SYSTEM, NO_GATE, NO_REGIME, NO_EVENTS):
        if name not in result.figures:
            continue
        counts = result.selections(name)
        picks = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        console.print(f"{LABELS[name]}: strategy traded per session: {picks}; rejection rate "
                      f"{_pct(result.rejection_rate(name))} of {result.picks_checked(name)} picks checked")
    for line in _context_lines(result, cfg):
        console.print(line)
    sys_f, bh_f = result.figures[SYSTEM], result.figures[BUY_HOLD]
    verdict = "beat" if sys_f["end_equity"] > bh_f["end_equity"] else "did not beat"
    console.print(f"[bold]the system {verdict} BUY_HOLD: {_pct(sys_f['total_return'], True)} against "
                  f"{_pct(bh_f['total_return'], True)}[/]")
    for verdict_of_gate in gate_verdicts(result).values():
        console.print(f"[bold]{verdict_of_gate['sentence']}[/]")
    console.print(f"[yellow]{survivorship_note(cfg)}[/]")
    console.print("pre-market prices are each session's opening print (the data has no pre-market quotes); "
                  "orders fill at the open; the notional guards are lifted (no money rides on a simulation).")
    if json_path:
        console.print(f"summary: {json_path}")
    if png_path:
        console.print(f"chart: {png_path}")
    console.print(f"{len(result.nights)} sessions in {result.seconds:.1f} s ({result.engine} engine)")


def output_folder(cfg: Config, out: str | None) -> Path:
    """The folder for the report (``--out``, default ``reports/`` beside the config), checked now.

    Checked before the backtest runs, so a bad ``--out`` costs a second, not the whole run; it is
    created only when the report is written (a refused run leaves no empty folder behind).

    Raises:
        BadInputError: ``--out`` (or a folder above it) is an existing file, or is not writable.
    """
    folder = Path(out) if out else cfg.root / "reports"
    flag = f"--out {folder}" if out else f"the report folder {folder}"
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise BadInputError(f"{flag} is a file, not a folder{'' if existing == folder else f' ({existing})'}; "
                            "pass a folder for the JSON and PNG reports.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInputError(f"{flag} cannot be written ({existing} is not writable); pass a folder you can write to.")
    return folder


def backtest_command(cfg: Config, clock: sessions.Clock, console: Console, start: dt.date, end: dt.date,
                     bars: str | None = None, splits: str | None = None, no_gate: bool = False,
                     out: str | None = None, no_regime: bool = False, no_events: bool = False,
                     engine: str = "batch", workers: int | None = None) -> BacktestResult:
    """``prep backtest``: load the bars, run showing progress, write JSON + PNG, print the report.

    ``engine``: ``batch`` or ``nightly``; ``workers``: see ``run_backtest`` (None: ``default_workers()``).

    ``no_gate`` / ``no_regime`` / ``no_events`` add the system with the retention gate / the regime /
    the earnings gate off beside it.  With ``bars``, the earnings gate reads ``earnings.csv`` beside
    them when there is one (``bars_events``).

    Raises:
        BadInputError: a bad range, a range past the as-of instant or outside the data or the
            calendar, a bad file, an ``--out`` that is not a folder (checked before the long run), a
            ``--start`` before the first night with enough bars to scan (``pipeline.TooLittleHistory``).
    """
    last = sessions.last_closed_session(clock.now())
    if end > last:
        raise BadInputError(f"--end {end} is after the last closed session {last} as of "
                            f"{clock.now():%Y-%m-%d %H:%M %Z}; pick an earlier --end.")
    if start > end:
        raise BadInputError(f"--start {start} is after --end {end}; swap them.")
    first = sessions.usable_range()[0]
    if start < first:
        raise BadInputError(f"--start {start} is before the exchange calendar this tool knows; "
                            f"pick a --start from {first}.")
    folder = output_folder(cfg, out)
    source = load_source(cfg, bars, splits, start)
    cfg = bars_events(cfg, bars)
    reporter = Reporter("backtest", "sessions", console=console)
    begun = False

    def step(stage: str, as_of: dt.datetime, done: int, total: int) -> None:
        nonlocal begun
        if not begun:  # the first step comes after the range and the data were checked
            preload()   # the chart's library, while the workers compute the first nights
            reporter.begin(total, f"{start} to {end}")
            begun = True
        reporter.update(done, f"session {as_of:%Y-%m-%d}" if stage == "marked" else f"{stage} {as_of:%Y-%m-%d %H:%M}")

    try:
        result = run_backtest(cfg, start, end, source=source, gate_off_twin=no_gate, on_step=step,
                              regime_off_twin=no_regime, events_off_twin=no_events, engine=engine,
                              workers=default_workers() if workers is None else workers)
    except TooLittleHistory as exc:  # the first night: a --start the data cannot serve, not a result
        if begun:
            reporter.end(ok=False)
        raise BadInputError(f"--start {start} is before the first usable night {exc.first_usable} ({exc}); "
                            f"pick --start {exc.first_usable} or later.") from exc
    except BaseException:
        if begun:
            reporter.end(ok=False)
        raise
    reporter.end(ok=True)
    stem = f"backtest_{result.start:%Y%m%d}_{result.end:%Y%m%d}"
    splits_file = (splits or str(Path(bars).parent / "splits.csv")) if bars else None
    json_path = folder / f"{stem}.json"
    write_json_atomic(json_path, summary(result, cfg, bars, splits_file))
    png_path = equity_chart(result.equity, folder / f"{stem}.png",
                            f"prep backtest {result.start} -> {result.end} ({result.data_source})")
    render(console, result, cfg, json_path, png_path)
    return result
