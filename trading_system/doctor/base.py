"""One line of ``prep doctor``: a check's name, its status and one sentence."""

from __future__ import annotations

import dataclasses
from typing import Final, Literal

Status = Literal["OK", "WARN", "FAIL"]
# Final: mypy sees each as its Literal, so ``Check(name, OK, ...)`` matches ``Status``.
OK: Final = "OK"
WARN: Final = "WARN"
FAIL: Final = "FAIL"


@dataclasses.dataclass(frozen=True)
class Check:
    """``status``: OK (ready), WARN (works, with a caveat the sentence names), FAIL (a run would stop
    or trade wrongly: fix it).  ``message``: one sentence, never a key or a secret."""

    name: str
    status: Status
    message: str
