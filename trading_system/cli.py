"""``prep``: the command line (DESIGN §1). Parse, call one pipeline function, map errors to exit codes.

Exit codes: 0 done or nothing to do; 1 a failure at run time; 2 bad input.
"""

from __future__ import annotations

import click
from rich.console import Console

from trading_system.cli_run import State, run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", default="config.yaml", envvar="PREP_CONFIG", show_default=True,
              help="Path of config.yaml (paths in it are relative to its folder).")
@click.option("--as-of", "as_of", default=None,
              help="Replay at this instant: 2021-04-19T20:00, '2021-04-19 20:00' or a date; naive = New York "
                   "time. Also PREP_AS_OF.")
@click.option("-v", "--verbose", is_flag=True, help="Echo the log to stderr.")
@click.version_option(package_name="prep", prog_name="prep")
@click.pass_context
def main(ctx: click.Context, config: str, as_of: str | None, verbose: bool) -> None:
    """Pre-market preparation: scan at 20:00 ET, validate and rebalance at 09:00 ET."""
    ctx.obj = State(config, as_of, verbose)


@main.command()
@click.option("--dry-run", is_flag=True, help="Scan and print; write nothing.")
@click.option("--force", is_flag=True, help="Replace a validated plan, a newer plan, or prepare during market "
              "hours (what is replaced is archived first).")
@click.pass_obj
def prepare(state: State, dry_run: bool, force: bool) -> None:
    """Scan, score and bucket the universe; build four strategies -> pending_trades.json."""
    from trading_system.prepare.run import run_prepare
    from trading_system.present import render

    def work(cfg, clock):
        state.result = run_prepare(cfg, clock, dry_run, force=force)
        render.prepare(state.console, state.result)

    run(state, "prepare", work)


@main.command()
@click.option("--dry-run", is_flag=True, help="Re-score and print; leave the plan as it is.")
@click.pass_obj
def validate(state: State, dry_run: bool) -> None:
    """Re-score the picks with pre-market prices, apply the 85 % gate, select the strategy."""
    from trading_system.present import render
    from trading_system.validate.run import run_validate

    def work(cfg, clock):
        state.result = run_validate(cfg, clock, dry_run)
        render.validate(state.console, state.result)

    run(state, "validate", work)


@main.command()
@click.option("--dry-run", is_flag=True, help="Show the orders against the account; send nothing.")
@click.option("--live", is_flag=True, help="Allow a live (real-money) account; also needs ALPACA_PAPER=false.")
@click.pass_obj
def execute(state: State, dry_run: bool, live: bool) -> None:
    """Rebalance the account to the validated plan in two phases, then archive it."""
    from trading_system.errors import RunFailure
    from trading_system.execute.outcome import targets_missed
    from trading_system.execute.run import run_execute
    from trading_system.present import render

    def work(cfg, clock):
        result = state.result = run_execute(cfg, clock, dry_run=dry_run, live=live, announce=state.console.print)
        render.execute(state.console, result)
        failure = targets_missed(result)
        if failure:
            raise RunFailure(failure)

    run(state, "execute", work)


@main.command()
@click.pass_obj
def universe(state: State) -> None:
    """Build the universe of the last closed session (generator, filters, watchlist), print and save it."""
    from trading_system.prepare.universe import run_universe
    from trading_system.present import render

    run(state, "universe", lambda cfg, clock: render.universe(state.console, *run_universe(cfg, clock)))


@main.command()
@click.option("--live", is_flag=True, help="Check a live (real-money) Alpaca account; also needs ALPACA_PAPER=false.")
@click.pass_obj
def doctor(state: State, live: bool) -> None:
    """Pre-flight: config, keys, Polygon and Alpaca, the morning's price source, the bar store, disk, crontab."""
    from trading_system.doctor import doctor_command

    run(state, "doctor", lambda cfg, clock: doctor_command(cfg, clock, state.console, state.config_path, live))


@main.command()
@click.option("--live", is_flag=True, help="Read a live (real-money) Alpaca account; also needs ALPACA_PAPER=false.")
@click.pass_obj
def status(state: State, live: bool) -> None:
    """What is pending, its stage, the kill switch, the positions, the last archived runs, and the broker."""
    from trading_system.present import status as show
    from trading_system.review.status import status as compute

    run(state, "status", lambda cfg, clock: show.status(state.console, compute(cfg, clock, live=live)))


@main.command()
@click.option("--start", required=True, type=click.DateTime(formats=["%Y-%m-%d"]), help="First session (YYYY-MM-DD).")
@click.option("--end", required=True, type=click.DateTime(formats=["%Y-%m-%d"]), help="Last session (YYYY-MM-DD).")
@click.option("--bars", default=None, help="Parquet file of raw daily bars (default: the configured data); "
              "its splits are read from splits.csv beside it.")
@click.option("--splits", default=None, help="Splits CSV for --bars when it is not splits.csv beside it.")
@click.option("--no-gate", "no_gate", is_flag=True,
              help="Also replay the same system with the retention gate off (threshold 0) and show it beside.")
@click.option("--no-regime", "no_regime", is_flag=True,
              help="Also replay the same system with the market regime off (regime.enabled false) and show it beside.")
@click.option("--no-events", "no_events", is_flag=True,
              help="Also replay the same system with the earnings gate off (events.enabled false) and show it beside.")
@click.option("--out", default=None, help="Folder for the JSON summary and the PNG chart (default: reports/).")
@click.option("--engine", type=click.Choice(["batch", "nightly"]), default="batch", show_default=True,
              help="batch: the decisions in memory, every night's scan in one pass (the same decisions, proven by "
                   "tests); nightly: the cron path's prepare/validate/execute with their files, night by night.")
@click.option("--workers", type=click.IntRange(0, 64), default=None,
              help="Processes the batch engine computes the evenings on ahead (default: the core count, at most "
                   "4; 0: none; never more than the chunks of 32 nights, none for a shorter backtest). The "
                   "decisions do not depend on it.")
@click.pass_obj
def backtest(state: State, start, end, bars, splits, no_gate, no_regime, no_events, out, engine, workers) -> None:
    """Replay prepare, validate and execute over every session, against BUY_HOLD."""
    from trading_system.review.backtest_report import backtest_command

    run(state, "backtest", lambda cfg, clock: backtest_command(cfg, clock, state.console, start.date(), end.date(),
                                                                bars, splits, no_gate, out, no_regime=no_regime,
                                                                no_events=no_events, engine=engine, workers=workers))


@main.command()
@click.option("--enable", "enable", default=None, metavar="NAME",
              help="Turn a scanner disabled after 3 failed runs in a row back on (and reset its failure count).")
@click.pass_obj
def scanners(state: State, enable: str | None) -> None:
    """The configured scanners: enabled, phase, action, last run and finds, mean time, failures."""
    from trading_system.present import scanners as show
    from trading_system.review import scanners as compute

    def work(cfg, clock):
        if enable is not None:
            show.enabled(state.console, compute.enable(cfg, enable))
        show.status(state.console, compute.status(cfg))

    run(state, "scanners", work)


@main.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True,
              help='Print only {"scanner", "session", "symbols", "metadata"} as JSON on stdout (notes on stderr).')
@click.pass_obj
def scan(state: State, name: str, as_json: bool) -> None:
    """What one scanner (configured, or a built-in with its defaults) finds on the last closed session
    as of --as-of, and why; writes nothing."""
    from trading_system.present import scanners as show
    from trading_system.review.scanners import scan_night

    def work(cfg, clock):
        result = scan_night(cfg, clock, name)
        if as_json:
            click.echo(show.scan_json(result))
            show.notes(Console(stderr=True, highlight=False, soft_wrap=True), result)
        else:
            show.scan(state.console, result)

    run(state, "scan", work)


@main.command("scan-backtest")
@click.argument("name")
@click.option("--start", required=True, type=click.DateTime(formats=["%Y-%m-%d"]), help="First night (YYYY-MM-DD).")
@click.option("--end", required=True, type=click.DateTime(formats=["%Y-%m-%d"]), help="Last night (YYYY-MM-DD).")
@click.option("--bars", default=None, help="Parquet file of raw daily bars (default: the configured data); "
              "its splits are read from splits.csv beside it.")
@click.option("--splits", default=None, help="Splits CSV for --bars when it is not splits.csv beside it.")
@click.option("--out", default=None, help="Folder for the JSON summary and the PNG chart (default: reports/).")
@click.pass_obj
def scan_backtest(state: State, name: str, start, end, bars, splits, out) -> None:
    """A scanner run every night: hits, 1/5/20-session forward returns of its finds against the
    universe's, overlap with the other scanners (JSON + PNG)."""
    from trading_system.present import scanners as show
    from trading_system.review.scan_backtest_report import scan_backtest_command

    def work(cfg, clock):
        report = scan_backtest_command(cfg, clock, state.console, name, start.date(), end.date(), bars, splits, out)
        show.scan_backtest(state.console, report)

    run(state, "scan-backtest", work)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (session, regime, events) for scripts.")
@click.pass_obj
def context(state: State, as_json: bool) -> None:
    """The market regime with its inputs, and the universe's earnings reports of the next sessions."""
    from trading_system.prepare.context.build import context_report
    from trading_system.present import context as show

    run(state, "context", lambda cfg, clock: show.context(state.console, context_report(cfg, clock), as_json))


@main.command()
@click.option("--grid", "grid_file", required=True, metavar="FILE",
              help="YAML mapping config paths to lists of values (examples/sweep.yaml); each combination is one "
                   "backtest.")
@click.option("--start", default=None, type=click.DateTime(formats=["%Y-%m-%d"]),
              help="First session (default: a year before --end).")
@click.option("--end", default=None, type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Last session (default: the data's last closed session).")
@click.option("--jobs", default=None, type=click.IntRange(min=1),
              help="Trials at a time on this machine (default: the number of CPUs).")
@click.option("--scheduler", default=None, metavar="tcp://HOST:8786",
              help="Run the trials on this Dask scheduler's workers instead.")
@click.option("--max-trials", default=500, show_default=True, type=click.IntRange(min=1),
              help="Refuse a grid with more combinations.")
@click.option("--holdout", default=None, type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Rank on the sessions up to this date; report the best settings on the sessions after it.")
@click.option("--out", default=None, help="Folder for sweeps/<id>/ (default: reports/).")
@click.option("--bars", default=None, help="Parquet file of raw daily bars (default: the configured data); "
              "splits.csv beside it.")
@click.option("--splits", default=None, help="Splits CSV for --bars when it is not splits.csv beside it.")
@click.pass_obj
def sweep(state: State, grid_file, start, end, jobs, scheduler, max_trials, holdout, out, bars, splits) -> None:
    """One backtest per combination of a grid of settings, resumable, ranked by Sharpe against BUY_HOLD."""
    from trading_system.review.sweep_report import sweep_command

    run(state, "sweep", lambda cfg, clock: sweep_command(
        cfg, clock, state.console, grid_file, start.date() if start else None, end.date() if end else None,
        jobs, scheduler, max_trials, holdout.date() if holdout else None, out, bars, splits))


@main.command()
@click.pass_obj
def history(state: State) -> None:
    """Archived plans: session, strategy chosen, validation rate, rejections, orders."""
    from trading_system.present import archives as show
    from trading_system.review.archives import history as compute

    run(state, "history", lambda cfg, clock: show.history(state.console, compute(cfg)))


@main.command()
@click.argument("plan", required=False)
@click.option("--latest", is_flag=True, help="Replay the newest archived plan.")
@click.option("--out", default=None, help="Folder for the PNG chart (default: reports/).")
@click.pass_obj
def replay(state: State, plan: str | None, latest: bool, out: str | None) -> None:
    """What an archived plan decided, pick by pick, and what followed (1, 5, 20 sessions)."""
    from trading_system.present import archives as show
    from trading_system.review.archives import replay as compute

    run(state, "replay", lambda cfg, clock: show.replay(state.console, compute(cfg, clock, plan, latest, out)))


@main.command()
@click.option("--test", "test", is_flag=True, help="Send a test alert to every URL in notify.urls; say which worked.")
@click.pass_obj
def notify(state: State, test: bool) -> None:
    """Alerts through Apprise (notify.urls in config.yaml): --test checks every URL."""
    if not test:
        raise click.UsageError("add --test: 'prep notify --test' sends a test alert to every URL in notify.urls.")
    run(state, "notify", lambda cfg, clock: _notify_test(state, cfg, clock))


def _notify_test(state: State, cfg, clock) -> None:
    """Send the test alert, print OK / FAILED per URL (named without its secrets); exit 1 if any failed."""
    from trading_system.errors import ConfigError, RunFailure
    from trading_system.present import notify as alerts

    if not cfg.notify.urls:
        raise ConfigError("notify.urls in config.yaml is empty: add an Apprise URL (e.g. ntfy://my-topic) to test.")
    deliveries = alerts.send(cfg.notify, [alerts.test_alert(cfg.notify.events, clock.now())])
    for d in deliveries:
        state.console.print(f"{d.label}: " + ("OK" if d.ok else f"FAILED ({d.detail})"), markup=False)
    failed = [d.label for d in deliveries if not d.ok]
    if failed:
        raise RunFailure(f"{len(failed)} of {len(deliveries)} alert URLs failed ({', '.join(failed)}); "
                           "details in the log.")


if __name__ == "__main__":  # pragma: no cover
    main()
