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

from hedge.store.redis import connect_redis

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

    async def spend_raise(self, name: str, value: float, ttl_s: int | None) -> bool:
        """Raise the counter to ``value`` if it is lower (or missing); True if it was raised."""
        ...

    async def reserve(
        self, name: str, holder: str, amount: float, limit: float, hold_s: float, ttl_s: int | None
    ) -> tuple[bool | None, float]:
        """Atomically: if spend plus the live reservations is under ``limit``, reserve ``amount`` for
        ``holder`` (until it is settled or ``hold_s`` passes). Returns (reserved?, spend + reserved),
        or (None, 0) if the spend counter does not exist yet (initialise it, then ask again)."""
        ...

    async def settle(self, name: str, holder: str, amount: float, ttl_s: int | None) -> None:
        """Atomically drop ``holder``'s reservation and add what it really spent."""
        ...

    async def once(self, name: str, ttl_s: float) -> bool:
        """True for the first caller (on any replica) to claim ``name`` until ``ttl_s`` passes: what
        keeps a budget alert to one per threshold and period, and a health probe to one per interval."""
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
        self._reserved: dict[str, dict[str, tuple[float, float]]] = {}
        """Per spend counter: holder -> (amount, held until)."""
        self._claims: dict[str, float] = {}
        """:meth:`once` claims: name -> claimed until."""

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

    async def spend_raise(self, name: str, value: float, ttl_s: int | None) -> bool:
        if self._spend.get(name, -1.0) < value:
            self._spend[name] = value
            return True
        return False

    async def reserve(
        self, name: str, holder: str, amount: float, limit: float, hold_s: float, ttl_s: int | None
    ) -> tuple[bool | None, float]:
        if name not in self._spend:
            return None, 0.0
        now = self._clock()
        held = self._reserved.setdefault(name, {})
        for stale in [h for h, (_, until) in held.items() if until < now]:
            del held[stale]
        committed = self._spend.get(name, 0.0) + sum(a for a, _ in held.values())
        if committed >= limit:
            return False, committed
        held[holder] = (amount, now + hold_s)
        return True, committed

    async def settle(self, name: str, holder: str, amount: float, ttl_s: int | None) -> None:
        held = self._reserved.get(name)
        if held is not None:
            held.pop(holder, None)
            if not held:
                del self._reserved[name]
        if amount:
            self._spend[name] = self._spend.get(name, 0.0) + amount

    async def once(self, name: str, ttl_s: float) -> bool:
        now = self._clock()
        if self._claims.get(name, 0.0) > now:
            return False
        if len(self._claims) > 10_000:
            self._claims = {k: until for k, until in self._claims.items() if until > now}
        self._claims[name] = now + ttl_s
        return True

    async def close(self) -> None:
        return None


_ADD = """
local v = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if tonumber(redis.call('TTL', KEYS[1])) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return v
"""


_RESERVE = """
local current = redis.call('GET', KEYS[1])
if not current then return {-1, '0'} end
local spent = tonumber(current)
local now = tonumber(ARGV[4])
local reserved = 0
local held = redis.call('HGETALL', KEYS[2])
for i = 1, #held, 2 do
  local value = held[i + 1]
  local sep = string.find(value, '|', 1, true)
  if sep == nil or tonumber(string.sub(value, sep + 1)) < now then
    redis.call('HDEL', KEYS[2], held[i])
  else
    reserved = reserved + tonumber(string.sub(value, 1, sep - 1))
  end
end
if spent + reserved >= tonumber(ARGV[1]) then
  return {0, tostring(spent + reserved)}
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[2] .. '|' .. ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return {1, tostring(spent + reserved)}
"""

_SETTLE = """
redis.call('HDEL', KEYS[2], ARGV[1])
if tonumber(ARGV[2]) ~= 0 then
  redis.call('INCRBYFLOAT', KEYS[1], ARGV[2])
  if tonumber(redis.call('TTL', KEYS[1])) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
end
return 1
"""

_RAISE = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""

_FOREVER = 10 * 365 * 86400


class RedisCounters:
    """Counters shared by every replica; each operation is one atomic command or Lua call.

    A spend counter ``s:NAME`` has a hash ``r:NAME`` of live reservations beside it
    (holder -> ``amount|held-until``), so admission can check spend plus everything in
    flight on every replica in one step, and a replica that dies mid-request stops
    holding budget once its reservations' hold passes.
    """

    def __init__(self, url: str, prefix: str = "hedge:", clock: Clock = time.time) -> None:
        self._redis: Any = connect_redis(url)
        self._prefix = prefix
        self._clock = clock
        self._add = self._redis.register_script(_ADD)
        self._reserve = self._redis.register_script(_RESERVE)
        self._settle = self._redis.register_script(_SETTLE)
        self._raise = self._redis.register_script(_RAISE)

    def _window_key(self, name: str, window_s: int) -> str:
        return f"{self._prefix}w:{name}:{window_start(self._clock(), window_s)}"

    async def add(self, name: str, amount: float, window_s: int) -> float:
        value = await self._add(keys=[self._window_key(name, window_s)], args=[amount, window_s * 2])
        return float(value)

    async def get(self, name: str, window_s: int) -> float:
        value = await self._redis.get(self._window_key(name, window_s))
        return float(value) if value is not None else 0.0

    async def spend_add(self, name: str, amount: float, ttl_s: int | None) -> float:
        value = await self._add(keys=[f"{self._prefix}s:{name}"], args=[amount, ttl_s or _FOREVER])
        return float(value)

    async def spend_raise(self, name: str, value: float, ttl_s: int | None) -> bool:
        raised = await self._raise(keys=[f"{self._prefix}s:{name}"], args=[repr(value), ttl_s or _FOREVER])
        return bool(raised)

    async def reserve(
        self, name: str, holder: str, amount: float, limit: float, hold_s: float, ttl_s: int | None
    ) -> tuple[bool | None, float]:
        now = self._clock()
        ok, committed = await self._reserve(
            keys=[f"{self._prefix}s:{name}", f"{self._prefix}r:{name}"],
            args=[repr(limit), repr(amount), holder, repr(now), repr(now + hold_s), int(hold_s) + 60],
        )
        return (None if int(ok) < 0 else bool(ok)), float(committed)

    async def settle(self, name: str, holder: str, amount: float, ttl_s: int | None) -> None:
        await self._settle(
            keys=[f"{self._prefix}s:{name}", f"{self._prefix}r:{name}"],
            args=[holder, repr(amount), ttl_s or _FOREVER],
        )

    async def once(self, name: str, ttl_s: float) -> bool:
        claimed = await self._redis.set(
            f"{self._prefix}once:{name}", "1", nx=True, px=max(1, int(ttl_s * 1000))
        )
        return bool(claimed)

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
