"""The ledger's lookups by team and by experiment still use their indexes after those indexes were
made partial (migration 12 keeps only the rows that have a team or an experiment), on SQLite and on
PostgreSQL: a planner that stopped using them would turn every budget check into a table scan."""

from __future__ import annotations

from typing import Any

import pytest

from hedge.store.db import Database

LOOKUPS = [
    (
        "hedge_requests_team_ts",
        "SELECT SUM(cost_usd) AS cost FROM hedge_requests WHERE team = ? AND ts >= ?",
        ["t1", 0.0],
    ),
    (
        "hedge_requests_experiment",
        "SELECT COUNT(*) AS n FROM hedge_requests WHERE experiment = ? AND ts >= ?",
        ["x1", 0.0],
    ),
]


async def _plan(db: Database, sql: str, args: list[Any]) -> str:
    if db.dialect == "sqlite":
        rows = await db.fetch(f"EXPLAIN QUERY PLAN {sql}", args)
        return " ".join(str(r["detail"]) for r in rows)
    # An empty table is cheapest to scan: ask for the plan the planner makes once it is not.
    async with db._acquire() as conn, conn.transaction():  # type: ignore[attr-defined]
        await conn.execute("SET LOCAL enable_seqscan = off")
        rows = await conn.fetch(f"EXPLAIN {db._sql(sql)}", *args)  # type: ignore[attr-defined]
    return " ".join(str(r[0]) for r in rows)


@pytest.mark.parametrize(("index", "sql", "args"), LOOKUPS, ids=["team", "experiment"])
async def test_lookups_use_the_partial_indexes(db: Database, index: str, sql: str, args: list[Any]) -> None:
    assert index in await _plan(db, sql, args)


async def test_the_indexes_hold_only_rows_that_have_a_value(db: Database) -> None:
    if db.dialect == "sqlite":
        rows = await db.fetch(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN (?, ?)",
            ["hedge_requests_team_ts", "hedge_requests_experiment"],
        )
    else:
        rows = await db.fetch(
            "SELECT indexname AS name, indexdef AS sql FROM pg_indexes "
            "WHERE indexname IN (?, ?) AND schemaname = current_schema()",
            ["hedge_requests_team_ts", "hedge_requests_experiment"],
        )
    where = {r["name"]: str(r["sql"]).lower().split(" where ", 1)[-1].strip("()") for r in rows}
    assert where == {
        "hedge_requests_team_ts": "team is not null",
        "hedge_requests_experiment": "experiment is not null",
    }
