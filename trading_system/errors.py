"""The project's exceptions and the exit code each maps to (DESIGN §1).

``cli.py`` turns a ``PrepError`` into one plain sentence and its exit code; anything
else is a bug and is logged with its traceback.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


class PrepError(Exception):
    """An expected failure with a one-sentence message for the user."""

    exit_code = 1


class BadInputError(PrepError):
    """Usage, config or plan-file problems: exit 2."""

    exit_code = 2


class ConfigError(BadInputError):
    """``config.yaml`` is missing, malformed or holds an unknown key."""


class PlanError(BadInputError):
    """``pending_trades.json`` is corrupt, hand-broken or for another session."""


class AsOfError(BadInputError):
    """``--as-of`` cannot be parsed or lies outside the data."""


class RunFailure(PrepError):
    """A failure at run time (data source down, broker refused, targets missed): exit 1.

    (Named so it cannot be mistaken for the builtin ``RuntimeError``.)"""


class DataError(RunFailure):
    """Market data is missing, stale or the source failed."""


class BrokerError(RunFailure):
    """The broker refused or could not be reached."""


class LockHeldError(RunFailure):
    """Another ``prep`` run holds the lock."""


class NothingToDo(Exception):
    """Not an error: a holiday, or no plan for today. Exit 0 with the message."""


@dataclasses.dataclass(frozen=True)
class FieldProblem:
    """The first error pydantic found, for a caller to put in its own sentence (``first_problem``)."""

    kind: str                       # pydantic's error type: "missing", "extra_forbidden", "json_invalid", ...
    loc: tuple[int | str, ...]      # the path to the field, as pydantic gives it
    where: str                      # that path dotted (``a.b.c``), or the caller's ``top`` when it is empty
    message: str                    # pydantic's message, without its "Value error, " prefix
    value: Any                      # the value refused
    ctx: dict[str, Any]             # the constraint's figures (``{"le": 1}``); empty when none

    def clause(self) -> str:
        """``where: message``, or only ``message`` when there is no ``where``."""
        return f"{self.where}: {self.message}" if self.where else self.message

    def shown(self, hide: bool = False) -> str:
        """The value as a sentence may quote it: its ``repr``, or only its type's name when it is
        hidden (``hide``: a secret) or a mapping or list (too long to quote)."""
        if hide or isinstance(self.value, (dict, list)):
            return type(self.value).__name__
        return repr(self.value)


def first_problem(exc: ValidationError, top: str = "") -> FieldProblem:
    """The first error of ``exc`` as a ``FieldProblem``; ``top`` names a field-less (whole-document) error."""
    first = exc.errors()[0]
    loc = tuple(first["loc"])
    return FieldProblem(kind=first["type"], loc=loc, where=".".join(str(p) for p in loc) or top,
                        message=first["msg"].removeprefix("Value error, "), value=first.get("input"),
                        ctx=dict(first.get("ctx") or {}))
