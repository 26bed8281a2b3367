"""The body log: request and response bodies for the dashboard, only with ``server.log_bodies``.

A record sink like the ledger: ``__call__`` only buffers, a background task
writes batches to ``hedge_bodies``. Each body is cut to ``limit`` bytes and
anything that looks like a credential (or is one of the gateway's configured
secrets) is masked; headers are never stored, so neither are the callers' keys.
A full buffer drops bodies (with one error line) rather than grow without bound:
bodies are a debugging aid, the ledger is the record.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
from collections import deque

from hedge.observe.logs import redact
from hedge.observe.records import RequestRecord
from hedge.store.db import Database

log = logging.getLogger("hedge.bodies")

BODY_LIMIT = 64 * 1024
TRUNCATED = "\n... [truncated by hedge at {limit} bytes]"

_INSERT = "INSERT INTO hedge_bodies (request_id, request, response) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"


def body_text(raw: bytes | None, limit: int = BODY_LIMIT) -> str | None:
    """``raw`` as text for the log: at most ``limit`` bytes of it, credentials masked."""
    if raw is None:
        return None
    # An incremental decoder holds back a character cut in half at the limit instead of mangling it.
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(raw[:limit], final=len(raw) <= limit)
    text = redact(text.replace("\x00", ""))
    if len(raw) > limit:
        text += TRUNCATED.format(limit=limit)
    return text


class BodyLog:
    def __init__(
        self, db: Database, flush_interval_s: float = 1.0, limit: int = BODY_LIMIT, max_buffer: int = 2000
    ) -> None:
        self.db = db
        self.flush_interval_s = flush_interval_s
        self.limit = limit
        self.max_buffer = max_buffer
        self._buffer: deque[tuple[str, str | None, str | None]] = deque()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def __call__(self, rec: RequestRecord) -> None:
        if rec.request_body is None and rec.response_body is None:
            return
        if len(self._buffer) >= self.max_buffer:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("body log buffer full: %d bodies dropped", self.dropped)
            return
        self._buffer.append(
            (
                rec.request_id,
                body_text(rec.request_body, self.limit),
                body_text(rec.response_body, self.limit),
            )
        )

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
            except Exception:
                log.exception("body log flush failed; %d bodies kept for the next try", len(self._buffer))

    async def flush(self) -> int:
        async with self._lock:
            written = 0
            while self._buffer:
                batch = [self._buffer[i] for i in range(min(len(self._buffer), 200))]
                await self.db.executemany(_INSERT, batch)
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
