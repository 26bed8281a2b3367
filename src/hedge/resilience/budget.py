"""A retry budget: retries may add at most a fixed share of extra load.

Without it, failover multiplies traffic exactly when providers are struggling.
Counts live in one-second buckets over a sliding window; a retry is allowed
while ``retries < max(min_per_s * window, ratio * requests)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hedge.config import RetryBudgetConfig


class RetryBudget:
    def __init__(self, config: RetryBudgetConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._size = max(1, int(config.window_s))
        self._requests = [0] * self._size
        self._retries = [0] * self._size
        self._stamp = [0] * self._size

    def _slot(self) -> int:
        second = int(self._clock())
        i = second % self._size
        if self._stamp[i] != second:
            self._stamp[i] = second
            self._requests[i] = 0
            self._retries[i] = 0
        return i

    def _live(self, counts: list[int]) -> int:
        now = int(self._clock())
        return sum(c for c, s in zip(counts, self._stamp, strict=True) if now - s < self._size)

    def request(self) -> None:
        self._requests[self._slot()] += 1

    def try_retry(self) -> bool:
        i = self._slot()
        allowed = max(self._config.min_per_s * self._size, self._config.ratio * self._live(self._requests))
        if self._live(self._retries) >= allowed:
            return False
        self._retries[i] += 1
        return True
