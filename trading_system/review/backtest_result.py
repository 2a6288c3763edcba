"""What a backtest returns (``BacktestResult``), night by night (``Night``), and the accounts' names.

Apart from ``backtest`` (the replay) so that the report, the sweeps and the tests read results
without the machinery that makes them.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import math

import pandas as pd

from trading_system.vocabulary import StrategyName

SYSTEM, NO_GATE, BUY_HOLD = "system", "no gate", StrategyName.BUY_HOLD.value
NO_REGIME, NO_EVENTS = "no regime", "no events"
#: Every account, in the order of the equity columns and the report's rows.
ACCOUNTS = (SYSTEM, NO_GATE, NO_REGIME, NO_EVENTS, BUY_HOLD)
#: The regime states a night's plan can hold: the three of DESIGN §11, ``unavailable`` (no data that
#: night, or a plan without a context) and ``off`` (``regime.enabled`` false in the config).
REGIME_STATES = ("RISK_ON", "NEUTRAL", "RISK_OFF", "unavailable", "off")

#: One order of a night: (client_order_id, side, symbol, qty in shares or None, notional in dollars
#: or None, filled_qty in shares, filled_avg_price in dollars or None, status).
OrderLine = tuple[str, str, str, "float | None", "float | None", float, "float | None", str]




@dataclasses.dataclass
class Night:
    """One session of the backtest: what each account traded and what the gates did."""

    session: dt.date
    plan_id: str                      # the system's plan
    selected: dict[str, str]          # account -> strategy traded that session
    checked: int                      # picks of the system's plan re-scored in the morning
    rejected: dict[str, int]          # account -> picks rejected by its gate
    traded: dict[str, float]          # account -> dollars filled (buys + sells)
    checks: dict[str, int] = dataclasses.field(default_factory=dict)      # account -> picks re-scored
    regime: str = "unavailable"       # the system's plan: one of REGIME_STATES
    exposure: dict[str, float] = dataclasses.field(default_factory=dict)  # account -> fraction invested
    earnings_removed: list[str] = dataclasses.field(default_factory=list)  # picks the system's gate removed
    orders: dict[str, list[OrderLine]] = dataclasses.field(default_factory=dict)  # account -> its orders


@dataclasses.dataclass
class BacktestResult:
    """Equity curves (dollars, indexed by session; first row = start), figures and nights."""

    start: dt.date
    end: dt.date
    data_source: str
    equity: pd.DataFrame
    figures: dict[str, dict]
    nights: list[Night]
    seconds: float
    index_file: str | None = None     # the regime's index bars (the source's context file), if there is one
    gross: pd.DataFrame | None = None  # equity before costs: each curve plus the costs paid to date (dollars)
    engine: str = "nightly"           # "batch" or "nightly" (see review/backtest.py), and why when it fell back

    def selections(self, account: str = SYSTEM) -> dict[str, int]:
        """Sessions each strategy was traded by ``account``."""
        return dict(collections.Counter(n.selected[account] for n in self.nights if account in n.selected))

    def picks_checked(self, account: str = SYSTEM) -> int:
        """Picks ``account`` re-scored over every morning (its own plans: NO_EVENTS scans its own)."""
        return sum(n.checks.get(account, n.checked) for n in self.nights)

    def rejection_rate(self, account: str = SYSTEM) -> float:
        """Rejected picks / picks checked by ``account``, over every morning (NaN when none were checked)."""
        checked = self.picks_checked(account)
        return sum(n.rejected.get(account, 0) for n in self.nights) / checked if checked else math.nan

    def regime_nights(self) -> dict[str, int]:
        """Nights per regime state of the system's plans: RISK_ON, NEUTRAL, RISK_OFF and unavailable
        always (0 when none), ``off`` only when it occurs."""
        counts = collections.Counter(n.regime for n in self.nights)
        return {s: counts.get(s, 0) for s in REGIME_STATES if s != "off" or counts.get(s)}

    def earnings_removals(self) -> tuple[int, int]:
        """(picks removed, nights with a removal) by the system's earnings gate."""
        return (sum(len(n.earnings_removed) for n in self.nights),
                sum(bool(n.earnings_removed) for n in self.nights))
