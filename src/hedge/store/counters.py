"""Counters for rate limits and budgets: in process memory, or in Redis for several replicas.

Windows are fixed and aligned (a minute is ``floor(now / 60)``), which makes
the Redis version a single atomic ``INCRBY`` + ``EXPIRE`` (one Lua call) and
lets every replica agree on window boundaries. Spend counters use
``INCRBYFLOAT``; a missing counter is initialised once from the ledger with
``SET NX``, so replicas never overwrite each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

Clock = Callable[[], float]


class Counters(Protocol):
    async def add(self, name: str, amount: float, window_s: int) -> float:
        """Add to the current window of ``name`` and return the window's new total."""
        ...

    async def get(self, name: str, window_s: int) -> float: ...

    async def spend_add(self, name: str, amount: float, ttl_s: int | None) -> float: ...

    async def spend_get(self, name: str) -> float | None: ...

    async def spend_init(self, name: str, value: float, ttl_s: int | None) -> float:
        """Set the counter if it does not exist yet; return its value either way."""
        ...

    async def close(self) -> None: ...


def window_start(now: float, window_s: int) -> int:
    return int(now // window_s) * window_s


class MemoryCounters:
    """One process's counters; windows older than the current one are pruned as they pass."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, int], float] = {}
        self._spend: dict[str, float] = {}

    async def add(self, name: str, amount: float, window_s: int) -> float:
        now = self._clock()
        key = (name, window_start(now, window_s))
        value = self._windows.get(key, 0.0) + amount
        self._windows[key] = value
        if len(self._windows) > 10_000:
            self._prune(now)
        return value

    async def get(self, name: str, window_s: int) -> float:
        return self._windows.get((name, window_start(self._clock(), window_s)), 0.0)

    def _prune(self, now: float) -> None:
        self._windows = {k: v for k, v in self._windows.items() if k[1] >= now - 3600}

    async def spend_add(self, name: str, amount: float, ttl_s: int | None) -> float:
        value = self._spend.get(name, 0.0) + amount
        self._spend[name] = value
        return value

    async def spend_get(self, name: str) -> float | None:
        return self._spend.get(name)

    async def spend_init(self, name: str, value: float, ttl_s: int | None) -> float:
        return self._spend.setdefault(name, value)

    async def close(self) -> None:
        return None


_ADD = """
local v = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if tonumber(redis.call('TTL', KEYS[1])) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return v
"""


class RedisCounters:
    def __init__(self, url: str, prefix: str = "hedge:", clock: Clock = time.time) -> None:
        import redis.asyncio as redis

        self._redis: Any = redis.from_url(url)
        self._prefix = prefix
        self._clock = clock
        self._add = self._redis.register_script(_ADD)

    def _window_key(self, name: str, window_s: int) -> str:
        return f"{self._prefix}w:{name}:{window_start(self._clock(), window_s)}"

    async def add(self, name: str, amount: float, window_s: int) -> float:
        value = await self._add(keys=[self._window_key(name, window_s)], args=[amount, window_s * 2])
        return float(value)

    async def get(self, name: str, window_s: int) -> float:
        value = await self._redis.get(self._window_key(name, window_s))
        return float(value) if value is not None else 0.0

    async def spend_add(self, name: str, amount: float, ttl_s: int | None) -> float:
        value = await self._add(keys=[f"{self._prefix}s:{name}"], args=[amount, ttl_s or 10 * 365 * 86400])
        return float(value)

    async def spend_get(self, name: str) -> float | None:
        value = await self._redis.get(f"{self._prefix}s:{name}")
        return float(value) if value is not None else None

    async def spend_init(self, name: str, value: float, ttl_s: int | None) -> float:
        key = f"{self._prefix}s:{name}"
        await self._redis.set(key, repr(value), nx=True, ex=ttl_s or None)
        current = await self._redis.get(key)
        return float(current) if current is not None else value

    async def close(self) -> None:
        await self._redis.aclose()
