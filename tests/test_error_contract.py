"""Issue 8, items 10-12: the error contract of DESIGN §1 holds for broken files, folders and logs.

Exit 0 done, 1 run time, 2 bad input; one sentence on stderr, never a traceback; a log that cannot
be written never fails a run; temp files of killed runs are cleaned on the next run.  The table
of every hostile input through the CLI is ``test_hostile_inputs.py``; these are the single checks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import SAMPLE, Prep, write_config
from trading_system.config import load_config
from trading_system.errors import ConfigError

EVENING = "2021-04-19T20:00"


def no_traceback(text: str) -> bool:
    return "Traceback" not in text and "Logging error" not in text and "unexpected error" not in text


def prep_subprocess(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """The real `prep` in a child process: what a cron run prints, interpreter exit included."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "PREP_"))}
    cmd = [sys.executable, "-m", "trading_system.cli", "--config", str(folder / "config.yaml"), *args]
    return subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=90)


# --- item 10: config reads, log folder, failing log writes --------------------------------------------

def test_item10_config_of_random_bytes_is_config_error(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(ConfigError, match="is not text"):
        load_config(path)


def test_item10_config_that_is_a_directory_is_config_error(tmp_path):
    (tmp_path / "config.yaml").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path / "config.yaml")


def test_item10_unreadable_config_is_config_error(tmp_path, monkeypatch):
    # Tests run as root, where chmod 000 still reads: the read itself is made to fail as it would.
    path = write_config(tmp_path)

    def denied(self, *a, **kw):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(path), "read_text", denied)
    with pytest.raises(ConfigError, match=r"cannot be read \(Permission denied\)"):
        load_config(path)


def test_item10_crash_while_loading_config_prints_no_traceback(tmp_path, forks):
    # A bug before any log file exists must not reach logging's last-resort handler (stderr).  A process of
    # its own (a child of the fork server: what it prints while it runs is the subject, not its start-up).
    write_config(tmp_path)
    driver = tmp_path / "driver.py"
    driver.write_text("import sys, trading_system.config as c\n"
                      "def boom(path):\n    raise RuntimeError('a bug in the config loader')\n"
                      "c.load_config = boom\n"
                      "from trading_system.cli import main\n"
                      "main(sys.argv[1:])\n")
    r = forks.run([driver, "--config", tmp_path / "config.yaml", "status"], tmp_path, dict(os.environ), timeout=90)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == [
        "prep status: unexpected error (RuntimeError: a bug in the config loader); run again with -v for the details."]


def test_item10_log_dir_that_is_a_file_warns_once_and_carries_on(tmp_path):
    write_config(tmp_path, "paths:\n  log_dir: logs\n")
    (tmp_path / "logs").write_text("not a folder\n")
    r = Prep(tmp_path)("--as-of", EVENING, "prepare")
    assert r.exit_code == 0, r.output
    assert r.stderr.count("\n") == 1 and "cannot open the log" in r.stderr and "paths.log_dir" in r.stderr
    assert (tmp_path / "pending_trades.json").exists()
    assert (tmp_path / "logs").read_text() == "not a folder\n"


def test_item10_full_disk_log_prints_no_logging_error(tmp_path):
    write_config(tmp_path)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "pre_market_prep.log").symlink_to("/dev/full")   # writes fail with ENOSPC
    r = prep_subprocess(tmp_path, "--as-of", EVENING, "prepare")
    assert r.returncode == 0, r.stderr
    assert no_traceback(r.stdout + r.stderr), r.stderr
    assert r.stderr.count("cannot write the log") == 1 and "No space left on device" in r.stderr
    assert (tmp_path / "pending_trades.json").exists()


def test_item10_failing_log_of_a_failing_run_keeps_the_exit_code(tmp_path):
    write_config(tmp_path)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "pre_market_prep.log").symlink_to("/dev/full")
    r = prep_subprocess(tmp_path, "--as-of", "2022-03-01T20:00", "prepare")   # outside the sample: exit 2
    assert r.returncode == 2 and no_traceback(r.stderr), r.stderr
    assert "outside the sample data" in r.stderr


def test_item10_quiet_handler_warns_once_then_writes_again(tmp_path, capsys):
    from trading_system.runtime import QuietFileHandler

    link = tmp_path / "x.log"
    link.symlink_to("/dev/full")
    handler = QuietFileHandler(link)
    logger = logging.getLogger("test_item10_quiet")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    try:
        for i in range(3):
            logger.info("record %d", i)
        assert capsys.readouterr().err.count("cannot write the log") == 1
        link.unlink()                     # the disk "frees up": later records reach the file
        logger.info("after")
        handler.flush()
        assert "after" in link.read_text()
    finally:
        logger.removeHandler(handler)
        handler.close()


# --- item 11: bad input that used to be "unexpected error" ---------------------------------------------

def _config_with_constituents(tmp_path, constituents: Path):
    (tmp_path / "config.yaml").write_text(f"data:\n  sample_dir: {SAMPLE}\n"
                                          f"universe:\n  constituents_file: {constituents}\n")
    return load_config(tmp_path / "config.yaml")


@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_bytes(bytes(range(256)) * 8), "is not a CSV of symbols"),
    (lambda p: p.mkdir(), "is not a regular file"),
    (lambda p: os.mkfifo(p), "is not a regular file"),
    (lambda p: p.write_text("ticker\nAAPL\n"), "has no 'symbol' column"),
], ids=["junk", "directory", "fifo", "no symbol column"])
def test_item11_bad_constituents_file_is_config_error(tmp_path, make, words):
    from trading_system.prepare.universe import _constituents

    path = tmp_path / "constituents.csv"
    make(path)
    with release_fifo_after(path, 10), pytest.raises(ConfigError, match=words):
        _constituents(_config_with_constituents(tmp_path, path))


@contextlib.contextmanager
def release_fifo_after(path: Path, seconds: float):
    """If ``path`` is a FIFO someone opened for reading, open and close its write end after ``seconds``
    (the reader then sees an empty file), so a test of code that wrongly opens it fails, not hangs."""
    def release():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:   # not a FIFO, or nobody is reading it: nothing blocks
            pass

    timer = threading.Timer(seconds, release)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def test_item11_backtest_out_that_is_a_file_is_refused_before_the_run(tmp_path, monkeypatch):
    import trading_system.review.backtest_report as report

    def tripwire(*a, **kw):
        raise AssertionError("the backtest ran before --out was checked")

    monkeypatch.setattr(report, "run_backtest", tripwire)
    write_config(tmp_path)
    (tmp_path / "out").write_text("the user's file\n")
    r = Prep(tmp_path)("--as-of", "2021-04-21T20:00", "backtest", "--start", "2020-01-02", "--end", "2021-04-20",
                       "--out", str(tmp_path / "out"))
    assert r.exit_code == 2, r.output
    assert "--out" in r.stderr and "is a file" in r.stderr
    assert (tmp_path / "out").read_text() == "the user's file\n"


def test_item11_backtest_start_before_the_calendar_is_bad_input(tmp_path):
    write_config(tmp_path)
    r = Prep(tmp_path)("--as-of", "2021-04-21T20:00", "backtest", "--start", "1990-01-02", "--end", "2021-04-20")
    assert r.exit_code == 2 and "1999-01-05" in r.stderr and no_traceback(r.output), r.output


# --- item 12: orphaned temp files of killed runs ---------------------------------------------------------

def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _temp(folder: Path, name: str, pid: int | None, age: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    middle = f"pid{pid}." if pid is not None else ""
    path = folder / f".{name}.{middle}abcd_123.tmp"
    path.write_text("half a file")
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_item12_temp_name_carries_the_writer_pid(tmp_path):
    from trading_system.state.atomic import atomic_write, is_orphan

    seen = []
    atomic_write(tmp_path / "x.json", lambda tmp: (seen.append(Path(tmp).name), Path(tmp).write_text("{}")))
    assert seen[0].startswith(f".x.json.pid{os.getpid()}.") and seen[0].endswith(".tmp")
    assert not is_orphan(tmp_path / seen[0])


def test_item12_only_orphans_are_removed(tmp_path):
    from trading_system.state.atomic import clean_orphans

    gone = dead_pid()
    hour = 3600
    dead = _temp(tmp_path, "a.json", gone, age=120)
    live = _temp(tmp_path, "b.json", os.getpid(), age=hour * 5)       # this process: still writing
    fresh_dead = _temp(tmp_path, "c.json", gone, age=1)                 # too young to judge by PID
    old = _temp(tmp_path, "d.json", None, age=hour + 60)                # old pattern, no PID, stale
    young_old = _temp(tmp_path, "e.json", None, age=600)                # old pattern, could be writing
    mine = tmp_path / ".notes.tmp"                                      # not ours at all
    mine.write_text("the user's")
    nested = _temp(tmp_path / "orders", "f.jsonl", gone, age=120)
    assert clean_orphans(tmp_path) == 2
    assert not dead.exists() and not old.exists()
    assert live.exists() and fresh_dead.exists() and young_old.exists() and mine.exists() and nested.exists()
    assert clean_orphans(tmp_path, recursive=True) == 1 and not nested.exists()
    assert clean_orphans(tmp_path / "missing") == 0


def test_item12_next_run_cleans_orphans_of_killed_runs(tmp_path):
    write_config(tmp_path)
    gone = dead_pid()
    dead = [_temp(tmp_path, "pending_trades.json", gone, age=120),
            _temp(tmp_path / "archived_trades", "pending_trades_20210420_093105.json", gone, age=120),
            _temp(tmp_path / "data", "scan_results.json", gone, age=120),
            _temp(tmp_path / "data" / "store", "bars.parquet", gone, age=120)]
    live = [_temp(tmp_path, "pending_trades.json", os.getpid(), age=120),
            _temp(tmp_path / "data" / "store", "bars.parquet", os.getpid(), age=120)]
    r = Prep(tmp_path)("--as-of", "2021-04-20T09:00", "validate")   # no plan: exit 0, nothing to do
    assert r.exit_code == 0, r.output
    assert [p for p in dead if p.exists()] == []
    assert all(p.exists() for p in live)
    assert "removed 4 orphaned temp file(s)" in (tmp_path / "logs" / "pre_market_prep.log").read_text()
