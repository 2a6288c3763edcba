"""Whether a finished ``prep execute`` failed: the account did not reach its targets.

The rule lives with the stage, not in the command line: ``cli`` raises ``RunFailure`` with the
sentence this returns (exit 1, and the alert that goes with it).
"""

from __future__ import annotations

from trading_system.execute.run import ExecuteResult


def targets_missed(result: ExecuteResult) -> str | None:
    """The one sentence that fails the run when the account did not reach its targets, else None.

    A dry run fails too when a live run would not go through as planned (nothing was sent); a live
    run says whether the plan is kept for a rerun to finish.
    """
    report = result.report
    if report.reached_targets:
        return None
    if report.dry_run:
        return (f"dry run: a live run would not go through as planned ({report.summary()}); "
                "nothing was sent, see the orders above.")
    kept = "; the plan is kept: run 'prep execute' again to finish" if result.plan_kept else ""
    return f"the account did not reach its targets ({report.summary()}){kept}; see the orders above."
