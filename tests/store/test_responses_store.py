"""Stored Responses API responses on SQLite and on real PostgreSQL: scoping, retention, pruning."""

from __future__ import annotations

from typing import Any

from hedge.store.db import Database
from hedge.store.responses import DAY_S, ResponseStore

NOW = 1_800_000_000.0


def response(rid: str, created_at: float, text: str = "hi") -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": int(created_at),
        "output": [{"type": "message", "text": text}],
    }


async def test_save_get_delete_scoped_by_key(db: Database) -> None:
    store = ResponseStore(db, retention_days=30)
    items = [
        {
            "id": "msg_1",
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "é 👋"}],
        }
    ]
    conversation = [*items, {"id": "msg_2", "type": "message", "role": "assistant", "content": []}]
    await store.save(response("resp_master", NOW), items, conversation, None)
    await store.save(response("resp_key", NOW), items, conversation, "key_a")

    got = await store.get("resp_master", None, now=NOW)
    assert got is not None
    assert got.response == response("resp_master", NOW)
    assert got.input_items == items and got.conversation == conversation
    assert await store.get("resp_master", "key_a", now=NOW) is None, "a virtual key cannot read the master's"
    assert await store.get("resp_key", None, now=NOW) is None, "nor the master key a virtual key's"
    assert await store.get("resp_key", "key_b", now=NOW) is None, "nor another virtual key"
    assert (await store.get("resp_key", "key_a", now=NOW)) is not None
    assert await store.get("resp_nothing", None, now=NOW) is None

    assert not await store.delete("resp_key", "key_b")
    assert await store.delete("resp_key", "key_a")
    assert await store.get("resp_key", "key_a", now=NOW) is None
    assert not await store.delete("resp_key", "key_a"), "deleting twice finds nothing the second time"


async def test_retention_and_prune(db: Database) -> None:
    store = ResponseStore(db, retention_days=30)
    await store.save(response("resp_old", NOW - 31 * DAY_S), [], [], None)
    await store.save(response("resp_new", NOW - 29 * DAY_S), [], [], None)
    assert await store.get("resp_old", None, now=NOW) is None, "past retention, even before pruning"
    assert await store.get("resp_new", None, now=NOW) is not None
    assert await ResponseStore(db, retention_days=60).get("resp_old", None, now=NOW) is not None

    assert await store.prune(now=NOW) == 1
    assert await store.prune(now=NOW) == 0
    assert await ResponseStore(db, retention_days=60).get("resp_old", None, now=NOW) is None, "gone for good"
    assert await store.get("resp_new", None, now=NOW) is not None


async def test_prune_deletes_a_backlog_in_batches(db: Database) -> None:
    store = ResponseStore(db, retention_days=30)
    for i in range(7):
        await store.save(response(f"resp_old_{i}", NOW - 40 * DAY_S), [], [], None)
    await store.save(response("resp_new", NOW - DAY_S), [], [], None)
    assert await store.prune(now=NOW, batch=3) == 7  # batches of 3, 3 and 1
    assert await store.prune(now=NOW, batch=3) == 0
    assert await store.get("resp_new", None, now=NOW) is not None
