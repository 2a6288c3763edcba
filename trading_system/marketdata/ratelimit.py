"""A token bucket: at most ``rate_per_minute`` requests a minute, bursts of at most ``burst``.

The free Polygon plan allows 5 requests a minute (API-NOTES A8).  With ``burst`` = 1 the
bucket spaces requests evenly (12 s apart at 5/min), so no 60-second window ever holds
more than the plan allows, whichever way the vendor counts its minute.
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class TokenBucket:
    """Blocks each ``acquire()`` until a token is free; tokens refill at ``rate_per_minute / 60`` a second.

    ``clock`` (seconds, monotonic) and ``sleep`` are injectable so the pacing can be
    checked without waiting.  The bucket starts full: the first ``burst`` requests go at once.
    """

    def __init__(self, rate_per_minute: float, burst: int = 1,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if rate_per_minute <= 0 or burst < 1:
            raise ValueError("rate_per_minute must be > 0 and burst >= 1")
        self.rate = rate_per_minute / 60.0
        self.capacity = float(burst)
        self._tokens = float(burst)
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = threading.Lock()
        self.waited = 0.0  # total seconds spent waiting, for logs and benchmarks

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def acquire(self) -> float:
        """Take one token, sleeping until one is free; returns the seconds waited."""
        waited = 0.0
        with self._lock:
            self._refill()
            while self._tokens < 1.0:
                need = (1.0 - self._tokens) / self.rate
                self._sleep(need)
                waited += need
                self._refill()
            self._tokens -= 1.0
        self.waited += waited
        return waited
