"""Stored Responses API responses: what ``GET /v1/responses/{id}`` and ``previous_response_id`` read.

One row per response (table ``hedge_responses``, migration 4): the Response object as the client
received it, its input items (what ``GET /v1/responses/{id}/input_items`` lists) and the
conversation up to and including its output, as Responses items (what a request naming it as
``previous_response_id`` continues from, so a conversation never has to be walked back response
by response, and deleting an earlier response does not break a later one).

A response belongs to the key that created it: ``owner`` is the virtual key's id, or the empty
string for the master key, and every read and delete is scoped by it, so one key can neither see
nor guess its way into another's responses. Responses older than ``state.responses_retention_days``
are not returned; a serving gateway deletes them hourly (:class:`Pruner`), and ``hedge responses
prune`` does so on demand.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson

from hedge.store.db import Database, is_store_error
from hedge.tasks import stop

log = logging.getLogger("hedge")

DAY_S = 86400.0
PRUNE_BATCH = 500
"""Stored responses deleted per statement when pruning."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    conversation: list[dict[str, Any]]
    """Every item of the conversation so far: earlier turns, this one's input, then its output."""


def owner(key_id: str | None) -> str:
    """The row's owner: a virtual key's id, or ``""`` for the master key (NULL never matches ``=``)."""
    return key_id or ""


class ResponseStore:
    def __init__(self, db: Database, retention_days: float = 30.0) -> None:
        self.db = db
        self.retention_s = retention_days * DAY_S

    def _oldest(self, now: float | None) -> float:
        return (time.time() if now is None else now) - self.retention_s

    async def save(
        self,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
        conversation: list[dict[str, Any]],
        key_id: str | None,
    ) -> None:
        await self.db.execute(
            "INSERT INTO hedge_responses (id, owner, created_at, response, input_items, conversation) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                response["id"],
                owner(key_id),
                float(response["created_at"]),
                orjson.dumps(response).decode(),
                orjson.dumps(input_items).decode(),
                orjson.dumps(conversation).decode(),
            ),
        )

    async def get(
        self, response_id: str, key_id: str | None, now: float | None = None
    ) -> StoredResponse | None:
        """The response, if ``key_id`` created it and it is within the retention period."""
        rows = await self.db.fetch(
            "SELECT response, input_items, conversation FROM hedge_responses "
            "WHERE id = ? AND owner = ? AND created_at >= ?",
            (response_id, owner(key_id), self._oldest(now)),
        )
        if not rows:
            return None
        row = rows[0]
        return StoredResponse(
            orjson.loads(row["response"]), orjson.loads(row["input_items"]), orjson.loads(row["conversation"])
        )

    async def delete(self, response_id: str, key_id: str | None) -> bool:
        """Delete the response if ``key_id`` created it; whether there was one to delete."""
        rows = await self.db.fetch(
            "SELECT id FROM hedge_responses WHERE id = ? AND owner = ? AND created_at >= ?",
            (response_id, owner(key_id), self._oldest(None)),
        )
        if not rows:
            return False
        await self.db.execute(
            "DELETE FROM hedge_responses WHERE id = ? AND owner = ?", (response_id, owner(key_id))
        )
        return True

    async def prune(self, now: float | None = None, batch: int = PRUNE_BATCH) -> int:
        """Delete every response older than the retention period; how many there were.

        ``batch`` at a time, each its own statement: a backlog of millions (a first prune, or one
        after a long outage) never holds SQLite's write lock, which the ledger's writer waits on,
        for longer than one batch's delete."""
        oldest = self._oldest(now)
        total = 0
        while True:
            gone = await self.db.write_returning(
                "DELETE FROM hedge_responses WHERE id IN "
                "(SELECT id FROM hedge_responses WHERE created_at < ? LIMIT ?) RETURNING id",
                (oldest, batch),
            )
            total += len(gone)
            if len(gone) < batch:
                return total


PRUNE_EVERY_S = 3600.0
"""How often a serving gateway deletes the stored responses past their retention."""


class Pruner:
    """Deletes expired stored responses in the background: once at start, then every hour.

    Expired responses are never returned (:meth:`ResponseStore.get` reads within the retention), so
    this only keeps the table from growing without bound. Every replica runs one: a delete of rows
    another replica already deleted finds nothing, and each batch is small (:data:`PRUNE_BATCH`).
    A database that is down is tried again at the next round."""

    def __init__(self, store: ResponseStore, every_s: float = PRUNE_EVERY_S) -> None:
        self.store = store
        self.every_s = every_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                count = await self.store.prune()
            except Exception as exc:
                if is_store_error(exc):
                    log.warning("stored responses not pruned: state store unavailable (%s)", exc)
                else:
                    log.exception("pruning stored responses failed")
            else:
                if count:
                    log.info("pruned %d stored responses past their retention", count)
            await asyncio.sleep(self.every_s)

    async def close(self) -> None:
        await stop(self._task)
        self._task = None
