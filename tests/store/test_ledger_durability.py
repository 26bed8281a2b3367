"""BatchWriter's row isolation, spool and bounded close (with a fake database), the row
sanitizer, and the ledger's rows on real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from conftest import PG_BASE, _drop_schema, _pg_schema
from hedge.access.keys import validate_fields
from hedge.record import RequestRecord
from hedge.store.batch import BatchWriter
from hedge.store.db import Database, Migrations, connect
from hedge.store.ledger import Ledger
from hedge.store.schema import MIGRATIONS
from hedge.store.values import INT32, INT64, clamp_int, clean_float, clean_text

# -- the sanitizer ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        (None, 10, None),
        ("plain", 10, "plain"),
        ("a\x00b\x00", 10, "ab"),
        ("\ud800x", 10, "?x"),
        ("x" * 20, 10, "x" * 10),
        ("é" * 20, 5, "é" * 5),
        (12, 10, "12"),
        ("", 10, ""),
        ("\x00", 10, ""),
        ("ab\x00" * 5, 4, "abab"),
        ("é\x00\ud800", 10, "é?"),
    ],
)
def test_clean_text(value: object, limit: int, expected: str | None) -> None:
    assert clean_text(value, limit) == expected


@pytest.mark.parametrize(
    ("value", "bounds", "expected"),
    [
        (5, INT64, 5),
        (True, INT32, 1),
        (3_000_000_000, INT64, 3_000_000_000),
        (3_000_000_000, INT32, 2**31 - 1),
        (-(2**70), INT64, -(2**63)),
        (2**70, INT64, 2**63 - 1),
        (12.9, INT32, 12),
        (math.nan, INT32, 0),
        (math.inf, INT32, 2**31 - 1),
        (-math.inf, (0, 10), 0),
        ("42", INT32, 42),
        ("many", INT32, 0),
        (None, (1, 5), 1),
        (-5, (0, 10), 0),
        (2**31 - 1, INT32, 2**31 - 1),
        (2**31, INT32, 2**31 - 1),
        (False, (1, 5), 1),
    ],
)
def test_clamp_int(value: object, bounds: tuple[int, int], expected: int) -> None:
    assert clamp_int(value, *bounds) == expected


@pytest.mark.parametrize(
    ("value", "nullable", "expected"),
    [
        (1.5, False, 1.5),
        (2, False, 2.0),
        (math.nan, False, 0.0),
        (math.nan, True, None),
        (math.inf, True, None),
        (None, True, None),
        (None, False, 0.0),
        ("junk", False, 0.0),
        (-math.inf, False, 0.0),
        (-0.0, True, -0.0),
    ],
)
def test_clean_float(value: object, nullable: bool, expected: float | None) -> None:
    assert clean_float(value, nullable) == expected


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"name": "a\x00b"}, "name: must not contain NUL"),
        ({"name": "ok", "team": "t\x00"}, "team: must not contain NUL"),
        ({"name": "ok", "models": ["chat\x00"]}, "models: must not contain NUL"),
        ({"name": "x" * 201}, "name: must be at most 200"),
        ({"name": "ok", "rpm": 2**31}, "rpm: must be an integer from 1 to 2147483647"),
        ({"name": "ok", "budget_usd": math.inf}, "budget_usd: must be a number >= 0"),
    ],
)
def test_key_fields_the_database_cannot_store_are_refused(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        validate_fields(fields, creating=True)


# -- BatchWriter with a fake database --------------------------------------------------------------


class RowRejected(ValueError):
    """What a driver raises for a value the column cannot hold: the row's fault."""


class FakeDB:
    """Rows keyed by their first value, inserted like ``ON CONFLICT DO NOTHING``; all or nothing per call."""

    dialect = "fake"

    def __init__(self) -> None:
        self.rows: dict[Any, tuple[Any, ...]] = {}
        self.order: list[Any] = []
        self.calls = 0
        self.down: BaseException | None = None
        self.hang = False
        self.failures: list[BaseException | None] = []
        """Scripted outcomes of the next calls (None: behave), before ``down`` and ``reject``."""
        self.reject: Callable[[tuple[Any, ...]], bool] = lambda row: False

    def day_expr(self, column: str) -> str:
        return column

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        raise NotImplementedError

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        scripted = self.failures.pop(0) if self.failures else None
        if scripted is not None:
            raise scripted
        if self.down is not None:
            raise self.down
        batch = [tuple(r) for r in rows]
        for row in batch:
            if self.reject(row):
                raise RowRejected(f"value out of range in {row[0]}")
        for row in batch:
            if row[0] not in self.rows:
                self.rows[row[0]] = row
                self.order.append(row[0])

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return []

    async def migrate(self, migrations: Migrations) -> None:
        return None

    async def close(self) -> None:
        return None


def _writer(db: FakeDB, state_dir: Path | None, **kw: Any) -> BatchWriter[tuple[str, int]]:
    return BatchWriter(
        db, "INSERT", lambda item: item, what="ledger", flush_interval_s=0.05, state_dir=state_dir, **kw
    )


async def _until(what: str, check: Callable[[], bool], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def _lines(path: Path) -> list[Any]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def _spool_files(state_dir: Path) -> list[Path]:
    return sorted((state_dir / "spool").glob("ledger-*.jsonl"))


async def test_a_rejected_row_is_quarantined_and_the_rest_written(tmp_path: Path) -> None:
    db = FakeDB()
    db.reject = lambda row: row[1] < 0
    writer = _writer(db, tmp_path)
    for i in range(10):
        writer.add((f"r{i}", -1 if i in (3, 7) else i))
    assert await writer.flush() == 8
    assert sorted(db.rows) == sorted(f"r{i}" for i in range(10) if i not in (3, 7))
    quarantined = _lines(tmp_path / "quarantine" / "ledger.jsonl")
    assert [q["row"] for q in quarantined] == [["r3", -1], ["r7", -1]]
    assert all("value out of range" in q["reason"] for q in quarantined)
    assert writer.pending == 0 and writer.quarantined == 2

    writer.add(("r10", 10))  # the ledger goes on
    assert await writer.flush() == 1 and "r10" in db.rows


async def test_a_row_that_cannot_be_built_is_quarantined(tmp_path: Path) -> None:
    db = FakeDB()

    def to_row(item: int) -> tuple[Any, ...]:
        return (f"r{item}", 1 // item)

    writer: BatchWriter[int] = BatchWriter(db, "INSERT", to_row, what="ledger", state_dir=tmp_path)
    for i in (1, 0, 2):
        writer.add(i)
    assert await writer.flush() == 2
    assert "ZeroDivisionError" in _lines(tmp_path / "quarantine" / "ledger.jsonl")[0]["reason"]


async def test_an_outage_spools_the_rows_and_recovery_replays_them_in_order(tmp_path: Path) -> None:
    db = FakeDB()
    writer = _writer(db, tmp_path)
    writer.add(("r0", 0))
    assert await writer.flush() == 1

    db.down = ConnectionRefusedError(111, "Connection refused")
    for i in range(1, 6):
        writer.add((f"r{i}", i))
    assert await writer.flush() == 0
    assert writer.pending == 0 and writer.spooled == 5, "out of memory, on disk"
    [spool] = _spool_files(tmp_path)
    assert _lines(spool) == [[f"r{i}", i] for i in range(1, 6)]

    for i in range(6, 9):  # while it is down, later batches join the spool behind the earlier ones
        writer.add((f"r{i}", i))
    await writer.flush()
    assert _lines(spool) == [[f"r{i}", i] for i in range(1, 9)]

    db.down = None
    await _until("the spool to be replayed", lambda: len(db.rows) == 9)
    assert db.order == [f"r{i}" for i in range(9)]
    await _until("the spool to be emptied", lambda: spool.stat().st_size == 0)
    await writer.close()
    assert not _spool_files(tmp_path), "an empty spool is removed at close"


async def test_close_is_bounded_and_spools_what_the_database_did_not_take(tmp_path: Path) -> None:
    db = FakeDB()
    db.hang = True  # accepts the connection, never answers
    writer = _writer(db, tmp_path, shutdown_timeout_s=0.2)
    writer.start()
    for i in range(3):
        writer.add((f"r{i}", i))
    await asyncio.wait_for(writer.close(), 10)  # far above shutdown_timeout_s: only "it did not hang"
    [spool] = _spool_files(tmp_path)
    assert _lines(spool) == [[f"r{i}", i] for i in range(3)]

    healthy = FakeDB()
    after = _writer(healthy, tmp_path)
    after.start()  # the next start replays what the last one left
    await _until("the left-over spool to be replayed", lambda: len(healthy.rows) == 3)
    await _until("the replayed spool to be removed", lambda: not _spool_files(tmp_path))
    await after.close()


async def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    db = FakeDB()
    db.down = ConnectionResetError(104, "Connection reset by peer")
    first = _writer(db, tmp_path, shutdown_timeout_s=0.2)
    for i in range(3):
        first.add((f"r{i}", i))
    await first.close()
    [spool] = _spool_files(tmp_path)
    with spool.open("ab") as f:
        f.write(b'["r3", 3')  # SIGKILL in the middle of a write

    db.down = None
    second = _writer(db, tmp_path)
    second.start()
    await _until("the complete lines to be replayed", lambda: len(db.rows) == 3)
    await _until("the spool to be removed", lambda: not _spool_files(tmp_path))
    await second.close()
    assert sorted(db.rows) == ["r0", "r1", "r2"]


async def test_an_outage_during_isolation_spools_only_what_was_not_written(tmp_path: Path) -> None:
    db = FakeDB()
    # The batch is rejected, its first half written, then the database goes away.
    db.failures = [RowRejected("value out of range"), None, OSError("network is unreachable")]
    writer = _writer(db, tmp_path)
    for i in range(8):
        writer.add((f"r{i}", i))
    assert await writer.flush() == 4
    assert db.order == ["r0", "r1", "r2", "r3"]
    [spool] = _spool_files(tmp_path)
    assert _lines(spool) == [[f"r{i}", i] for i in range(4, 8)]
    assert writer.quarantined == 0, "an outage is never blamed on the rows"
    await _until("the rest to be replayed", lambda: len(db.rows) == 8)
    await writer.close()


# -- the ledger on real databases ------------------------------------------------------------------


def _rec(i: int, **kw: Any) -> RequestRecord:
    base: dict[str, Any] = {"request_id": f"req_{i}", "endpoint": "chat", "alias": "chat", "provider": "p"}
    return RequestRecord(**{**base, "model": "m", "cost_usd": 0.001, **kw})


async def test_poisoned_records_are_cleaned_and_booked(db: Database) -> None:
    ledger = Ledger(db, flush_interval_s=60)
    ledger(_rec(1, model="gpt\x00-4o", error="unknown model 'x\x00y'", status=404))
    ledger(_rec(2, prompt_tokens=3_000_000_000, completion_tokens=2**70, tags=frozenset({"a\x00b", "c"})))
    ledger(_rec(3, team="t\x00", tags=frozenset({"c"})))
    assert await ledger.flush() == 3
    by_tag = {r.group: r.requests for r in (await ledger.spend("tag", 0))[0]}
    assert by_tag == {"ab": 1, "c": 2}
    _, total = await ledger.spend("provider", 0)
    assert total.input_tokens == 3_000_000_000
    assert total.output_tokens == 2**48, "clamped so that sums of many still fit in 64 bits"
    rows = {r["request_id"]: r for r in await ledger.records()}
    assert rows["req_1"]["model"] == "gpt-4o" and rows["req_1"]["error"] == "unknown model 'xy'"


async def test_a_replay_after_a_partial_write_books_nothing_twice(db: Database, tmp_path: Path) -> None:
    ledger = Ledger(db, flush_interval_s=0.05, state_dir=tmp_path)
    for i in range(4):
        ledger(_rec(i))
    assert await ledger.flush() == 4
    real = db.executemany

    async def gone(sql: str, rows: Any) -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    db.executemany = gone  # type: ignore[method-assign]
    for i in (2, 3, 4, 5):  # 2 and 3 were written already: as if the database went away mid-write
        ledger(_rec(i))
    await ledger.flush()
    assert ledger.spooled == 4
    db.executemany = real  # type: ignore[method-assign]
    await _until("the replay", lambda: ledger.spooled == 0)
    await ledger.flush()
    count = await db.fetch("SELECT COUNT(*) AS n, COUNT(DISTINCT request_id) AS d FROM hedge_requests")
    assert (count[0]["n"], count[0]["d"]) == (6, 6)
    await ledger.close()


async def test_migration_widens_tokens_and_repairs_tags_with_nul() -> None:
    schema = await _pg_schema()
    db = await connect(f"{PG_BASE}?search_path={schema}")
    try:
        await db.migrate([m for m in MIGRATIONS if m[0] <= 2])  # a ledger written before the fix
        tags = [
            '["a\\u0000b"]',  # NUL in a tag, escaped by JSON: jsonb refuses it
            '["\\u0000\\u0000c"]',
            '["d\\\\u0000"]',  # a backslash, then the text "u0000": not a NUL, kept
            '["e\\\\\\u0000"]',  # a backslash, then a NUL
        ]
        for i, tag in enumerate(tags):
            await db.execute(
                "INSERT INTO hedge_requests (request_id, ts, status, stream, prompt_tokens, "
                "completion_tokens, cached_tokens, cost_usd, attempts, tags, cache_hit) "
                "VALUES (?, ?, 200, 0, 1, 1, 0, 0, 1, ?, 0)",
                [f"old_{i}", time.time(), tag],
            )
        await db.migrate(MIGRATIONS)
        ledger = Ledger(db, flush_interval_s=60)
        assert {r.group for r in (await ledger.spend("tag", 0))[0]} == {"ab", "c", "d\\u0000", "e\\"}
        ledger(_rec(9, prompt_tokens=5_000_000_000))
        assert await ledger.flush() == 1
        assert (await ledger.spend("provider", 0))[1].input_tokens == 5_000_000_004
    finally:
        await db.close()
        await _drop_schema(schema)


async def test_sqlite_writes_are_all_or_nothing(tmp_path: Path) -> None:
    """A batch that fails on one row leaves nothing half-written for another writer's commit."""
    db = await connect(f"sqlite:///{tmp_path / 'hedge.db'}")
    await db.migrate(MIGRATIONS)
    insert = "INSERT INTO hedge_bodies (request_id, request, response) VALUES (?, ?, ?)"
    with pytest.raises(OverflowError):
        await db.executemany(insert, [("a", "x", None), ("b", 2**70, None)])
    await db.execute(
        "INSERT INTO hedge_keys (id, name, key_hash, key_prefix, created_at) VALUES (?, ?, ?, ?, ?)",
        ["k", "n", "h", "p", 0.0],
    )
    assert await db.fetch("SELECT request_id FROM hedge_bodies") == []
    await db.close()


class SlowDB(FakeDB):
    """A database whose writes take a few turns of the event loop, as a real one's do."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = [tuple(r) for r in rows]
        self.sizes.append(len(batch))
        for _ in range(3):
            await asyncio.sleep(0)
        await super().executemany(sql, batch)


async def test_under_steady_load_the_background_writer_writes_full_batches(tmp_path: Path) -> None:
    """Rows that keep coming are written flush_batch or more at a time, not as whatever arrived
    during the previous write; an explicit flush still writes everything."""
    db = SlowDB()
    writer: BatchWriter[tuple[str, int]] = BatchWriter(
        db,
        "INSERT",
        lambda item: item,
        what="ledger",
        flush_interval_s=60,
        flush_batch=50,
        state_dir=tmp_path,
    )
    writer.start()
    try:
        for i in range(1000):
            writer.add((f"r{i}", i))
            await asyncio.sleep(0)
        await _until("the full batches to be written", lambda: writer.pending < 50)
        background = list(db.sizes)
        assert background and min(background) >= 50, background
        await writer.flush()
        assert len(db.rows) == 1000 and writer.pending == 0
    finally:
        await writer.close()
