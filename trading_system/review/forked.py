"""What a forked worker process of a backtest or a sweep shares: leaving when its parent dies."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os


def exit_with_parent() -> None:
    """Block until the parent process is gone, then end this one (``os._exit(1)``).

    Run on a daemon thread of a pool worker: a ``kill -9`` of the parent would otherwise leave the
    worker waiting for work forever (it holds its own end of the queue).  Returns at once in a
    process without a multiprocessing parent.
    """
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])   # ready once the parent is gone
        os._exit(1)
