"""How many failed authentications from one address the gateway records one by one.

Every failed authentication is a deny the audit log must show, and each costs a locked append. A caller
that floods the gateway with bad tokens (a scanner, a misconfigured retry loop) would otherwise grow the
chain without bound and hold the lock every agent's read needs. So, per client address and sliding window,
the first ``limit`` failures are audited one by one; reaching the limit is audited once (``rule:
rate_limit``, with the address, the limit and the window); further failures from that address inside the
window are answered HTTP 429 and counted in the gateway log, not appended. Valid tokens from the same
address are never refused: only failures are limited.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

DEFAULT_LIMIT = 20
DEFAULT_WINDOW_S = 60.0


class FailureLimiter:
    """Failed authentications per address in a sliding window (thread-safe)."""

    def __init__(
        self,
        limit: int = DEFAULT_LIMIT,
        window_s: float = DEFAULT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def record(self, address: str) -> str:
        """Count one failure from ``address``: ``audit`` it, audit that the limit is ``reached``, or ``suppress``."""
        now = self._clock()
        with self._lock:
            times = self._failures.setdefault(address, deque())
            while times and now - times[0] > self.window_s:
                times.popleft()
            times.append(now)
            if len(self._failures) > 10_000:  # forget idle addresses, so the table stays small
                for idle in [a for a, t in self._failures.items() if now - t[-1] > self.window_s]:
                    del self._failures[idle]
            if len(times) <= self.limit:
                return "audit"
            return "reached" if len(times) == self.limit + 1 else "suppress"
