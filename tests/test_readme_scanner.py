"""The README's "Writing a scanner" works as written: its Python file, its config entry and `prep scan`
on it, run as a user would (a process of its own with the file's folder on PYTHONPATH: a child of the fork
server, fakes/prep_forkserver.py, which puts a request's PYTHONPATH on sys.path as an interpreter does)."""

import json
import os
import re

import pandas as pd

from conftest import ROOT, SAMPLE


def readme_blocks() -> tuple[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Writing a scanner"):]
    return (re.search(r"```python\n(.*?)```", section, re.S).group(1),
            re.search(r"```yaml\n(.*?)```", section, re.S).group(1))


def test_the_readme_example_scanner_runs_with_prep_scan(tmp_path, sample_bars, forks):
    code, entry = readme_blocks()
    assert len(code.strip().splitlines()) <= 20
    (tmp_path / "my_scanners.py").write_text(code)
    (tmp_path / "config.yaml").write_text(f"data:\n  sample_dir: {SAMPLE}\n"
                                          f"universe:\n  constituents_file: {SAMPLE / 'constituents.csv'}\n" + entry)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    r = forks.run(["-m", "trading_system.cli", "--config", str(tmp_path / "config.yaml"),
                   "--as-of", "2021-04-19T20:00", "scan", "wide", "--json"], tmp_path, env, timeout=120)
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)
    # By hand on the raw bars (no split in the sample on 2021-04-19): (high - low) / close >= 6 %,
    # volume >= 1,000,000 shares, widest first, at most 10.
    day = sample_bars[sample_bars["date"] == pd.Timestamp("2021-04-19").date()].set_index("symbol")
    width = (day["high"] - day["low"]) / day["close"]
    ok = width[(width >= 0.06) & (day["volume"] >= 1_000_000)].sort_values(ascending=False)
    assert found["scanner"] == "wide" and found["session"] == "2021-04-19"
    assert found["symbols"] == list(ok.index[:10]) and found["symbols"]
    first = found["symbols"][0]
    assert found["metadata"][first]["range"] == round(float(width[first]), 4)
