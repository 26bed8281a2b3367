"""Buffered batch writes: how request-path sinks reach the database without waiting for it.

``add`` only appends to an in-memory buffer; a background task writes the
buffer every ``flush_interval_s`` (sooner once ``flush_batch`` items wait);
``close`` writes what remains. A failed write keeps the items for the next
try; a full buffer drops new items with an error line rather than grow
without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from hedge.store.db import Database

T = TypeVar("T")


class BatchWriter(Generic[T]):
    def __init__(
        self,
        db: Database,
        insert_sql: str,
        to_row: Callable[[T], Sequence[Any]],
        *,
        what: str,
        flush_interval_s: float = 1.0,
        flush_batch: int = 500,
        max_buffer: int = 1_000_000,
        write_chunk: int = 5000,
    ) -> None:
        self.db = db
        self.flush_interval_s = flush_interval_s
        self.flush_batch = flush_batch
        self.max_buffer = max_buffer
        self.dropped = 0
        self._insert = insert_sql
        self._to_row = to_row
        self._what = what
        self._chunk = write_chunk
        self._buffer: deque[T] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._log = logging.getLogger(f"hedge.{what}")

    def add(self, item: T) -> None:
        if len(self._buffer) >= self.max_buffer:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                self._log.error("%s buffer full (%d): %d dropped", self._what, self.max_buffer, self.dropped)
            return
        self._buffer.append(item)
        if len(self._buffer) >= self.flush_batch:
            self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                self._log.exception(
                    "%s flush failed; %d kept for the next try", self._what, len(self._buffer)
                )

    async def flush(self) -> int:
        """Write everything buffered now; returns how many items were written."""
        async with self._lock:
            written = 0
            while self._buffer:
                batch = [self._buffer[i] for i in range(min(len(self._buffer), self._chunk))]
                await self.db.executemany(self._insert, [self._to_row(item) for item in batch])
                for _ in batch:
                    self._buffer.popleft()
                written += len(batch)
            return written

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
