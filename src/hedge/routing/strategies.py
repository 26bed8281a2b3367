"""Strategies order an alias's deployments: the first is tried first, the rest are fallbacks.

Each strategy is a small class with one method, ``order``; adding a strategy is
adding a class and a line in :data:`STRATEGIES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hedge.routing.deployment import Deployment


class Strategy(Protocol):
    def order(self) -> list[Deployment]: ...


class Ordered:
    """Priority list: always the configured order."""

    def __init__(self, deployments: Sequence[Deployment]) -> None:
        self._order = list(deployments)

    def order(self) -> list[Deployment]:
        return list(self._order)


class Weighted:
    """Smooth weighted round-robin (as in nginx): exact shares, evenly interleaved, no randomness.

    Over any window of ``sum(weights)`` requests each deployment gets exactly
    its weight, which makes a split auditable and A/B samples comparable. The
    remaining deployments follow in descending weight as fallbacks.
    """

    def __init__(self, deployments: Sequence[Deployment]) -> None:
        self._deps = [d for d in deployments if d.weight > 0] or list(deployments)
        self._weights = [d.weight if d.weight > 0 else 1.0 for d in self._deps]
        self._total = sum(self._weights)
        self._current = [0.0] * len(self._deps)
        self._fallback_order = sorted(range(len(self._deps)), key=lambda i: -self._weights[i])

    def order(self) -> list[Deployment]:
        best = 0
        current, weights = self._current, self._weights
        for i, w in enumerate(weights):
            current[i] += w
            if current[i] > current[best]:
                best = i
        current[best] -= self._total
        deps = self._deps
        return [deps[best], *(deps[i] for i in self._fallback_order if i != best)]


STRATEGIES: dict[str, type[Ordered] | type[Weighted]] = {"ordered": Ordered, "weighted": Weighted}
