"""SQLite batch inserts go as multi-row statements, with executemany's all-or-nothing meaning.

(Why: sqlite3's ``executemany`` takes the GIL back once per row, and behind a busy event loop
each of those waits a switch interval; see ``SQLiteDatabase.executemany``.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hedge.store.db import MAX_ROWS_PER_STATEMENT, SQLiteDatabase, multi_row

INSERT = "INSERT INTO t (id, v) VALUES (?, ?) ON CONFLICT DO NOTHING"


@pytest.mark.parametrize(
    ("sql", "rows", "expected"),
    [
        (INSERT, [], []),
        (
            INSERT,
            [(1, "a")],
            [("INSERT INTO t (id, v) VALUES (?, ?) ON CONFLICT DO NOTHING", [1, "a"], False)],
        ),
        (
            INSERT,
            [(1, "a"), (2, "b")],
            [("INSERT INTO t (id, v) VALUES (?, ?), (?, ?) ON CONFLICT DO NOTHING", [1, "a", 2, "b"], False)],
        ),
        ("insert into t values(?,?)", [(1, 2)], [("insert into t values(?,?)", [1, 2], False)]),
        # not an INSERT ... VALUES (?, ...): one executemany, as before
        (
            "UPDATE t SET v = ? WHERE id = ?",
            [("a", 1)],
            [("UPDATE t SET v = ? WHERE id = ?", [("a", 1)], True)],
        ),
        # rows of the wrong width: left to sqlite3, which names the mistake
        (INSERT, [(1, "a", "extra")], [(INSERT, [(1, "a", "extra")], True)]),
    ],
)
def test_multi_row(sql: str, rows: list[tuple[object, ...]], expected: list[object]) -> None:
    assert multi_row(sql, rows) == expected


def test_statements_are_cut_to_the_cap() -> None:
    rows = [(i, str(i)) for i in range(2 * MAX_ROWS_PER_STATEMENT + 1)]
    parts = multi_row(INSERT, rows)
    assert [len(args) // 2 for _, args, _ in parts] == [MAX_ROWS_PER_STATEMENT, MAX_ROWS_PER_STATEMENT, 1]
    assert [v for _, args, _ in parts for v in args] == [v for row in rows for v in row]


@pytest.mark.parametrize(
    ("n", "sizes"),
    [
        (1, [1]),
        (2, [2]),
        (3, [2, 1]),
        (37, [32, 4, 1]),
        (511, [256, 128, 64, 32, 16, 8, 4, 2, 1]),
        (MAX_ROWS_PER_STATEMENT + 3, [MAX_ROWS_PER_STATEMENT, 2, 1]),
    ],
)
def test_statements_hold_powers_of_two_of_rows_in_order(n: int, sizes: list[int]) -> None:
    """So an insert has few distinct statements, each prepared once and kept by sqlite3."""
    rows = [(i, str(i)) for i in range(n)]
    parts = multi_row(INSERT, rows)
    assert [len(args) // 2 for _, args, _ in parts] == sizes
    assert [v for _, args, _ in parts for v in args] == [v for row in rows for v in row]
    again = multi_row(INSERT, [(i, "x") for i in range(n)])
    assert all(a[0] is b[0] for a, b in zip(parts, again, strict=True)), "the same statement text"


def test_many_rows_all_or_none(tmp_path: Path) -> None:
    async def main() -> None:
        db = SQLiteDatabase(str(tmp_path / "t.db"))
        await db.connect()
        try:
            await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            n = 2 * MAX_ROWS_PER_STATEMENT + 7
            rows = [(i, f"v{i}") for i in range(n)] + [(3, "duplicate, ignored")]
            await db.executemany(INSERT, rows)
            got = await db.fetch("SELECT COUNT(*) AS n, MAX(id) AS top FROM t")
            assert got == [{"n": n, "top": n - 1}]
            assert (await db.fetch("SELECT v FROM t WHERE id = 3")) == [{"v": "v3"}]
            # a row the table refuses in the last statement takes back every row before it
            bad = [(n + i, f"v{i}") for i in range(2 * MAX_ROWS_PER_STATEMENT)] + [(10**6, None)]
            with pytest.raises(Exception, match="NOT NULL"):
                await db.executemany(INSERT, bad)
            assert (await db.fetch("SELECT COUNT(*) AS n FROM t")) == [{"n": n}]
        finally:
            await db.close()

    asyncio.run(main())
