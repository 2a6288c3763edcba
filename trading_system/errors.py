"""The project's exceptions and the exit code each maps to (DESIGN §1).

``cli.py`` turns a ``PrepError`` into one plain sentence and its exit code; anything
else is a bug and is logged with its traceback.
"""

from __future__ import annotations


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
