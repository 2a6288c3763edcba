"""``prep history`` and ``prep replay``: what the archived plans decided, and what followed.

An archive (``archived_trades/pending_trades_YYYYMMDD_HHMMSS.json``) holds
``{"status", "archived_at", "plan", "execution"}``; ``replay`` also reads a bare plan
file (``pending_trades.json``).  Forward returns come from the configured bar store,
split-adjusted, clamped to the as-of instant like every other read: a basket bought at
the target session's open (the price the simulated broker fills at) and held 1, 5 and
20 sessions (the target session counts as the first), weights fixed at entry:
``r = sum_i w_i (close_i,h / open_i,entry - 1) / sum_i w_i`` over the names with bars.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pandas as pd
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from . import sessions
from .charts import forward_chart
from .config import Config
from .errors import BadInputError, NothingToDo, PlanError
from .plan import Plan
from .runtime import make_source

HORIZONS = (1, 5, 20)


# --- archives ----------------------------------------------------------------------------------

def archives(cfg: Config) -> list[Path]:
    """Every archive file, oldest first (their names carry the archive time)."""
    return sorted(cfg.path(cfg.paths.archive_dir).glob("pending_trades_*.json"))


def load_archive(path: Path) -> tuple[dict, Plan]:
    """(the archive document, its plan).  A bare plan file reads as ``{"status": "pending"}``.

    Raises:
        PlanError: the file is not JSON, or its plan does not match the schema.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanError(f"{path} is not a readable JSON archive ({exc.__class__.__name__}); "
                        "run 'prep history' to list the good ones.") from exc
    if not isinstance(doc, dict):
        raise PlanError(f"{path} is not an archived plan (not a JSON object).")
    if "plan" not in doc:
        doc = {"status": "pending", "archived_at": None, "plan": doc, "execution": None}
    try:
        plan = Plan.model_validate(doc["plan"])
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise PlanError(f"{path} does not hold a valid plan ({where}: {first['msg']}).") from exc
    return doc, plan


def _rate(plan: Plan) -> str:
    vr = plan.validation_results
    if vr is None:
        return "-"
    chosen = vr.validated_strategies[vr.selected_strategy]
    if chosen.contestant:
        return f"{chosen.validation_rate:.0%}"
    rates = [v.validation_rate for n, v in vr.validated_strategies.items() if n != "BUY_HOLD"]
    return f"{max(rates):.0%} best, fallback" if rates else "fallback"


def history_rows(cfg: Config) -> list[dict]:
    """One row per archive: file, status, target session, strategy, validation rate,
    rejections (rejected / checked), orders executed, dry run.  Unreadable files are rows too."""
    rows = []
    for path in archives(cfg):
        try:
            doc, plan = load_archive(path)
        except PlanError:
            rows.append({"file": path.name, "status": "unreadable", "session": "-", "strategy": "-", "rate": "-",
                         "rejections": "-", "orders": "-", "dry_run": "-"})
            continue
        vr = plan.validation_results
        execution = doc.get("execution") or {}
        rejected = sum(not c.passed for c in vr.checks.values()) if vr else None
        rows.append({
            "file": path.name, "status": str(doc.get("status", "-")), "session": str(plan.target_session),
            "strategy": vr.selected_strategy if vr else "-", "rate": _rate(plan),
            "rejections": f"{rejected} of {len(vr.checks)}" if vr else "-",
            "orders": str(vr.orders_executed) if vr else "0",
            "dry_run": "yes" if (vr and vr.dry_run) or execution.get("dry_run") else "no",
        })
    return rows


def history_command(cfg: Config, console: Console) -> None:
    """Print the table of archived plans.

    Raises:
        NothingToDo: there is no archive yet.
    """
    rows = history_rows(cfg)
    if not rows:
        raise NothingToDo(f"no archived plans in {cfg.path(cfg.paths.archive_dir)} yet.")
    table = Table(title=f"archived plans ({len(rows)}, oldest first)")
    for col in ("archive", "status", "target session", "strategy", "validation rate", "rejections", "orders",
                "dry run"):
        table.add_column(col, justify="right" if col in ("validation rate", "orders") else "left",
                         no_wrap=col == "archive")
    for r in rows:
        table.add_row(r["file"], r["status"], r["session"], r["strategy"], r["rate"], r["rejections"], r["orders"],
                      r["dry_run"])
    console.print(table)


# --- forward returns ---------------------------------------------------------------------------

@dataclasses.dataclass
class Forward:
    """What followed a target session: per-symbol and per-basket returns (fractions).

    ``sessions`` are the target session and the ones after it that have bars (up to the
    longest horizon); ``missing`` says in words why a horizon has no figure.
    """

    entry: dt.date
    sessions: list[dt.date]
    last_bar: dt.date | None
    symbol_paths: dict[str, pd.Series]
    missing: dict[int, str]

    def symbol_return(self, symbol: str, h: int) -> float | None:
        """close on the h-th session / open of the entry session - 1, or None."""
        path = self.symbol_paths.get(symbol)
        if h in self.missing or path is None or len(path) < h or pd.isna(path.iloc[h - 1]):
            return None
        return float(path.iloc[h - 1])

    def basket_path(self, weights: dict[str, float]) -> pd.Series:
        """Cumulative return of a basket held from the entry open, session by session."""
        names = {s: w for s, w in weights.items() if s in self.symbol_paths and w > 0}
        if not names or not self.sessions:
            return pd.Series(dtype=float)
        frame = pd.DataFrame({s: self.symbol_paths[s] for s in names})
        w = pd.Series(names)
        have = frame.notna()
        return (frame.fillna(0.0) * w).sum(axis=1) / have.mul(w).sum(axis=1).where(lambda x: x > 0)

    def basket_return(self, weights: dict[str, float], h: int) -> float | None:
        """The basket's return over ``h`` sessions, or None past the data."""
        if h in self.missing:
            return None
        path = self.basket_path(weights)
        return float(path.iloc[h - 1]) if len(path) >= h and pd.notna(path.iloc[h - 1]) else None


def forward_returns(cfg: Config, clock: sessions.Clock, entry: dt.date, symbols: list[str]) -> Forward:
    """Split-adjusted returns of ``symbols`` from ``entry``'s open to the close of the
    following sessions (HORIZONS), read from the configured source as of ``clock``."""
    now = clock.now()
    end = sessions.last_closed_session(now)
    horizon = max(HORIZONS)
    expected = sessions.sessions_between(entry, entry + dt.timedelta(days=horizon * 2 + 14))[:horizon]
    missing: dict[int, str] = {}
    if end < entry or not symbols:
        for h in HORIZONS:
            missing[h] = f"session {entry} has not closed as of {now:%Y-%m-%d %H:%M %Z}"
        return Forward(entry, [], None, {}, missing)
    bars = make_source(cfg).bars(end=min(end, expected[-1]), start=entry, symbols=symbols, adjust_through=end)
    last_bar = max(bars["date"]) if len(bars) else None
    closes = bars.pivot(index="date", columns="symbol", values="close") if len(bars) else pd.DataFrame()
    opens = bars[bars["date"] == entry].set_index("symbol")["open"] if len(bars) else pd.Series(dtype=float)
    held = [d for d in expected if d in set(closes.index)]
    paths = {s: closes.loc[held, s] / opens[s] - 1.0 for s in closes.columns if s in opens.index}
    for h in HORIZONS:
        target = expected[h - 1]
        if target > end:
            missing[h] = f"session {target} is after the as-of instant"
        elif last_bar is None or target > last_bar:
            missing[h] = f"runs past the data (last bar {last_bar or 'none'})"
    return Forward(entry, held, last_bar, paths, missing)


# --- replay ------------------------------------------------------------------------------------

def resolve(cfg: Config, plan: str | None, latest: bool) -> Path:
    """The archive a user named (a path, or a file name in the archive folder), or the newest.

    Raises:
        BadInputError: neither or both given, or no such file.
        NothingToDo: ``--latest`` with no archive yet.
    """
    if bool(plan) == bool(latest):
        raise BadInputError("name one archived plan (a path) or pass --latest; 'prep history' lists them.")
    if latest:
        found = archives(cfg)
        if not found:
            raise NothingToDo(f"no archived plans in {cfg.path(cfg.paths.archive_dir)} yet.")
        return found[-1]
    for candidate in (Path(plan), cfg.path(cfg.paths.archive_dir) / plan):
        if candidate.is_file():
            return candidate
    raise BadInputError(f"no archived plan at {plan}; run 'prep history' to list them.")


def _fmt(x: float | None, pct: bool = True) -> str:
    if x is None:
        return "-"
    return f"{x:+.1%}" if pct else f"{x:.1f}"


def replay_command(cfg: Config, clock: sessions.Clock, console: Console, plan_arg: str | None, latest: bool,
                   out: str | None) -> Path:
    """Print what a plan decided pick by pick and what followed; write a PNG beside. Returns its path.

    Raises:
        BadInputError / PlanError: no such archive, or a broken one.
    """
    path = resolve(cfg, plan_arg, latest)
    doc, plan = load_archive(path)
    vr = plan.validation_results
    console.print(f"[bold]replay[/] {path.name}: plan {plan.plan_id}, scan of {plan.scan_session} for session "
                  f"{plan.target_session}, {doc.get('status', '-')}, data {plan.data_source}")
    baskets: dict[str, dict[str, float]] = {}
    chosen_before: dict[str, float] = {}
    chosen_after: dict[str, float] = {}
    if vr is None:
        console.print("never validated: no strategy was chosen; showing each strategy's evening weights.")
        baskets = {n: dict(s.allocations) for n, s in plan.strategies.items() if s.allocations}
    else:
        rates = ", ".join(f"{n} {v.validation_rate:.0%}" for n, v in vr.validated_strategies.items() if n != "BUY_HOLD")
        console.print(f"selected [bold]{vr.selected_strategy}[/]: {vr.selection_reason} (validation rates: {rates})")
        chosen_before = dict(plan.strategies[vr.selected_strategy].allocations)
        chosen_after = dict(vr.validated_strategies[vr.selected_strategy].validated_allocations)
        baskets[f"{vr.selected_strategy} (traded)"] = chosen_after
        if set(chosen_before) != set(chosen_after) or any(abs(chosen_before[k] - chosen_after[k]) > 1e-9
                                                          for k in chosen_after):
            baskets[f"{vr.selected_strategy} before the gate"] = chosen_before
        rejected = sorted(s for s, c in vr.checks.items() if not c.passed)
        if rejected:
            baskets[f"rejected picks ({len(rejected)}, equal weight)"] = {s: 1.0 / len(rejected) for s in rejected}
        if vr.selected_strategy != "BUY_HOLD":
            baskets["BUY_HOLD"] = dict(plan.strategies["BUY_HOLD"].allocations)
    symbols = sorted({s for b in baskets.values() for s in b} | set(vr.checks if vr else plan.tickers))
    fwd = forward_returns(cfg, clock, plan.target_session, symbols)

    table = Table(title="picks: evening vs morning, and what followed")
    cols = ["symbol", "bucket", "evening", "morning", "retention", "verdict", "weight before", "weight after",
            *(f"+{h}" for h in HORIZONS)]
    for c in cols:
        table.add_column(c, justify="left" if c in ("symbol", "bucket", "verdict") else "right")
    picks = sorted(vr.checks) if vr else sorted({s for st in plan.strategies.values() for s in st.allocations
                                                   if s in plan.tickers})
    for s in picks:
        c = vr.checks[s] if vr else None
        t = plan.tickers.get(s)
        verdict = "-" if c is None else ("PASS" if c.passed else f"[red]REJECT[/] ({c.reason})")
        table.add_row(s, t.bucket if t else "-", _fmt(c.original_score if c else (t.score if t else None), False),
                      _fmt(c.current_score if c else None, False),
                      "-" if c is None or c.retention is None else f"{c.retention:.0%}", verdict,
                      f"{chosen_before[s]:.1%}" if s in chosen_before else "-",
                      f"{chosen_after[s]:.1%}" if s in chosen_after else "-",
                      *(_fmt(fwd.symbol_return(s, h)) for h in HORIZONS))
    console.print(table)
    execution = doc.get("execution") or {}
    orders = execution.get("orders") or []
    if orders:
        filled = [o for o in orders if o.get("status") == "filled"]
        bought = sum(o["filled_qty"] * (o["filled_avg_price"] or 0) for o in filled if o["side"] == "buy")
        sold = sum(o["filled_qty"] * (o["filled_avg_price"] or 0) for o in filled if o["side"] == "sell")
        after = execution.get("account_after") or {}
        console.print(f"orders: {len(orders)} sent, {len(filled)} filled, bought ${bought:,.2f}, sold ${sold:,.2f}"
                      + (f"; equity after ${after['equity']:,.2f}" if after.get("equity") is not None else ""))
    elif vr is not None:
        console.print("orders: none recorded (not executed, or a dry run)")

    ftable = Table(title=f"forward returns from the open of {plan.target_session} (split-adjusted)")
    ftable.add_column("basket")
    for h in HORIZONS:
        ftable.add_column(f"{h} session{'s' if h > 1 else ''}", justify="right")
    for label, weights in baskets.items():
        ftable.add_row(label, *(_fmt(fwd.basket_return(weights, h)) if h not in fwd.missing else "past the data"
                                if "past the data" in fwd.missing[h] else "not yet" for h in HORIZONS))
    console.print(ftable)
    for h, why in fwd.missing.items():
        console.print(f"{h}-session horizon: {why}")
    folder = Path(out) if out else cfg.root / "reports"
    png = forward_chart({label: fwd.basket_path(w) for label, w in baskets.items()},
                        folder / f"replay_{plan.plan_id}.png",
                        f"plan {plan.plan_id}: after the open of {plan.target_session}")
    console.print(f"chart: {png}")
    return png
