"""One line of ``prep doctor``: a check's name, its status and one sentence."""

from __future__ import annotations

import dataclasses
from typing import Literal

OK, WARN, FAIL = "OK", "WARN", "FAIL"
Status = Literal["OK", "WARN", "FAIL"]


@dataclasses.dataclass(frozen=True)
class Check:
    """``status``: OK (ready), WARN (works, with a caveat the sentence names), FAIL (a run would stop
    or trade wrongly: fix it).  ``message``: one sentence, never a key or a secret."""

    name: str
    status: Status
    message: str
