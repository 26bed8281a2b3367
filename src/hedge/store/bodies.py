"""The body log: request and response bodies for the dashboard, only with ``server.log_bodies``.

A record sink like the ledger: ``__call__`` only buffers, a background task
writes batches to ``hedge_bodies``. Each body is cut to ``limit`` bytes and
anything that looks like a credential (or is one of the gateway's configured
secrets) is masked; headers are never stored, so neither are the callers' keys.
A full buffer drops bodies (with one error line) rather than grow without bound:
bodies are a debugging aid, the ledger is the record. For the same reason the
body log's spool (while the database is down, see :mod:`hedge.store.batch`) is
capped at ``MAX_SPOOL_BYTES``; past it bodies are dropped, never ledger records.
"""

from __future__ import annotations

import codecs
import logging
from pathlib import Path

from hedge.observe.logs import redact
from hedge.record import RequestRecord
from hedge.store.batch import BatchWriter
from hedge.store.db import Database
from hedge.store.values import clean_text

log = logging.getLogger("hedge.bodies")

BODY_LIMIT = 64 * 1024
MAX_SPOOL_BYTES = 256 * 1024 * 1024
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


class BodyLog(BatchWriter[tuple[str, str | None, str | None]]):
    def __init__(
        self,
        db: Database,
        flush_interval_s: float = 1.0,
        limit: int = BODY_LIMIT,
        max_buffer: int = 2000,
        *,
        state_dir: str | Path | None = None,
        shutdown_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(
            db,
            _INSERT,
            lambda row: row,
            what="body log",
            flush_interval_s=flush_interval_s,
            max_buffer=max_buffer,
            write_chunk=200,
            state_dir=state_dir,
            shutdown_timeout_s=shutdown_timeout_s,
            max_spool_bytes=MAX_SPOOL_BYTES,
        )
        self.limit = limit

    def __call__(self, rec: RequestRecord) -> None:
        if rec.request_body is None and rec.response_body is None:
            return
        self.add(
            (
                clean_text(rec.request_id) or "",
                body_text(rec.request_body, self.limit),
                body_text(rec.response_body, self.limit),
            )
        )
