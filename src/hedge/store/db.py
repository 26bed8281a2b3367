"""A thin async database layer over aiosqlite and asyncpg.

The ledger and key store are written once against this interface: SQL uses
``?`` placeholders (rewritten to ``$n`` for PostgreSQL) and the few
dialect-specific expressions come from :class:`Database` attributes.
SQLite is the embedded default for one machine (WAL mode, one writer); PostgreSQL
is for several replicas.

Every PostgreSQL call is bounded by ``timeout`` (``state.db_timeout_s``): connecting,
waiting for a pooled connection and each query. A database that stops answering then
fails a call in seconds, like one that refuses connections, instead of holding a
request (or a shutdown) for as long as the outage lasts. :func:`is_unavailable` and
:func:`is_store_error` tell callers what such a failure means.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import sqlite3
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

_PLACEHOLDER = re.compile(r"\?")
DEFAULT_TIMEOUT_S = 5.0
MIGRATION_TIMEOUT_S = 600.0
"""Per migration statement: widening a big table or waiting for another replica's migration takes time."""
log = logging.getLogger("hedge.db")


def _null(value: None) -> None:
    return None


# None binds as NULL either way; without an adapter of its own, sqlite3 first looks for one and
# then for ``__adapt__``/``__conform__`` on every None it binds: a third of the time of inserting
# a row of 37 columns of which 13 are NULL (14.6 -> 9.0 µs), as a ledger row usually is.
sqlite3.register_adapter(type(None), _null)

Statement = str | Mapping[str, str]
"""Migration SQL shared by both dialects, or ``{dialect: sql}`` for a step only some dialects need."""
Migrations = Sequence[tuple[int, Sequence[Statement]]]


def pending(migrations: Migrations, current: int, dialect: str) -> list[tuple[int, list[str]]]:
    """The migration steps past ``current``, each as its version and its SQL in ``dialect``."""
    return [
        (version, [sql for st in statements if (sql := statement_for(st, dialect)) is not None])
        for version, statements in migrations
        if version > current
    ]


def statement_for(statement: Statement, dialect: str) -> str | None:
    """The SQL of a migration step in ``dialect``; None when that dialect has nothing to do."""
    if isinstance(statement, str):
        return statement
    return statement.get(dialect)


def is_store_error(exc: BaseException) -> bool:
    """Whether ``exc`` came from the database layer (so a client should get 503, not 500)."""
    if isinstance(exc, OSError | TimeoutError | sqlite3.Error):
        return True
    asyncpg = sys.modules.get("asyncpg")
    return asyncpg is not None and isinstance(
        exc, asyncpg.PostgresError | asyncpg.InterfaceError | asyncpg.InternalClientError
    )


def is_unavailable(exc: BaseException) -> bool:
    """Whether a failed write is the database's fault rather than the rows': try the same rows later.

    Connection failures and timeouts, and anything the server refuses for reasons of its own
    (a read-only standby, a missing table, too many connections, a deadlock). Only data
    errors (SQLSTATE classes 22 and 23: a value the column cannot hold, a constraint) and
    values the driver cannot even encode are the rows' fault, so only those are isolated.
    """
    if isinstance(exc, OSError | TimeoutError | sqlite3.OperationalError):
        return True
    asyncpg = sys.modules.get("asyncpg")
    if asyncpg is not None:
        if isinstance(exc, asyncpg.PostgresError):
            return str(getattr(exc, "sqlstate", "") or "")[:2] not in ("22", "23")
        if isinstance(exc, asyncpg.InterfaceError | asyncpg.InternalClientError):
            return not isinstance(exc, ValueError)  # asyncpg's client-side data errors are ValueErrors
    return False


class Database(Protocol):
    dialect: str

    async def connect(self) -> Any:
        """Open the connection (or pool); called once, before any other call."""
        ...

    def day_expr(self, column: str) -> str: ...

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None: ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    async def write_returning(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """A write that returns rows (``UPDATE ... RETURNING``), committed as one statement."""
        ...

    async def migrate(self, migrations: Migrations) -> None:
        """Apply the migrations newer than the recorded version, in one transaction each."""
        ...

    async def transaction(self, statements: Sequence[str], timeout_s: float = MIGRATION_TIMEOUT_S) -> None:
        """Run ``statements`` (no arguments) in one transaction, each bounded by ``timeout_s``: for
        maintenance that takes longer than a request may (``hedge rollups rebuild``)."""
        ...

    async def close(self) -> None: ...


_VALUES = re.compile(r"\bVALUES\s*(\(\s*\?(?:\s*,\s*\?)*\s*\))", re.IGNORECASE)
SQLITE_MAX_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
"""How many ``?`` one SQLite statement may hold (``SQLITE_MAX_VARIABLE_NUMBER``)."""
MAX_ROWS_PER_STATEMENT = 512


def multi_row(sql: str, rows: list[tuple[Any, ...]]) -> list[tuple[str, list[Any], bool]]:
    """``rows`` for ``sql`` as (statement, arguments, many): an ``INSERT ... VALUES (?, ...)``
    becomes statements of up to :data:`MAX_ROWS_PER_STATEMENT` rows each, their arguments
    flattened (``many`` false); any other statement stays one ``executemany`` of the rows.

    Each statement holds a power of two of rows (a batch of 37: 32, 4 and 1), so an insert has
    about ten distinct statements, which sqlite3 keeps prepared: preparing a multi-row statement
    costs more than running it (SQLite compiles each row of ``VALUES`` as a ``SELECT`` of its
    own), and with one statement per batch size almost every flush prepared a new one.
    """
    if not rows:
        return []
    match = _VALUES.search(sql)
    if match is None:
        return [(sql, list(rows), True)]
    group = match.group(1)
    width = group.count("?")
    if any(len(row) != width for row in rows):
        return [(sql, list(rows), True)]  # sqlite3 names the mistake better than a flat list would
    per = max(1, min(MAX_ROWS_PER_STATEMENT, SQLITE_MAX_VARIABLES // width))
    head, tail = sql[: match.start(1)], sql[match.end(1) :]
    out: list[tuple[str, list[Any], bool]] = []
    start = 0
    while start < len(rows):
        n = min(per, len(rows) - start)
        n = 1 << (n.bit_length() - 1)  # the largest power of two that fits
        chunk = rows[start : start + n]
        out.append((_statement(head, group, tail, n), [value for row in chunk for value in row], False))
        start += n
    return out


@functools.lru_cache(maxsize=256)
def _statement(head: str, group: str, tail: str, rows: int) -> str:
    """The same text object each time, so sqlite3's statement cache finds it without hashing
    tens of kilobytes of SQL again."""
    return head + ", ".join([group] * rows) + tail


class SQLiteDatabase:
    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: Any = None
        self._writing = asyncio.Lock()
        """One connection serves every writer: a write and its commit (or rollback) must not interleave."""

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

    def _open(self) -> Any:
        if self._conn is None:  # closed: the caller sees the database as gone, not a bug
            raise ConnectionError("the SQLite database is closed")
        return self._conn

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        async with self._writing:
            self._open()
            try:
                await self._conn.execute(sql, tuple(args))
            except BaseException:
                await self._rollback()
                raise
            await self._conn.commit()

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """All the rows or none, like PostgreSQL's: a row that fails takes back those before it.

        An ``INSERT ... VALUES (?, ...)`` is sent as multi-row statements (:func:`multi_row`):
        sqlite3's ``executemany`` lets go of the GIL around every row, and the writer thread then
        waits a whole switch interval to take it back from a busy event loop at each row: 2,000
        rows took 1.4 s under load instead of 10 ms, and the ledger fell behind the requests."""
        async with self._writing:
            self._open()
            try:
                for statement, args, many in multi_row(sql, [tuple(r) for r in rows]):
                    if many:
                        await self._conn.executemany(statement, args)
                    else:
                        await self._conn.execute(statement, args)
            except BaseException:
                await self._rollback()
                raise
            await self._conn.commit()

    async def transaction(self, statements: Sequence[str], timeout_s: float = MIGRATION_TIMEOUT_S) -> None:
        async with self._writing:
            self._open()
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                for sql in statements:
                    await self._conn.execute(sql)
            except BaseException:
                await self._rollback()
                raise
            await self._conn.commit()

    async def _rollback(self) -> None:
        try:
            await self._conn.rollback()
        except Exception:
            log.warning("SQLite rollback failed", exc_info=True)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        async with self._open().execute(sql, tuple(args)) as cursor:
            return [dict(row) for row in await cursor.fetchall()]

    async def write_returning(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        async with self._writing:
            self._open()
            try:
                async with self._conn.execute(sql, tuple(args)) as cursor:
                    rows = [dict(row) for row in await cursor.fetchall()]
            except BaseException:
                await self._rollback()
                raise
            await self._conn.commit()
            return rows

    async def migrate(self, migrations: Migrations) -> None:
        """Apply the pending migrations under one write lock: the version is read inside it, so two
        processes starting on one file (``hedge serve --workers 2``) cannot both apply a step."""
        await self._conn.execute("CREATE TABLE IF NOT EXISTS hedge_schema (version INTEGER NOT NULL)")
        await self._conn.commit()
        await self._conn.execute("BEGIN IMMEDIATE")
        try:
            async with self._conn.execute("SELECT COALESCE(MAX(version), 0) FROM hedge_schema") as cursor:
                row = await cursor.fetchone()
            for version, steps in pending(migrations, row[0] if row is not None else 0, self.dialect):
                for sql in steps:
                    await self._conn.execute(sql)
                await self._conn.execute("INSERT INTO hedge_schema (version) VALUES (?)", (version,))
        except BaseException:
            await self._conn.rollback()
            raise
        await self._conn.commit()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


class PostgresDatabase:
    dialect = "postgresql"

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url
        self.timeout = timeout
        self._pool: Any = None

    async def connect(self) -> PostgresDatabase:
        import asyncpg

        # No connection floor: during an outage asyncpg would log a traceback per retry to keep it.
        self._pool = await asyncpg.create_pool(
            self.url, min_size=0, max_size=10, timeout=self.timeout, command_timeout=self.timeout
        )
        return self

    def day_expr(self, column: str) -> str:
        return f"to_char(to_timestamp({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    @staticmethod
    def _sql(sql: str) -> str:
        counter = iter(range(1, 10_000))
        return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)

    # The pool's own execute/fetch wait for a free connection without a limit: acquire explicitly.

    def _acquire(self) -> Any:
        if self._pool is None:  # closed: the caller sees the database as gone, not a bug
            raise ConnectionError("the database connection pool is closed")
        return self._pool.acquire(timeout=self.timeout)

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        async with self._acquire() as conn:
            await conn.execute(self._sql(sql), *args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self._acquire() as conn:
            await conn.executemany(self._sql(sql), [tuple(r) for r in rows])

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        async with self._acquire() as conn:
            return [dict(r) for r in await conn.fetch(self._sql(sql), *args)]

    async def write_returning(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return await self.fetch(sql, args)  # a statement outside a transaction commits by itself

    async def transaction(self, statements: Sequence[str], timeout_s: float = MIGRATION_TIMEOUT_S) -> None:
        async with self._acquire() as conn, conn.transaction():
            for sql in statements:
                await conn.execute(sql, timeout=timeout_s)

    async def migrate(self, migrations: Migrations) -> None:
        slow = max(self.timeout, MIGRATION_TIMEOUT_S)
        async with self._acquire() as conn, conn.transaction():
            # Replicas starting together take turns: the lock lasts until this transaction ends.
            await conn.execute("SELECT pg_advisory_xact_lock(72150001)", timeout=slow)
            await conn.execute("CREATE TABLE IF NOT EXISTS hedge_schema (version INTEGER NOT NULL)")
            current = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM hedge_schema")
            for version, steps in pending(migrations, current, self.dialect):
                for sql in steps:
                    await conn.execute(sql, timeout=slow)
                await conn.execute("INSERT INTO hedge_schema (version) VALUES ($1)", version)

    async def close(self) -> None:
        """Close the pool; connections that do not close within ``timeout`` are cut."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), self.timeout)
            except Exception as exc:  # a shutdown must not wait for, or fail on, a database that is gone
                log.warning("database connections did not close cleanly (%s); cut", type(exc).__name__)
                pool.terminate()


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or ``sqlite:///:memory:``."""
    path = unquote(urlparse(url).path)
    if path.startswith("/") and not url.startswith("sqlite:////"):
        path = path[1:]
    return path or ":memory:"


def database(url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Database:
    """The database at ``url``, not yet connected; PostgreSQL calls are bounded by ``timeout_s`` s each."""
    if url.startswith("sqlite://"):
        return SQLiteDatabase(sqlite_path(url))
    return PostgresDatabase(url, timeout_s)


async def connect(url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Database:
    """The database at ``url``, connected."""
    db = database(url, timeout_s)
    await db.connect()
    return db


_STORE_WARNING_EVERY_S = 10.0
_store_warned = -_STORE_WARNING_EVERY_S


def warn_store_unavailable(what: str, exc: BaseException) -> None:
    """One warning line per interval (no traceback), not one per request, while a state store is down:
    during an outage every keyed request fails the same way, and a line each would bury the log."""
    global _store_warned
    now = time.monotonic()
    if now - _store_warned >= _STORE_WARNING_EVERY_S:
        _store_warned = now
        log.warning("%s: state store unavailable (%s); answering 503", what, type(exc).__name__)
