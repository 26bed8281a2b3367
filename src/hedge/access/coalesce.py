"""Coalescing: concurrent callers asking for the same thing share one lookup.

A burst of one key's first requests all miss the key cache and the spend counter at
once; without this each sends its own database query and a small pool starves. The
shared task is shielded, so a caller that is cancelled (its client left) does not
cancel the lookup the others are waiting for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Future[T]] = {}

    async def run(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        """``load()``'s result, started by the first caller for ``key`` and shared by every caller
        that arrives while it runs."""
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(load())
            pending.add_done_callback(lambda _f: self._pending.pop(key, None))
        return await asyncio.shield(pending)
