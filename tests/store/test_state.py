"""The state store: ledger, keys and counters, on SQLite and on real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from conftest import PG_BASE, REDIS_URL, _drop_schema, _pg_schema
from hedge.access.gate import Gate, period_bounds
from hedge.access.keys import KeyStore
from hedge.record import Outcome, RequestRecord, RouteStep
from hedge.store.analytics import Analytics
from hedge.store.counters import Counters, MemoryCounters, RedisCounters
from hedge.store.db import Database, connect
from hedge.store.ledger import Ledger, parse_since
from hedge.store.schema import MIGRATIONS


@pytest.fixture
def pg_url(pg_schema: str) -> str:
    return f"{PG_BASE}?search_path={pg_schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hedge.db'}"
        schema = None
    else:
        schema = await _pg_schema()
        url = f"{PG_BASE}?search_path={schema}"
    database = await connect(url)
    await database.migrate(MIGRATIONS)
    await database.migrate(MIGRATIONS)  # idempotent
    yield database
    await database.close()
    if schema:
        await _drop_schema(schema)


def _rec(i: int, **kw: Any) -> RequestRecord:
    base: dict[str, Any] = {
        "request_id": f"req_{i}",
        "endpoint": "chat",
        "alias": "chat",
        "provider": "cheap" if i % 2 else "premium",
        "model": "m-cheap" if i % 2 else "m-premium",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost_usd": 0.001 if i % 2 else 0.01,
        "baseline_cost_usd": 0.01,
        "attempts": 1,
    }
    base.update(kw)
    return RequestRecord(**base)


async def test_ledger_groups_and_totals(db: Database) -> None:
    ledger = Ledger(db, flush_interval_s=60)
    now = time.time()
    for i in range(10):
        ledger(
            _rec(i, key_id="key_a" if i < 4 else None, team="t1" if i < 4 else None, tags=frozenset({"x"}))
        )
    ledger(_rec(99, status=502, cost_usd=0.0))
    ledger(_rec(100, started_at=now - 10 * 86400))
    assert ledger.pending == 12
    await ledger.close()
    assert ledger.pending == 0
    rows, total = await ledger.spend("provider", now - 86400)
    by = {r.group: r for r in rows}
    assert set(by) == {"cheap", "premium"}
    assert by["cheap"].requests == 5 and by["cheap"].cost_usd == pytest.approx(0.005)
    assert by["premium"].cost_usd == pytest.approx(0.05)
    assert total.requests == 10, "failed requests and old ones are excluded"
    assert total.input_tokens == 100 and total.output_tokens == 50
    assert total.baseline_cost_usd == pytest.approx(0.1)
    assert total.savings_usd == pytest.approx(0.1 - 0.055)
    assert {r.group: r.requests for r in (await ledger.spend("key", now - 86400))[0]} == {
        "key_a": 4,
        "master key": 6,
    }
    assert {r.group for r in (await ledger.spend("tag", now - 86400))[0]} == {"x"}
    assert {r.group for r in (await ledger.spend("team", now - 86400))[0]} == {"t1", "-"}
    days = (await ledger.spend("day", now - 30 * 86400))[0]
    assert len(days) == 2 and all(len(d.group) == 10 for d in days)
    assert await ledger.key_spend("key_a", now - 86400) == pytest.approx(0.022)
    with pytest.raises(ValueError):
        await ledger.spend("colour", 0)


async def test_ledger_keeps_records_when_a_write_fails(db: Database) -> None:
    ledger = Ledger(db, flush_interval_s=60)
    ledger(_rec(1))
    real = db.executemany

    async def broken(sql: str, rows: Any) -> None:
        raise OSError("database went away")

    db.executemany = broken  # type: ignore[method-assign]
    with pytest.raises(OSError):
        await ledger.flush()
    assert ledger.pending == 1
    db.executemany = real  # type: ignore[method-assign]
    assert await ledger.flush() == 1


async def test_key_store(db: Database) -> None:
    store = KeyStore(db, cache_ttl_s=0)
    key, secret = await store.create(
        {"name": "alice", "team": "t", "models": "chat,premium", "budget_usd": 1}
    )
    assert secret.startswith("sk-hedge-") and key.budget_period == "total"
    assert key.models == ["chat", "premium"]
    rows = await db.fetch("SELECT * FROM hedge_keys")
    assert secret not in str(rows), "only the hash is stored"
    found = await store.find(secret)
    assert found is not None and found.id == key.id
    assert await store.find(secret + "x") is None
    updated = await store.update(key.id, {"rpm": 5, "models": None})
    assert updated is not None and updated.rpm == 5 and updated.models is None
    revoked = await store.revoke(key.id)
    assert revoked is not None and revoked.revoked_at is not None
    assert [k.id for k in await store.list()] == [key.id]
    for bad in (
        {"name": ""},
        {"name": "x", "budget_usd": -1},
        {"name": "x", "rpm": 0},
        {"name": "x", "bogus": 1},
    ):
        with pytest.raises(ValueError):
            await store.create(bad)


@pytest.fixture(params=["memory", "redis"])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[Counters]:
    clock = [1_000_000.0]
    if request.param == "memory":
        c: Counters = MemoryCounters(clock=lambda: clock[0])
    else:
        c = RedisCounters(REDIS_URL, prefix=f"hedge-test-{secrets.token_hex(4)}:", clock=lambda: clock[0])
    c.clock = clock  # type: ignore[attr-defined]
    yield c
    await c.close()


async def test_counters_windows_and_spend(counters: Counters) -> None:
    clock: list[float] = counters.clock  # type: ignore[attr-defined]
    assert await counters.add("rpm:k", 1, 60) == 1
    assert await counters.add("rpm:k", 1, 60) == 2
    assert await counters.get("rpm:k", 60) == 2
    clock[0] += 60
    assert await counters.get("rpm:k", 60) == 0, "a new window starts empty"
    assert await counters.spend_get("s") is None
    assert await counters.spend_init("s", 1.5, None) == 1.5
    assert await counters.spend_init("s", 9.0, None) == 1.5, "init never overwrites"
    assert await counters.spend_add("s", 0.25, None) == pytest.approx(1.75)


async def test_gate_budget_initialises_from_ledger(db: Database) -> None:
    ledger = Ledger(db)
    store = KeyStore(db)
    key, _ = await store.create({"name": "b", "budget_usd": 0.02, "budget_period": "day"})
    ledger(_rec(1, key_id=key.id, cost_usd=0.015))
    await ledger.flush()
    gate = Gate(MemoryCounters(), ledger)
    await gate.admit(key, "chat")
    assert await gate.spent(key) == pytest.approx(0.015)
    gate.book(_rec(2, key_id=key.id, cost_usd=0.01), key)
    await gate.drain()
    with pytest.raises(Exception) as exc:
        await gate.admit(key, "chat")
    assert getattr(exc.value, "code", None) == "budget_exceeded"


@pytest.mark.parametrize(
    ("period", "when", "start"),
    [
        ("day", "2026-11-26T15:00:00+00:00", "2026-11-26T00:00:00+00:00"),
        ("week", "2026-11-26T15:00:00+00:00", "2026-11-23T00:00:00+00:00"),
        ("month", "2026-11-26T15:00:00+00:00", "2026-11-01T00:00:00+00:00"),
        ("total", "2026-11-26T15:00:00+00:00", "1970-01-01T00:00:00+00:00"),
    ],
)
def test_budget_periods(period: str, when: str, start: str) -> None:
    from datetime import datetime

    assert (
        period_bounds(period, datetime.fromisoformat(when).timestamp())[0]
        == datetime.fromisoformat(start).timestamp()
    )


@pytest.mark.parametrize(("text", "seconds"), [("7d", 7 * 86400), ("24h", 86400), ("30m", 1800), ("90s", 90)])
def test_parse_since(text: str, seconds: int) -> None:
    assert parse_since(text, now=1e9) == 1e9 - seconds


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_migration_keeps_routes_and_old_rows_count_as_before(dialect: str, tmp_path: Path) -> None:
    """Migration 5 adds the route; rows (and spooled rows) written before it count by their deployment."""
    schema = None
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'hedge.db'}"
    else:
        schema = await _pg_schema()
        url = f"{PG_BASE}?search_path={schema}"
    db = await connect(url)
    try:
        await db.migrate([m for m in MIGRATIONS if m[0] <= 4])  # a ledger written before routes were kept
        now = time.time()
        for request_id, status in (("old_ok", 200), ("old_failed", 503)):
            await db.execute(
                "INSERT INTO hedge_requests (request_id, ts, provider, model, status, stream, prompt_tokens, "
                "completion_tokens, cached_tokens, cost_usd, attempts, cache_hit) "
                "VALUES (?, ?, 'old', 'm', ?, 0, 1, 1, 0, 0.001, 1, 0)",
                [request_id, now, status],
            )
        # A row the old version spooled (21 columns, no route) while the database was down, then died.
        old_row = ["spooled_old", now, None, None, "chat", "chat", "old", "m", 200, 0, 1, 1, 0, 0.001]
        old_row += [None, 5.0, None, 1, None, 0, None]
        (tmp_path / "spool").mkdir()
        (tmp_path / "spool" / "ledger-1-0ld0.jsonl").write_bytes(orjson.dumps(old_row) + b"\n")

        await db.migrate(MIGRATIONS)
        await db.migrate(MIGRATIONS)  # idempotent
        ledger = Ledger(db, flush_interval_s=0.05, state_dir=tmp_path)
        ledger.start()  # replays the old spool file
        deadline = time.monotonic() + 10
        while not await db.fetch("SELECT 1 FROM hedge_requests WHERE request_id = 'spooled_old'"):
            assert time.monotonic() < deadline, "the old spool was not replayed"
            await asyncio.sleep(0.02)
        route = [RouteStep("new/a", Outcome.FAILED, "upstream_503"), RouteStep("new/b", Outcome.OK)]
        ledger(_rec(1, provider="new", model="b", attempts=2, route=route))
        ledger(_rec(2, provider=None, model=None, status=404))  # refused before routing: nothing tried
        await ledger.close()

        stored = {
            r["request_id"]: r["route"]
            for r in await db.fetch("SELECT request_id, route FROM hedge_requests")
        }
        assert stored["old_ok"] is None and stored["old_failed"] is None and stored["spooled_old"] is None
        assert orjson.loads(stored["req_1"]) == [["new/a", "failed", "upstream_503"], ["new/b", "ok", ""]]
        assert stored["req_2"] == "[]"

        deps = {d["deployment"]: d for d in (await Analytics(db).latency(now - 60))["deployments"]}
        counts = {name: (d["served"], d["failed_attempts"]) for name, d in deps.items()}
        assert counts == {"old/m": (2, 1), "new/a": (0, 1), "new/b": (1, 0)}
    finally:
        await db.close()
        if schema:
            await _drop_schema(schema)
