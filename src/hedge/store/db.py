"""A thin async database layer over aiosqlite and asyncpg.

The ledger and key store are written once against this interface: SQL uses
``?`` placeholders (rewritten to ``$n`` for PostgreSQL) and the few
dialect-specific expressions come from :class:`Database` attributes.
SQLite is the embedded default for one machine (WAL mode, one writer); PostgreSQL
is for several replicas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

_PLACEHOLDER = re.compile(r"\?")


class Database(Protocol):
    dialect: str

    def day_expr(self, column: str) -> str: ...

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None: ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    async def migrate(self, migrations: list[tuple[int, list[str]]]) -> None:
        """Apply the migrations newer than the recorded version, in one transaction each."""
        ...

    async def close(self) -> None: ...


class SQLiteDatabase:
    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: Any = None

    async def connect(self) -> SQLiteDatabase:
        import aiosqlite

        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = await aiosqlite.connect(self.path)
        self._conn.row_factory = aiosqlite.Row
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.execute("PRAGMA synchronous=NORMAL")
        await self._conn.execute("PRAGMA busy_timeout=5000")
        return self

    def day_expr(self, column: str) -> str:
        return f"strftime('%Y-%m-%d', {column}, 'unixepoch')"

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        await self._conn.execute(sql, tuple(args))
        await self._conn.commit()

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, [tuple(r) for r in rows])
        await self._conn.commit()

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        async with self._conn.execute(sql, tuple(args)) as cursor:
            return [dict(row) for row in await cursor.fetchall()]

    async def migrate(self, migrations: list[tuple[int, list[str]]]) -> None:
        await self._conn.execute("CREATE TABLE IF NOT EXISTS hedge_schema (version INTEGER NOT NULL)")
        rows = await self.fetch("SELECT MAX(version) AS v FROM hedge_schema")
        current = rows[0]["v"] or 0
        for version, statements in migrations:
            if version <= current:
                continue
            await self._conn.execute("BEGIN IMMEDIATE")
            for statement in statements:
                await self._conn.execute(statement)
            await self._conn.execute("INSERT INTO hedge_schema (version) VALUES (?)", (version,))
            await self._conn.commit()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


class PostgresDatabase:
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: Any = None

    async def connect(self) -> PostgresDatabase:
        import asyncpg

        self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=10)
        return self

    def day_expr(self, column: str) -> str:
        return f"to_char(to_timestamp({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    @staticmethod
    def _sql(sql: str) -> str:
        counter = iter(range(1, 10_000))
        return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        await self._pool.execute(self._sql(sql), *args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._pool.executemany(self._sql(sql), [tuple(r) for r in rows])

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._pool.fetch(self._sql(sql), *args)]

    async def migrate(self, migrations: list[tuple[int, list[str]]]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            # Replicas starting together take turns: the lock lasts until this transaction ends.
            await conn.execute("SELECT pg_advisory_xact_lock(72150001)")
            await conn.execute("CREATE TABLE IF NOT EXISTS hedge_schema (version INTEGER NOT NULL)")
            current = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM hedge_schema")
            for version, statements in migrations:
                if version <= current:
                    continue
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute("INSERT INTO hedge_schema (version) VALUES ($1)", version)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or ``sqlite:///:memory:``."""
    path = unquote(urlparse(url).path)
    if path.startswith("/") and not url.startswith("sqlite:////"):
        path = path[1:]
    return path or ":memory:"


async def connect(url: str) -> Database:
    if url.startswith("sqlite://"):
        return await SQLiteDatabase(sqlite_path(url)).connect()
    return await PostgresDatabase(url).connect()
