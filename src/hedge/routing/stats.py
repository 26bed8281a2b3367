"""What the router has observed of each deployment: in-flight count, latency, time to first token.

Fed by the request path after every attempt; read by the latency- and
load-aware strategies. Kept per process, in memory, O(1) per update.
"""

from __future__ import annotations

_ALPHA = 0.2
_RING = 128


class DeploymentStats:
    __slots__ = (
        "_i",
        "_ring",
        "avg_completion_tokens",
        "ewma_latency_ms",
        "ewma_ttft_ms",
        "in_flight",
        "samples",
    )

    def __init__(self) -> None:
        self.in_flight = 0
        self.ewma_latency_ms: float | None = None
        self.ewma_ttft_ms: float | None = None
        self.avg_completion_tokens: float | None = None
        self.samples = 0
        self._ring: list[float] = []
        self._i = 0

    def start(self) -> None:
        self.in_flight += 1

    def end(
        self, latency_ms: float | None, ttft_ms: float | None = None, completion_tokens: int | None = None
    ) -> None:
        """An attempt ended; ``latency_ms`` is None when it failed (failures are the breaker's business)."""
        self.in_flight = max(0, self.in_flight - 1)
        if latency_ms is None:
            return
        self.samples += 1
        self.ewma_latency_ms = _ewma(self.ewma_latency_ms, latency_ms)
        if ttft_ms is not None:
            self.ewma_ttft_ms = _ewma(self.ewma_ttft_ms, ttft_ms)
        if completion_tokens is not None:
            self.avg_completion_tokens = _ewma(self.avg_completion_tokens, float(completion_tokens))
        if len(self._ring) < _RING:
            self._ring.append(latency_ms)
        else:
            self._ring[self._i] = latency_ms
            self._i = (self._i + 1) % _RING

    def p95_latency_ms(self) -> float | None:
        if not self._ring:
            return None
        ordered = sorted(self._ring)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _ewma(old: float | None, new: float) -> float:
    return new if old is None else old + _ALPHA * (new - old)
