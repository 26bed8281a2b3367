"""Session affinity: which deployment a sticky session is pinned to, in memory or in Redis.

A pin is a short value (a deployment id) under a hashed session name, with a TTL that each
request of the session renews. In Redis every replica reads and writes the same pins, so a
conversation stays on its deployment whichever replica a load balancer sends each turn to;
in memory the pins are this process's own (bounded, oldest dropped first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from hedge.store.redis import connect_redis

MAX_MEMORY_PINS = 100_000


class Affinity(Protocol):
    async def get(self, name: str) -> str | None:
        """The deployment id pinned under ``name``, if the pin is still live."""
        ...

    async def put(self, name: str, deployment: str, ttl_s: float) -> None:
        """Pin ``name`` to ``deployment`` for ``ttl_s`` more seconds."""
        ...

    async def close(self) -> None: ...


class MemoryAffinity:
    def __init__(self, clock: Callable[[], float] = time.monotonic, limit: int = MAX_MEMORY_PINS) -> None:
        self._clock = clock
        self._limit = limit
        self._pins: OrderedDict[str, tuple[str, float]] = OrderedDict()

    async def get(self, name: str) -> str | None:
        pin = self._pins.get(name)
        if pin is None:
            return None
        if pin[1] <= self._clock():
            del self._pins[name]
            return None
        return pin[0]

    async def put(self, name: str, deployment: str, ttl_s: float) -> None:
        self._pins[name] = (deployment, self._clock() + ttl_s)
        self._pins.move_to_end(name)
        while len(self._pins) > self._limit:
            self._pins.popitem(last=False)

    async def close(self) -> None:
        return None


class RedisAffinity:
    """Pins shared by every replica: ``GET`` and ``SET ... PX``, one round trip each."""

    def __init__(self, url: str, prefix: str = "hedge:") -> None:
        self._redis: Any = connect_redis(url)
        self._prefix = f"{prefix}pin:"

    async def get(self, name: str) -> str | None:
        value = await self._redis.get(self._prefix + name)
        return value.decode() if isinstance(value, bytes) else value

    async def put(self, name: str, deployment: str, ttl_s: float) -> None:
        await self._redis.set(self._prefix + name, deployment, px=max(1, int(ttl_s * 1000)))

    async def close(self) -> None:
        await self._redis.aclose()
