"""Exact-match response cache for non-streaming requests: in process memory, or in Redis.

The key is a hash of the scope, the alias and the normalized request (keys sorted;
the gateway's own ``hedge`` options removed), so only identical requests hit. A hit is served at zero
cost and flagged ``x-hedge-cache: hit``. Entries are scoped (``models.ALIAS.cache_scope``): by
default each virtual key has its own, so one key never receives an answer cached for another.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any, Protocol

import orjson

from hedge.store.redis import connect_redis

_SKIP = ("stream", "stream_options")


def cache_key(alias: str, endpoint: str, body: dict[str, Any], scope: str = "global") -> str:
    """Every option that can change the answer is part of the key, the gateway's own routing and
    parameter-policy options included (only the caching choice itself is not), and so is the
    ``scope`` of who may share it (``key:ID`` by default: one key never gets another's answer)."""
    normal = {k: v for k, v in body.items() if k not in _SKIP}
    options = normal.get("hedge")
    if isinstance(options, dict):
        kept = {k: v for k, v in options.items() if k != "cache"}
        if kept:
            normal["hedge"] = kept
        else:
            del normal["hedge"]
    digest = hashlib.sha256(
        orjson.dumps([scope, alias, endpoint, normal], option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    return digest


class ResponseCache(Protocol):
    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def put(self, key: str, entry: dict[str, Any], ttl_s: float) -> None: ...


class MemoryCache:
    """A bounded LRU with per-entry expiry."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._data: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._max = max_entries

    async def get(self, key: str) -> dict[str, Any] | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, entry = item
        if expires < time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry

    async def put(self, key: str, entry: dict[str, Any], ttl_s: float) -> None:
        self._data[key] = (time.monotonic() + ttl_s, entry)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)


class RedisCache:
    def __init__(self, url: str, prefix: str) -> None:
        self._redis: Any = connect_redis(url)
        self._prefix = prefix + "cache:"

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._prefix + key)
        if raw is None:
            return None
        entry: dict[str, Any] = orjson.loads(raw)
        return entry

    async def put(self, key: str, entry: dict[str, Any], ttl_s: float) -> None:
        await self._redis.set(self._prefix + key, orjson.dumps(entry), px=max(1, int(ttl_s * 1000)))

    async def close(self) -> None:
        await self._redis.aclose()
