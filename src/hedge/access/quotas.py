"""Deployment quotas: the requests and tokens per minute an upstream account allows.

A deployment that declares ``rpm``/``tpm`` is refused (429, retryable, no blame) once the
minute's count passes it, so failover moves on to another deployment before the provider
starts answering 429s of its own. The counts live in :mod:`hedge.store.counters`, shared by
every replica when Redis is configured.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hedge.config import Config
from hedge.errors import UpstreamError
from hedge.record import RequestRecord
from hedge.store.counters import Counters

MINUTE = 60


class Quotas:
    def __init__(self, config: Config, counters: Counters) -> None:
        self.counters = counters
        self.limits: dict[str, tuple[int | None, int | None]] = {}
        """Upstream quotas (rpm, tpm) per deployment id, for those that declare any."""
        for model in config.models.values():
            for d in model.deployments:
                if d.rpm or d.tpm:
                    self.limits[f"{d.provider}/{d.model}"] = (d.rpm, d.tpm)
        self._pending: set[asyncio.Task[Any]] = set()

    async def reserve(self, deployment: str) -> None:
        """Count a request against the deployment's upstream quota; refuse (retryable, no blame) past it."""
        quota = self.limits.get(deployment)
        if quota is None:
            return
        rpm, tpm = quota
        if rpm is not None and await self.counters.add(f"dep-rpm:{deployment}", 1, MINUTE) > rpm:
            raise _saturated(deployment, f"{rpm} requests per minute")
        if tpm is not None and await self.counters.get(f"dep-tpm:{deployment}", MINUTE) >= tpm:
            raise _saturated(deployment, f"{tpm} tokens per minute")

    def book(self, rec: RequestRecord) -> None:
        """Count a finished request's tokens against its deployment's tpm quota (off the request path)."""
        if not self.limits or rec.provider is None:
            return
        deployment = f"{rec.provider}/{rec.model}"
        quota = self.limits.get(deployment)
        tokens = rec.prompt_tokens + rec.completion_tokens
        if quota is None or quota[1] is None or not tokens:
            return
        task = asyncio.ensure_future(self.counters.add(f"dep-tpm:{deployment}", tokens, MINUTE))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


def _saturated(deployment: str, what: str) -> UpstreamError:
    return UpstreamError(
        f"deployment {deployment} is at its upstream quota of {what}",
        status=429,
        type="rate_limit_error",
        code="deployment_saturated",
        retryable=True,
        blame=False,
    )
