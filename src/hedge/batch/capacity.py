"""Batch lines take at most their share of a deployment, and never what interactive traffic uses.

``batch.max_share`` (per provider: ``batch.providers.X.max_share``) of each deployment's rpm, tpm
and connections (the provider's ``max_connections``) may go to batch lines, and
``batch.max_concurrency`` lines run at once per replica (per provider too, if set). Within its
share a line is only sent where the deployment has room left over from interactive traffic:
the deployment's request and token counts this minute (the ones its quota keeps, interactive and
batch together) and its requests in flight must be below the limit. So interactive traffic is
always left ``1 - max_share`` of every limit, and batch yields the rest whenever interactive
traffic takes it. Minute counts are shared by every replica through the counters (Redis when
configured); lines in flight are counted per replica.
"""

from __future__ import annotations

import math
from collections import Counter

from hedge.access.quotas import MINUTE, Quotas
from hedge.config import Config
from hedge.record import RequestRecord
from hedge.routing.deployment import Deployment
from hedge.store.counters import Counters


class Capacity:
    def __init__(self, config: Config, counters: Counters, quotas: Quotas) -> None:
        self.config = config
        self.counters = counters
        self.quotas = quotas
        self.in_flight: Counter[str] = Counter()
        """Batch lines in flight on this replica, by the deployment each was sent to first."""
        self.by_provider: Counter[str] = Counter()

    def share(self, provider: str) -> float:
        limits = self.config.batch.providers.get(provider)
        if limits is not None and limits.max_share is not None:
            return limits.max_share
        return self.config.batch.max_share

    @property
    def total(self) -> int:
        return sum(self.in_flight.values())

    def free_slots(self) -> int:
        """Lines this replica may start now, by ``batch.max_concurrency``."""
        return max(0, self.config.batch.max_concurrency - self.total)

    async def room(self, dep: Deployment) -> bool:
        """Whether one more batch line may be sent to ``dep`` now."""
        share = self.share(dep.provider)
        limits = self.config.batch.providers.get(dep.provider)
        if (
            limits is not None
            and limits.max_concurrency is not None
            and self.by_provider[dep.provider] >= limits.max_concurrency
        ):
            return False
        connections = self.config.providers[dep.provider].max_connections
        mine = self.in_flight[dep.id]
        if mine >= max(1, math.floor(share * connections)) or dep.stats.in_flight >= connections:
            return False
        rpm, tpm = self.quotas.limits.get(dep.id, (None, None))
        if rpm is not None:
            batch = await self.counters.get(f"batch-rpm:{dep.id}", MINUTE)
            every = await self.counters.get(f"dep-rpm:{dep.id}", MINUTE)
            if batch >= share * rpm or every >= rpm:
                return False
        if tpm is not None:
            batch = await self.counters.get(f"batch-tpm:{dep.id}", MINUTE)
            every = await self.counters.get(f"dep-tpm:{dep.id}", MINUTE)
            if batch >= share * tpm or every >= tpm:
                return False
        return True

    async def started(self, dep: Deployment) -> None:
        self.in_flight[dep.id] += 1
        self.by_provider[dep.provider] += 1
        if dep.id in self.quotas.limits and self.quotas.limits[dep.id][0] is not None:
            await self.counters.add(f"batch-rpm:{dep.id}", 1, MINUTE)

    async def ended(self, dep: Deployment, rec: RequestRecord) -> None:
        self.in_flight[dep.id] -= 1
        self.by_provider[dep.provider] -= 1
        tokens = rec.prompt_tokens + rec.completion_tokens
        served = rec.deployment
        if served is not None and tokens and self.quotas.limits.get(served, (None, None))[1] is not None:
            await self.counters.add(f"batch-tpm:{served}", tokens, MINUTE)
