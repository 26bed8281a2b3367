"""Breaker state shared through Redis, so replicas agree on which deployments are down.

Each replica publishes its breakers' transitions into one Redis hash (field =
deployment id, value = a wall-clock snapshot) and polls the hash every
``interval_s``; a snapshot newer than the local state is adopted. Polling (rather
than pub/sub) keeps it to two commands and survives Redis restarts: the worst case
is that a replica learns of another's verdict ``interval_s`` late.

The hash expires: every write refreshes its TTL (the longest a snapshot can still
matter, ``max(breaker.cooldown_s, max_cooldown_s)``, plus a margin), so state
nobody updates any more does not outlive its meaning, and a bogus cool-down
written by an older version cannot be inherited forever by every replica and
restart. (Redis 7.4's per-field HEXPIRE would let each field expire on its own;
expiring the whole hash works on any Redis, and adopting clamps each snapshot
anyway, see :meth:`Breaker.adopt`.)
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

import orjson

from hedge.resilience.breaker import FUTURE_SLACK_S, Breaker
from hedge.resilience.failover import Failover
from hedge.store.redis import connect_redis
from hedge.tasks import stop

log = logging.getLogger("hedge.breaker")

# ARGV: field, snapshot, its changed_at, the TTL of the hash, the latest changed_at to believe.
_SET_IF_NEWER = """
redis.call('EXPIRE', KEYS[1], ARGV[4])
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local ok, old = pcall(cjson.decode, current)
  local stamp = ok and tonumber(old['changed_at'])
  if stamp and stamp >= tonumber(ARGV[3]) and stamp <= tonumber(ARGV[5]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

TTL_MARGIN_S = 60


class SharedBreakers:
    def __init__(self, redis_url: str, prefix: str, failover: Failover, interval_s: float = 0.5) -> None:
        self._redis: Any = connect_redis(redis_url)
        self._key = prefix + "breakers"
        self._failover = failover
        self._interval = interval_s
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._write_lock = asyncio.Lock()
        self._newer = self._redis.register_script(_SET_IF_NEWER)
        config = failover.config
        self.ttl_s = math.ceil(max(config.breaker.cooldown_s, config.max_cooldown_s)) + TTL_MARGIN_S
        failover.on_new_breaker = self._attach
        for breaker in failover.breakers.values():
            self._attach(breaker)

    def _attach(self, breaker: Breaker) -> None:
        breaker.on_change = self._publish

    def _publish(self, breaker: Breaker) -> None:
        task = asyncio.ensure_future(self._write(breaker.name, breaker.snapshot()))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, name: str, snapshot: dict[str, Any]) -> None:
        # In order (the lock is FIFO), and never over a newer snapshot from any replica.
        async with self._write_lock:
            try:
                latest = time.time() + FUTURE_SLACK_S  # a stamp past this is bogus: overwrite it
                args = [name, orjson.dumps(snapshot), snapshot["changed_at"], self.ttl_s, latest]
                await self._newer(keys=[self._key], args=args)
            except Exception:
                log.exception("could not share breaker state of %s", name)

    async def sync(self) -> None:
        """Adopt every newer snapshot from the other replicas."""
        remote = await self._redis.hgetall(self._key)
        for raw_name, raw in remote.items():
            name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
            try:
                snapshot = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # one unreadable field must not hide the others
            if isinstance(snapshot, dict):
                self._failover.breaker_by_id(name).adopt(snapshot)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:  # a hash left without a TTL (by an older version) gets one now, not at the next transition
            if await self._redis.ttl(self._key) == -1:
                await self._redis.expire(self._key, self.ttl_s)
        except Exception:
            log.exception("could not set the TTL of the shared breaker state")
        while True:
            try:
                await self.sync()
            except Exception:
                log.exception("could not read shared breaker state")
            await asyncio.sleep(self._interval)

    async def close(self) -> None:
        await stop(self._task)
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self._redis.aclose()
