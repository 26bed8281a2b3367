"""The response cache's policy on the request path: whether a request may be cached, for how long,
who may share its answer, and what a cache that fails means (a miss, never a failed request)."""

from __future__ import annotations

import logging
from typing import Any

from hedge.store.cache import ResponseCache

log = logging.getLogger("hedge")

DEFAULT_CACHE_TTL_S = 300.0


def cache_scope(scope: str, key_id: str | None, team: str | None) -> str:
    """Who may share this request's cached answer: one key (the master key is one too), one team, or all."""
    if scope == "global":
        return "global"
    if scope == "team" and team:
        return f"team:{team}"
    return f"key:{key_id or 'master'}"


def cache_ttl(alias_ttl: float | None, options: dict[str, Any], stream: bool) -> float | None:
    """The alias's cache TTL, or the request's own choice (``hedge.cache``: true, false or seconds)."""
    if stream:
        return None
    choice = options.get("cache")
    if choice is False:
        return None
    if choice is True:
        return alias_ttl or DEFAULT_CACHE_TTL_S
    if isinstance(choice, int | float) and not isinstance(choice, bool) and choice > 0:
        return float(choice)
    return alias_ttl


async def cache_get(cache: ResponseCache, key: str) -> dict[str, Any] | None:
    """A cache that cannot be read is a miss, never a failed request."""
    try:
        return await cache.get(key)
    except Exception:
        log.warning("response cache read failed; serving without it", exc_info=True)
        return None


async def cache_put(cache: ResponseCache, key: str, entry: dict[str, Any], ttl: float) -> None:
    try:
        await cache.put(key, entry, ttl)
    except Exception:
        log.warning("response cache write failed; the answer is served uncached", exc_info=True)
