"""What the router has observed of each deployment: in-flight count, latency, time to first token.

Fed by the request path after every attempt; read by the latency- and
load-aware strategies. Kept per process, in memory, O(1) per update.
"""

from __future__ import annotations

import time

_ALPHA = 0.2
_RING = 128


class DeploymentStats:
    __slots__ = (
        "_i",
        "_ring",
        "_ttft_i",
        "_ttft_ring",
        "avg_completion_tokens",
        "cached_tokens",
        "ewma_latency_ms",
        "ewma_ttft_ms",
        "in_flight",
        "last_active",
        "prompt_tokens",
        "samples",
    )

    def __init__(self) -> None:
        self.in_flight = 0
        self.last_active: float | None = None
        """``time.monotonic()`` when a request last started or ended here (health checks probe idle ones)."""
        self.ewma_latency_ms: float | None = None
        self.ewma_ttft_ms: float | None = None
        self.avg_completion_tokens: float | None = None
        self.samples = 0
        self._ring: list[float] = []
        self._i = 0
        self._ttft_ring: list[float] = []
        self._ttft_i = 0
        self.prompt_tokens = 0
        """Prompt tokens the deployment reported, and how many of them it read from its prompt cache
        (what cache-warm routing is for)."""
        self.cached_tokens = 0

    def start(self) -> None:
        self.in_flight += 1
        self.last_active = time.monotonic()

    def end(
        self, latency_ms: float | None, ttft_ms: float | None = None, completion_tokens: int | None = None
    ) -> None:
        """An attempt ended; ``latency_ms`` is None when it failed (failures are the breaker's business)."""
        self.in_flight = max(0, self.in_flight - 1)
        self.last_active = time.monotonic()
        if latency_ms is None:
            return
        self.samples += 1
        self.ewma_latency_ms = _ewma(self.ewma_latency_ms, latency_ms)
        if ttft_ms is not None:
            self.ewma_ttft_ms = _ewma(self.ewma_ttft_ms, ttft_ms)
            self._ttft_i = _push(self._ttft_ring, self._ttft_i, ttft_ms)
        if completion_tokens is not None:
            self.avg_completion_tokens = _ewma(self.avg_completion_tokens, float(completion_tokens))
        self._i = _push(self._ring, self._i, latency_ms)

    def tokens(self, prompt: int, cached: int) -> None:
        """A request this deployment served reported ``prompt`` tokens, ``cached`` of them from cache."""
        self.prompt_tokens += prompt
        self.cached_tokens += cached

    def p95_latency_ms(self) -> float | None:
        return _p95(self._ring)

    def p95_ttft_ms(self) -> float | None:
        """Streams: the 95th percentile of time to first token (what a stream's hedge waits for)."""
        return _p95(self._ttft_ring)


def _push(ring: list[float], i: int, value: float) -> int:
    """Keep the last ``_RING`` values; returns the next slot to overwrite."""
    if len(ring) < _RING:
        ring.append(value)
        return i
    ring[i] = value
    return (i + 1) % _RING


def _p95(ring: list[float]) -> float | None:
    if not ring:
        return None
    ordered = sorted(ring)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _ewma(old: float | None, new: float) -> float:
    return new if old is None else old + _ALPHA * (new - old)
