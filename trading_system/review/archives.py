"""``prep history`` and ``prep replay``: what the archived plans decided, and what followed.

An archive (``archived_trades/pending_trades_YYYYMMDD_HHMMSS.json``) holds
``{"status", "archived_at", "plan", "execution"}``; ``replay`` also reads a bare plan
file (``pending_trades.json``).  Forward returns come from the configured bar store,
split-adjusted, clamped to the as-of instant like every other read: a basket bought at
the target session's open (the price the simulated broker fills at) and held 1, 5 and
20 sessions (the target session counts as the first), weights fixed at entry:
``r = sum_i w_i (close_i,h / open_i,entry - 1) / sum_i w_i`` over the names with bars.

When the plan recorded each pick's price levels (``context.levels``), ``replay`` also says which one
the sessions after the scan touched first (``review.touches``).

``history`` and ``replay`` compute and return a result (``replay`` writes its PNG chart too, a file
beside the figures it draws); ``trading_system.present.archives`` prints them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from trading_system import sessions
from trading_system.config import Config
from trading_system.errors import BadInputError, NothingToDo, PlanError
from trading_system.present.charts import forward_chart
from trading_system.review.touches import Touches, level_touches
from trading_system.runtime import make_source
from trading_system.state.plan import Plan
from trading_system.validate.gate import percent
from trading_system.vocabulary import StrategyName

HORIZONS = (1, 5, 20)
#: A plan id as every command prints it: the target session and a digest (``20210420-b5367119``).
PLAN_ID = re.compile(r"^[0-9]{8}-[0-9a-f]{8}$")


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
    """The chosen strategy's validation rate; for the BUY_HOLD fallback, the best strategy's."""
    vr = plan.validation_results
    if vr is None:
        return "-"
    chosen = vr.validated_strategies[vr.selected_strategy]
    if chosen.contestant:
        return percent(chosen.validation_rate)
    rates = [v.validation_rate for n, v in vr.validated_strategies.items() if n != StrategyName.BUY_HOLD]
    return percent(max(rates)) if rates else "-"


def history_rows(cfg: Config) -> list[dict]:
    """One row per archive: file, plan id, status, target session, strategy, validation rate,
    rejections (rejected / checked), orders executed, dry run.  Unreadable files are rows too."""
    rows = []
    for path in archives(cfg):
        try:
            doc, plan = load_archive(path)
        except PlanError:
            rows.append({"file": path.name, "plan_id": "-", "status": "unreadable", "session": "-", "strategy": "-",
                         "rate": "-", "rejections": "-", "orders": "-", "dry_run": "-"})
            continue
        vr = plan.validation_results
        execution = doc.get("execution") or {}
        rejected = sum(not c.passed for c in vr.checks.values()) if vr else None
        rows.append({
            "file": path.name, "plan_id": plan.plan_id, "status": str(doc.get("status", "-")),
            "session": str(plan.target_session),
            "strategy": vr.selected_strategy if vr else "-", "rate": _rate(plan),
            "rejections": f"{rejected} of {len(vr.checks)}" if vr else "-",
            "orders": str(vr.orders_executed) if vr else "0",
            "dry_run": "yes" if (vr and vr.dry_run) or execution.get("dry_run") else "no",
        })
    return rows


@dataclasses.dataclass
class History:
    """``prep history``: one row per archive, oldest first (see ``history_rows``)."""

    rows: list[dict]


def history(cfg: Config) -> History:
    """The archived plans, oldest first; unreadable files are rows too (status ``unreadable``).

    Raises:
        NothingToDo: there is no archive yet.
    """
    rows = history_rows(cfg)
    if not rows:
        raise NothingToDo(f"no archived plans in {cfg.path(cfg.paths.archive_dir)} yet.")
    return History(rows)


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

def find_plan(cfg: Config, plan_id: str) -> list[Path]:
    """The archives whose plan has ``plan_id``, oldest first (a plan is archived again when a rerun
    finishes it, or when it is replaced); then the pending plan file if it holds that plan.

    A file is parsed only if its bytes name the id; unreadable archives are passed over.
    """
    key = plan_id.encode()
    found = []
    for path in [*archives(cfg), cfg.path(cfg.paths.plan)]:
        try:
            if not path.is_file() or key not in path.read_bytes():   # is_file: never open a FIFO
                continue
            _, plan = load_archive(path)
        except (OSError, PlanError):
            continue
        if plan.plan_id == plan_id:
            found.append(path)
    return found


def resolve(cfg: Config, plan: str | None, latest: bool) -> tuple[Path, str | None]:
    """The archive a user named, and a note when more than one holds that plan.

    ``plan`` is a plan id (``20210420-b5367119``, as every command prints it: the newest archive of
    that plan, or the pending plan file if it was never archived), a path, or a file name in the
    archive folder; ``latest`` takes the newest archive.

    Raises:
        BadInputError: neither or both given, or no such plan or file.
        NothingToDo: ``--latest`` with no archive yet.
    """
    if bool(plan) == bool(latest):
        raise BadInputError("name one plan (its id, e.g. 20210420-b5367119, or an archive file) or pass --latest; "
                            "'prep history' lists them.")
    if latest:
        found = archives(cfg)
        if not found:
            raise NothingToDo(f"no archived plans in {cfg.path(cfg.paths.archive_dir)} yet.")
        return found[-1], None
    assert plan is not None  # exactly one of plan and latest was given (checked above)
    if PLAN_ID.match(plan):
        found = find_plan(cfg, plan)
        if not found:
            raise BadInputError(f"no archived plan has id {plan}; run 'prep history' to list them.")
        archived = [p for p in found if p != cfg.path(cfg.paths.plan)] or found
        note = (f"{len(archived)} archives hold plan {plan} ({', '.join(p.name for p in archived)}); "
                f"replaying the newest") if len(archived) > 1 else None
        return archived[-1], note
    for candidate in (Path(plan), cfg.path(cfg.paths.archive_dir) / plan):
        if candidate.is_file():
            return candidate, None
    raise BadInputError(f"no archived plan at {plan}; run 'prep history' to list them.")


def _baskets(plan: Plan) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """(label -> weights, label -> account for the chart colours) of the baskets a replay follows."""
    vr = plan.validation_results
    baskets: dict[str, dict[str, float]]
    if vr is None:
        baskets = {str(n): dict(s.allocations) for n, s in plan.strategies.items() if s.allocations}
        return baskets, {n: n for n in baskets}
    chosen_before = dict(plan.strategies[StrategyName(vr.selected_strategy)].allocations)
    chosen_after = dict(vr.validated_strategies[vr.selected_strategy].validated_allocations)
    traded = f"{vr.selected_strategy} (traded)"
    baskets, accounts = {traded: chosen_after}, {traded: "system"}
    if vr.selected_strategy == StrategyName.BUY_HOLD:
        accounts[traded] = StrategyName.BUY_HOLD
    if set(chosen_before) != set(chosen_after) or any(abs(chosen_before[k] - chosen_after[k]) > 1e-9
                                                      for k in chosen_after):
        label = f"{vr.selected_strategy} before the gate"
        baskets[label], accounts[label] = chosen_before, "no gate"
    rejected = sorted(s for s, c in vr.checks.items() if not c.passed)
    if rejected:
        label = f"rejected picks ({len(rejected)}, equal weight)"
        baskets[label], accounts[label] = {s: 1.0 / len(rejected) for s in rejected}, "rejected"
    if vr.selected_strategy != StrategyName.BUY_HOLD:
        bh = StrategyName.BUY_HOLD
        baskets[str(bh)], accounts[str(bh)] = dict(plan.strategies[bh].allocations), str(bh)
    return baskets, accounts


@dataclasses.dataclass
class OrdersDone:
    """The orders an archive records: how many were sent and filled, dollars bought and sold, the equity after."""

    sent: int
    filled: int
    bought: float
    sold: float
    equity_after: float | None


@dataclasses.dataclass
class Replay:
    """``prep replay``: a plan, what it decided, and what followed.

    ``path``: the archive read; ``note``: said first when several archives hold the plan; ``status``: the
    archive's; ``baskets``: label -> weights followed (see ``_baskets``); ``orders``: None when none were
    recorded; ``chart``: the PNG written; ``touches``: what each pick's price levels saw first (None for
    a plan without ``context.levels``, see ``review.touches``).
    """

    path: Path
    note: str | None
    status: str
    plan: Plan
    baskets: dict[str, dict[str, float]]
    forward: Forward
    orders: OrdersDone | None
    chart: Path
    touches: Touches | None = None


def _orders_done(doc: dict) -> OrdersDone | None:
    """What the archive's execution records of its orders, or None when it records none."""
    execution = doc.get("execution") or {}
    orders = execution.get("orders") or []
    if not orders:
        return None
    filled = [o for o in orders if o.get("status") == "filled"]
    bought = sum(o["filled_qty"] * (o["filled_avg_price"] or 0) for o in filled if o["side"] == "buy")
    sold = sum(o["filled_qty"] * (o["filled_avg_price"] or 0) for o in filled if o["side"] == "sell")
    after = execution.get("account_after") or {}
    return OrdersDone(len(orders), len(filled), bought, sold, after.get("equity"))


def replay(cfg: Config, clock: sessions.Clock, plan_arg: str | None, latest: bool, out: str | None) -> Replay:
    """What a plan decided and what followed; the PNG of its baskets' forward returns is written
    (to ``out``, default ``reports/``) and named in the result.

    ``plan_arg``: a plan id, an archive path or file name (see ``resolve``).

    Raises:
        BadInputError / PlanError: no such plan or archive, or a broken one.
    """
    path, note = resolve(cfg, plan_arg, latest)
    doc, plan = load_archive(path)
    vr = plan.validation_results
    baskets, accounts = _baskets(plan)
    symbols = sorted({s for b in baskets.values() for s in b} | set(vr.checks if vr else plan.tickers))
    fwd = forward_returns(cfg, clock, plan.target_session, symbols)
    folder = Path(out) if out else cfg.root / "reports"
    png = forward_chart({label: fwd.basket_path(w) for label, w in baskets.items()},
                        folder / f"replay_{plan.plan_id}.png",
                        f"plan {plan.plan_id}: after the open of {plan.target_session}", accounts)
    touches = level_touches(cfg, clock, plan, fwd.missing, HORIZONS)
    return Replay(path, note, str(doc.get("status", "-")), plan, baskets, fwd, _orders_done(doc), png, touches)
