"""Strategies order an alias's deployments: the first is tried first, the rest are fallbacks.

Each strategy is a small class with one method, ``order(ctx)``; adding a
strategy is adding a class and a line in :data:`STRATEGIES`. Ties are broken by
weight (higher first), then by configured order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hedge.config import ModelConfig
from hedge.routing.context import RouteContext
from hedge.routing.deployment import Deployment

DEFAULT_COMPLETION_TOKENS = 256


class Strategy(Protocol):
    def order(self, ctx: RouteContext) -> list[Deployment]: ...

    def peek(self, ctx: RouteContext) -> list[Deployment]:
        """The order without advancing any state: for an alias used as another's fallback."""
        ...


def expected_cost(dep: Deployment, ctx: RouteContext) -> float:
    """USD this request is expected to cost on ``dep``, at the price in force now."""
    price = dep.price_at(ctx.now)
    completion = ctx.max_tokens or dep.stats.avg_completion_tokens or DEFAULT_COMPLETION_TOKENS
    return (ctx.prompt_tokens * price.input + completion * price.output) / 1_000_000


class Ordered:
    """Priority list: always the configured order."""

    def __init__(self, deployments: Sequence[Deployment], config: ModelConfig | None = None) -> None:
        self._order = list(deployments)

    def order(self, ctx: RouteContext) -> list[Deployment]:
        return list(self._order)

    def peek(self, ctx: RouteContext) -> list[Deployment]:
        return self.order(ctx)


class Weighted:
    """Smooth weighted round-robin (as in nginx): exact shares, evenly interleaved, no randomness.

    Over any window of ``sum(weights)`` requests each deployment gets exactly
    its weight, which makes a split auditable and A/B samples comparable. The
    remaining deployments follow in descending weight as fallbacks.
    """

    def __init__(self, deployments: Sequence[Deployment], config: ModelConfig | None = None) -> None:
        self._deps = [d for d in deployments if d.weight > 0] or list(deployments)
        self._weights = [d.weight if d.weight > 0 else 1.0 for d in self._deps]
        self._total = sum(self._weights)
        self._current = [0.0] * len(self._deps)
        self._fallback_order = sorted(range(len(self._deps)), key=lambda i: -self._weights[i])
        self._rest = [d for d in deployments if d not in self._deps]

    def order(self, ctx: RouteContext) -> list[Deployment]:
        best = 0
        current, weights = self._current, self._weights
        for i, w in enumerate(weights):
            current[i] += w
            if current[i] > current[best]:
                best = i
        current[best] -= self._total
        deps = self._deps
        return [deps[best], *(deps[i] for i in self._fallback_order if i != best), *self._rest]

    def peek(self, ctx: RouteContext) -> list[Deployment]:
        """Heaviest first, leaving the round-robin untouched so this alias's own split stays exact."""
        return [*(self._deps[i] for i in self._fallback_order), *self._rest]


class Cheapest:
    """Lowest expected cost among deployments meeting the alias's latency and quality bars.

    Deployments that miss a bar follow, cheapest first, as fallbacks. A
    deployment with no latency observations yet is assumed to meet the bar. The quality checked
    is the one ``hedge eval --apply`` measured (the lower bound of its interval), if there is
    one, else the configured ``quality``.
    """

    def __init__(self, deployments: Sequence[Deployment], config: ModelConfig | None = None) -> None:
        self._deps = list(deployments)
        self._max_latency = config.max_latency_ms if config else None
        self._min_quality = config.min_quality if config else None

    def _qualifies(self, dep: Deployment) -> bool:
        quality = dep.effective_quality
        if self._min_quality is not None and (quality is None or quality < self._min_quality):
            return False
        if self._max_latency is not None:
            p95 = dep.stats.p95_latency_ms()
            if p95 is not None and p95 > self._max_latency:
                return False
        return True

    def order(self, ctx: RouteContext) -> list[Deployment]:
        ranked = sorted(
            enumerate(self._deps),
            key=lambda p: (not self._qualifies(p[1]), expected_cost(p[1], ctx), -p[1].weight, p[0]),
        )
        return [d for _, d in ranked]

    def peek(self, ctx: RouteContext) -> list[Deployment]:
        return self.order(ctx)


class LeastLatency:
    """Lowest observed latency (EWMA; time to first token for streams). Unmeasured ones go first, to learn."""

    def __init__(self, deployments: Sequence[Deployment], config: ModelConfig | None = None) -> None:
        self._deps = list(deployments)

    def order(self, ctx: RouteContext) -> list[Deployment]:
        def key(p: tuple[int, Deployment]) -> tuple[float, float, int]:
            s = p[1].stats
            value = (s.ewma_ttft_ms if ctx.stream else None) or s.ewma_latency_ms or 0.0
            return (value, -p[1].weight, p[0])

        return [d for _, d in sorted(enumerate(self._deps), key=key)]

    def peek(self, ctx: RouteContext) -> list[Deployment]:
        return self.order(ctx)


class LeastBusy:
    """Fewest requests in flight from this process."""

    def __init__(self, deployments: Sequence[Deployment], config: ModelConfig | None = None) -> None:
        self._deps = list(deployments)

    def order(self, ctx: RouteContext) -> list[Deployment]:
        ranked = sorted(enumerate(self._deps), key=lambda p: (p[1].stats.in_flight, -p[1].weight, p[0]))
        return [d for _, d in ranked]

    def peek(self, ctx: RouteContext) -> list[Deployment]:
        return self.order(ctx)


STRATEGIES: dict[str, type[Ordered | Weighted | Cheapest | LeastLatency | LeastBusy]] = {
    "ordered": Ordered,
    "weighted": Weighted,
    "cheapest": Cheapest,
    "least-latency": LeastLatency,
    "least-busy": LeastBusy,
}
