"""Active health checks: probe deployments that get no traffic, so their breakers know.

Breakers learn only from requests, so a deployment that nobody uses (a fallback, an off-peak
provider) can be dead for hours and fail the first request that needs it; and an open breaker is
tested by a real request once its cool-down passes. With ``providers.X.health_check``, each of
X's deployments that has had no traffic in this process for ``interval_s`` is sent a one-token
chat request; the answer is judged as a request's would be (a strike for a 5xx or a timeout, a
pause for a 429, misconfigured for a 401/403, success closes a half-open breaker), and a breaker
that is open and still cooling down is left alone. A lease (Redis, else the database) keeps it to
one probe per deployment per interval across all replicas; with shared breakers (Redis) every
replica then learns the verdict.

:meth:`Prober.tick` does one round and is what the tests drive, with an injected clock; the
server runs it in a loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hedge.config import HealthCheckConfig
from hedge.errors import UpstreamError
from hedge.resilience.failover import Failover, judge
from hedge.routing.deployment import Deployment
from hedge.store.leases import Leases
from hedge.tasks import stop
from hedge.transport import Transport

log = logging.getLogger("hedge.health")

PROBE_BODY: dict[str, Any] = {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}


@dataclass(slots=True)
class Probe:
    """The last probe this replica sent a deployment."""

    at: float
    """Wall-clock time it was sent."""
    ok: bool
    latency_ms: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "ok": self.ok, "latency_ms": round(self.latency_ms, 3), "error": self.error}


class Prober:
    def __init__(
        self,
        deployments: list[Deployment],
        checks: Mapping[str, HealthCheckConfig],
        transport: Transport,
        failover: Failover,
        leases: Leases,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        on_probe: Callable[[Deployment, Probe], None] | None = None,
    ) -> None:
        """``checks`` is each provider's health check (providers without one are never probed)."""
        seen: dict[str, Deployment] = {}
        for dep in deployments:
            if dep.provider in checks:
                seen.setdefault(dep.id, dep)
        self.deployments = list(seen.values())
        self.checks = dict(checks)
        self._transport = transport
        self._failover = failover
        self._leases = leases
        self._clock = clock
        self._wall = wall
        self._on_probe = on_probe
        self.last: dict[str, Probe] = {}
        self._due: dict[str, float] = {}
        """Deployment id -> monotonic time before which this replica does not try it again."""
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.deployments)

    def _idle(self, dep: Deployment, now: float, interval: float) -> bool:
        stats = dep.stats
        if stats.in_flight:
            return False
        return stats.last_active is None or now - stats.last_active >= interval

    async def tick(self) -> list[str]:
        """Probe every deployment that is due: idle, not tried this interval, lease taken. Returns
        the ids probed (concurrently; each within its ``timeout_s``)."""
        now = self._clock()
        due: list[Deployment] = []
        for dep in self.deployments:
            check = self.checks[dep.provider]
            if now < self._due.get(dep.id, 0.0) or not self._idle(dep, now, check.interval_s):
                continue
            self._due[dep.id] = now + check.interval_s
            try:
                if not await self._leases.acquire(f"probe:{dep.id}", check.interval_s):
                    continue  # another replica probes it this interval
            except Exception as exc:
                log.warning("cannot take the health-probe lease of %s: %s", dep.id, exc)
                continue
            due.append(dep)
        await asyncio.gather(*(self._probe(dep) for dep in due))
        return [dep.id for dep in due]

    async def _probe(self, dep: Deployment) -> None:
        check = self.checks[dep.provider]
        breaker = self._failover.breaker(dep)
        if breaker.blocked_reason() is not None:
            return  # open and cooling down (or its trial is out): the breaker's own timing stands
        adapter = dep.adapter
        began = time.perf_counter()
        sent_at = self._wall()
        error: str | None = None
        try:
            upstream = adapter.chat_request(dict(PROBE_BODY), check.model or dep.model, False, False)
            async with asyncio.timeout(check.timeout_s):
                reply = await self._transport.send(dep.provider, upstream, dep.timeouts, adapter.error)
                adapter.chat_response(await reply.read(), upstream)
        except UpstreamError as exc:
            error = str(exc.code or exc.upstream_status or exc.status)
            if exc.retryable:
                judge(breaker, exc)
            else:  # the probe itself was refused (a 400): as for a request, no verdict on the deployment
                breaker.release()
        except TimeoutError:
            error = "upstream_timeout"
            breaker.failure()
        except asyncio.CancelledError:
            breaker.release()
            raise
        except Exception as exc:  # an answer that does not translate: a failure of health
            error = type(exc).__name__
            breaker.failure()
        else:
            breaker.success()
        probe = Probe(sent_at, error is None, (time.perf_counter() - began) * 1000, error)
        self.last[dep.id] = probe
        if error is not None:
            log.warning("health probe of %s failed: %s", dep.id, error)
        if self._on_probe is not None:
            self._on_probe(dep, probe)

    def start(self) -> None:
        if self._task is None and self.enabled:
            self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        step = max(0.5, min(c.interval_s for c in self.checks.values()) / 4)
        while True:
            await asyncio.sleep(step)
            try:
                await self.tick()
            except Exception:
                log.warning("health probe round failed", exc_info=True)

    async def close(self) -> None:
        await stop(self._task)
        self._task = None
