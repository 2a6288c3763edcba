"""`prep context [--json]` on the sample: the regime with its inputs and the universe's earnings reports
of the next sessions, read from the real data, writing nothing."""

import json

import pandas as pd

from conftest import SAMPLE


def test_json_has_the_regime_and_the_reports_of_the_next_sessions(prep):
    r = prep("--as-of", "2020-10-26T20:00", "context", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["session"] == "2020-10-26" and doc["target"] == "2020-10-27"
    assert doc["regime"]["status"] == "ok" and doc["regime"]["state"] in ("RISK_ON", "NEUTRAL", "RISK_OFF")
    assert doc["regime"]["source"].startswith("indices") and "I:SPX.sma" in doc["regime"]["inputs"]
    # By hand: every report of the sample's earnings.csv dated 2020-10-26 .. 2020-11-02 (the target and
    # four sessions after it) for a symbol of the universe (the sample's constituents, SPY and QQQ).
    table = pd.read_csv(SAMPLE / "earnings.csv")
    universe = set(pd.read_csv(SAMPLE / "constituents.csv")["symbol"]) | {"SPY", "QQQ"}
    expected = {(s, d) for s, d in zip(table["symbol"], table["date"])
                if "2020-10-26" <= d <= "2020-11-02" and s in universe}
    assert {(e["symbol"], e["date"]) for e in doc["events"]} == expected
    assert ("ENPH", "2020-10-27") in expected
    assert not (prep.folder / "pending_trades.json").exists() and not (prep.folder / "data").exists()


def test_the_table_names_the_regime_and_its_source(prep):
    r = prep("--as-of", "2020-03-16T20:00", "context")
    assert r.exit_code == 0, r.output
    assert "regime: RISK_OFF (I:SPX 29.5% under its 252-session high (bear line 20%)): BUY_HOLD only, exposure 50%" \
        in r.output.replace("\n", " ")
    assert "source: indices I:SPX, I:NDX, I:RUT, I:VIX (sample)" in r.output
