"""Gemini thought signatures and Claude's thinking blocks shared by every replica, in Redis
(``state.redis_url``).

The in-process memory (:mod:`hedge.providers.signatures`) finds a signature only on the replica
whose answer issued it; behind a load balancer the next turn may land elsewhere, and a client that
dropped ``extra_content`` would then send Gemini the "skip validation" sentinel. This second level
publishes every signature an answer issues (``SET`` with the memory's TTL: a whole answer before it
is returned, a stream's as its calls arrive) and, before a request is routed, fetches the ones its
tool calls lack (one ``MGET``, only for ids the local memory does not have) into the local memory,
where the Gemini adapter finds them. Redis trouble never fails a request: the sentinel is the
fallback, and a warning is logged once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from hedge.providers.signatures import SIGNATURES, THINKING, Signatures
from hedge.store.redis import connect_redis
from hedge.tasks import stop

log = logging.getLogger("hedge")

FETCH_TIMEOUT_S = 0.5
"""The most a request waits for Redis before it is routed without the other replicas' signatures."""


def unsigned_call_ids(body: dict[str, Any], memory: Signatures) -> list[str]:
    """Ids of the assistant tool calls in ``body`` that carry no signature and are not in ``memory``."""
    ids: list[str] = []
    for message in body.get("messages") or ():
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or ():
            if not isinstance(call, dict) or "extra_content" in call:
                continue
            call_id = call.get("id")
            if isinstance(call_id, str) and call_id and memory.recall(call_id) is None:
                ids.append(call_id)
    return ids


def unthought_turn_ids(body: dict[str, Any], memory: Signatures) -> list[str]:
    """First tool call ids of the assistant turns in ``body`` that come without ``reasoning_details``
    and whose thinking blocks are not in ``memory`` (the key Claude's blocks are kept under)."""
    ids: list[str] = []
    for message in body.get("messages") or ():
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        calls = message.get("tool_calls")
        if message.get("reasoning_details") or not isinstance(calls, list) or not calls:
            continue
        first = calls[0].get("id") if isinstance(calls[0], dict) else None
        if isinstance(first, str) and first and memory.recall(first) is None:
            ids.append(first)
    return ids


Missing = Callable[[dict[str, Any], Signatures], list[str]]
"""The ids a request's conversation needs from a memory and does not find there."""


class SharedSignatures:
    def __init__(
        self,
        url: str,
        prefix: str,
        memory: Signatures = SIGNATURES,
        *,
        kind: str = "sig",
        missing: Missing = unsigned_call_ids,
    ) -> None:
        self._redis = connect_redis(url)
        self._prefix = f"{prefix}{kind}:"
        self._memory = memory
        self._missing = missing
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._warned = False

    def start(self) -> None:
        self._memory.publish(self._wake.set)
        self._task = asyncio.create_task(self._publisher())

    async def fetch(self, body: dict[str, Any]) -> None:
        """Put the signatures other replicas issued for ``body``'s tool calls into the local memory."""
        ids = self._missing(body, self._memory)
        if not ids:
            return
        try:
            async with asyncio.timeout(FETCH_TIMEOUT_S):
                values = await self._redis.mget([self._prefix + i for i in ids])
        except Exception as exc:
            self._warn(exc)
            return
        for call_id, value in zip(ids, values, strict=True):
            if value is not None:
                self._memory.remember(call_id, value.decode() if isinstance(value, bytes) else str(value))

    async def flush(self) -> None:
        """Publish what the local memory learnt since the last flush."""
        fresh = self._memory.fresh()
        if not fresh:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for call_id, signature in fresh:
                    pipe.set(self._prefix + call_id, signature, ex=int(self._memory.ttl_s))
                await pipe.execute()
        except Exception as exc:
            self._warn(exc)

    async def close(self) -> None:
        await stop(self._task)
        await self.flush()
        self._memory.publish(None)
        await self._redis.aclose()

    async def _publisher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "thought signatures cannot be shared through Redis (%s): replicas fall back to "
                "their own memory",
                type(exc).__name__,
            )


def shared_memories(url: str, prefix: str, styles: set[str]) -> list[SharedSignatures]:
    """The memories replicas must share for the wire formats in use: Gemini's thought signatures,
    Claude's thinking blocks."""
    out: list[SharedSignatures] = []
    if "gemini" in styles:
        out.append(SharedSignatures(url, prefix))
    if "anthropic" in styles:
        out.append(SharedSignatures(url, prefix, THINKING, kind="think", missing=unthought_turn_ids))
    return out
