"""Shared fixtures: the bundled real bars, and a scratch workspace whose config points at them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="session")
def sample_bars() -> pd.DataFrame:
    """The raw real bars of data/sample (symbol, date, open, high, low, close, volume)."""
    return pd.read_parquet(SAMPLE / "bars.parquet")


def write_config(folder: Path, extra: str = "") -> Path:
    """A config.yaml in ``folder`` that reads the bundled sample; ``extra`` YAML is appended."""
    text = (f"data:\n  sample_dir: {SAMPLE}\n"
            f"universe:\n  constituents_file: {SAMPLE / 'constituents.csv'}\n") + extra
    path = folder / "config.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder with a config.yaml over the sample; state files land here."""
    write_config(tmp_path)
    return tmp_path


class Prep:
    """Runs the real `prep` command line in-process (click's runner), in a workspace."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.runner = CliRunner()

    def __call__(self, *args: str):
        from trading_system.cli import main

        return self.runner.invoke(main, ["--config", str(self.folder / "config.yaml"), *args],
                                  catch_exceptions=False)

    def plan(self) -> dict:
        return json.loads((self.folder / "pending_trades.json").read_text())


@pytest.fixture
def prep(workspace: Path) -> Prep:
    return Prep(workspace)
