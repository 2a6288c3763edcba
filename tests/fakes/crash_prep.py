"""`prep` that dies right after it writes its Nth order-journal line (for the crash tests).

    python tests/fakes/crash_prep.py N --config WORKSPACE/config.yaml execute

``Journal.append`` is wrapped: once the original has fsynced the Nth line this process wrote
to a journal file, ``os._exit(137)`` ends the process on the spot (no cleanup, no lock
release but the kernel's).  After an intent line that is a crash before the send, after an
answer line one after it.  Every other argument goes to the real entry point,
``trading_system.cli.main``, which runs unchanged; a run that writes fewer than N lines
exits as `prep` does.
"""

from __future__ import annotations

import os
import sys

from trading_system.state import journal
from trading_system.cli import main

CRASH_CODE = 137   # what a shell reports for a SIGKILL


def crash_after(lines: int) -> None:
    """Make every ``Journal`` end the process once ``lines`` journal lines were written to files."""
    original = journal.Journal.append
    written = 0

    def append(self: journal.Journal, event: str, **fields) -> None:
        nonlocal written
        original(self, event, **fields)
        if self.path is None:   # a dry run's journal writes nothing
            return
        written += 1
        if written == lines:
            os._exit(CRASH_CODE)

    journal.Journal.append = append


if __name__ == "__main__":
    crash_after(int(sys.argv[1]))
    main(args=sys.argv[2:], prog_name="prep")
