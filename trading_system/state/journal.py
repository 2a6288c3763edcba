"""The order journal (DESIGN §7 "Idempotency"); the send-once discipline that writes it is
``execute/send_once.py``.

``data/orders/<plan_id>.jsonl`` is append-only: each line is flushed and fsynced before
the step it records goes on.  An ``intent`` line is written before an order is sent and
an ``answer`` line after; a lookup writes ``found`` or ``absent``; ``uncertain`` marks a
send that failed in a way that leaves its fate unknown (timeout, dropped connection, 429,
5xx).  On start every intent is looked up at the broker (``recover``); an order the broker
knows is never sent again, and an unknown outcome is always answered by a lookup by
client_order_id, never by a blind resend.

A ``close_position`` order cannot carry our client_order_id (``DELETE /v2/positions/{sym}``
takes none, API-NOTES B2), so it is found again as the sell in that symbol, since the
session began, whose client id is not one of ours (``prep-...``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

#: A journal is readable by its owner only, like every state file ``atomic_write`` creates (mkstemp: 0600).
FILE_MODE = 0o600


class Journal:
    """Append-only JSON-lines log of order intents and answers (``data/orders/<plan_id>.jsonl``), mode 0600.

    ``path=None`` keeps the journal in memory (dry runs write nothing).  A torn last line
    (a crash mid-write) is ignored: everything before it stands.
    """

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None
        self.entries: list[dict] = []
        self._written = 0
        self._folder_made = False
        if self.path and self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    try:
                        self.entries.append(json.loads(line))
                    except json.JSONDecodeError:
                        break

    def append(self, event: str, **fields) -> None:
        """Write one line and fsync it before returning."""
        entry = {"ts": dt.datetime.now(dt.timezone.utc).isoformat(), "event": event, **fields}
        self.entries.append(entry)
        if self.path is None:
            return
        if not self._folder_made:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._folder_made = True
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        with os.fdopen(fd, "a") as fh:
            if self._written == 0 and os.fstat(fd).st_mode & 0o777 != FILE_MODE:
                try:   # a journal an older version created 0644: made private like the rest
                    os.fchmod(fd, FILE_MODE)
                except OSError:   # not ours to change: the orders matter more than its mode
                    pass
            fh.write(json.dumps(entry, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._written += 1

    def intents(self) -> dict[str, dict]:
        """client_order_id -> its first intent line, in journal order."""
        out: dict[str, dict] = {}
        for e in self.entries:
            if e.get("event") == "intent":
                out.setdefault(e["client_order_id"], e)
        return out

    def broker_ids(self) -> dict[str, str]:
        """client_order_id -> the broker order id an answer or a lookup recorded."""
        return {e["client_order_id"]: e["broker_order_id"] for e in self.entries
                if e.get("event") in ("answer", "found") and e.get("broker_order_id")}
