"""What experiments keep in the state database, on SQLite and PostgreSQL: feedback (the latest
value wins), per-arm aggregates joined with the ledger, shadow pairs and their daily spend, one
weight change per decision slot, and the ledger's shadow line and shadow-free key spend."""

from __future__ import annotations

import time
from typing import Any

import pytest

from hedge.record import RequestRecord
from hedge.store.db import Database
from hedge.store.experiments import ExperimentStore
from hedge.store.ledger import _ADDED_LATER, SHADOW_GROUP, Ledger, _row, _upgraded


def _rec(rid: str, cost: float, **fields: Any) -> RequestRecord:
    rec = RequestRecord(rid, "chat", fields.pop("alias", "chat"), provider="p", model="m", **fields)
    rec.cost_usd, rec.latency_ms, rec.started_at = cost, 10.0, 1000.0
    return rec


async def _book(db: Database, *records: RequestRecord) -> Ledger:
    ledger = Ledger(db)
    for rec in records:
        ledger(rec)
    await ledger.flush()
    return ledger


async def test_feedback_and_arm_aggregates(db: Database) -> None:
    await _book(
        db,
        _rec("a1", 1.0, key_id="k1", experiment="x", arm="control"),
        _rec("a2", 3.0, key_id="k1", experiment="x", arm="control"),
        _rec("b1", 0.5, key_id="k1", experiment="x", arm="cheap"),
        _rec("s1", 9.0, experiment=None, shadow=True),
    )
    store = ExperimentStore(db)
    assert await store.request_owner("a1") == (True, "k1")
    assert await store.request_owner("s1") == (False, None)  # a shadow copy is nobody's to rate
    assert await store.request_owner("nope") == (False, None)
    await store.put_feedback("a1", "ok", 0.0, "k1", 1.0)
    await store.put_feedback("a1", "ok", 1.0, "k1", 2.0)  # replaces the first value
    await store.put_feedback("a2", "ok", 1.0, "k1", 2.0)
    await store.put_feedback("b1", "ok", 0.25, "k1", 2.0)
    await store.put_feedback("b1", "other", 1.0, "k1", 2.0)  # another metric does not count
    cheap, control = await store.arms("x", "ok")  # by arm name
    assert (control.arm, control.requests, control.cost_usd, control.n, control.total) == (
        "control",
        2,
        4.0,
        2,
        2.0,
    )
    assert control.binary and control.latency_ms == 10.0
    assert (cheap.arm, cheap.requests, cheap.n, cheap.total, cheap.squares) == ("cheap", 1, 1, 0.25, 0.0625)
    assert not cheap.binary


async def test_shadow_pairs_summary_and_daily_spend(db: Database) -> None:
    store = ExperimentStore(db)
    for i, (score, cost, ts) in enumerate([(1.0, 0.1, 100.0), (0.0, 0.2, 200.0), (None, 0.3, 300.0)]):
        await store.add_pair(
            {
                "shadow_request_id": f"s{i}",
                "primary_request_id": f"p{i}",
                "ts": ts,
                "alias": "chat",
                "target": "mini",
                "grader": "exact",
                "status": 200 if score is not None else 502,
                "score": score,
                "grade_error": None if score is not None else "candidate failed: boom\x00",
                "primary_answer": "a" * 100_000,
                "shadow_answer": "b",
                "primary_cost_usd": 1.0,
                "shadow_cost_usd": cost,
                "primary_latency_ms": 5.0,
                "shadow_latency_ms": None,
            }
        )
    assert await store.shadow_spent("chat", "mini", 150.0) == pytest.approx(0.5)
    assert await store.shadow_spent("chat", "other", 0.0) == 0.0
    [summary] = await store.pair_summary()
    assert (summary.pairs, summary.graded, summary.errors, summary.total) == (3, 2, 1, 1.0)
    assert (
        summary.binary and summary.shadow_cost_usd == pytest.approx(0.6) and summary.shadow_latency_ms is None
    )
    latest = await store.pairs("chat", limit=1)
    assert latest[0]["shadow_request_id"] == "s2" and "\x00" not in latest[0]["grade_error"]
    assert len((await store.pairs(limit=5))[2]["primary_answer"]) <= 64 * 1024 + 100


async def test_one_weight_change_per_slot(db: Database) -> None:
    store = ExperimentStore(db)
    first = await store.add_change("x", 7, "h1", {"control": 70.0, "b": 30.0}, {"target": "b"}, 1.0)
    second = await store.add_change("x", 7, "h1", {"control": 90.0, "b": 10.0}, {"target": "control"}, 2.0)
    assert first.weights == second.weights == {"control": 70.0, "b": 30.0}  # the first decision holds
    await store.add_change("x", 8, "h1", {"control": 50.0, "b": 50.0}, {"target": "b"}, 3.0)
    await store.add_change("x", 9, "h2", {"control": 10.0, "b": 90.0}, {}, 4.0)  # another config
    assert [c.slot for c in await store.changes("x", "h1")] == [8, 7]
    assert [c.weights["b"] for c in await store.changes("x", "h2")] == [90.0]


async def test_shadow_spend_is_its_own_line_and_never_a_keys(db: Database) -> None:
    ledger = await _book(
        db,
        _rec("r1", 1.0, key_id="k1", alias="chat"),
        _rec("r2", 2.0, key_id="k1", alias="mini"),
        _rec("s1", 0.25, key_id="k1", alias="mini", shadow=True, tags=frozenset({"shadow"})),
    )
    for by in ("alias", "provider", "key", "tag", "day"):
        rows, total = await ledger.spend(by, 0.0)
        groups = {r.group: r for r in rows}
        assert groups[SHADOW_GROUP].requests == 1 and groups[SHADOW_GROUP].cost_usd == 0.25, by
        assert total.requests == 3 and total.cost_usd == pytest.approx(3.25), by
    rows, _ = await ledger.spend("alias", 0.0)
    assert {r.group: r.cost_usd for r in rows} == {"mini": 2.0, "chat": 1.0, SHADOW_GROUP: 0.25}
    assert await ledger.key_spend("k1", 0.0) == pytest.approx(3.0)


def test_rows_spooled_by_older_versions_get_the_new_columns() -> None:
    row = _row(_rec("r", 1.0, experiment="x", arm="a", shadow=True))
    later = len(_ADDED_LATER)
    assert row[-later + 1 : -later + 4] == (1, "x", "a")
    assert _upgraded(row[:-later]) == (*row[:-later], *_ADDED_LATER)  # before the route
    assert _upgraded(row[:-later])[-later + 1 : -later + 4] == (0, None, None)  # no shadow, no arm
    assert _upgraded(row) == row


async def test_the_shadow_line_holds_where_spend_reads_the_rollups(db: Database) -> None:
    """Whole hours come from the hourly rollups, which count a shadow copy in its alias's group:
    the report still shows it on its own line only."""
    hour = (int(time.time()) // 3600 - 3) * 3600  # a whole hour the rollups cover
    records = (
        _rec("r1", 1.0, alias="chat"),
        _rec("r2", 2.0, key_id="k1", alias="mini"),
        _rec("s1", 0.25, alias="mini", shadow=True),
        _rec("s2", 0.5, alias="lone", shadow=True),  # an alias only shadow copies went to
    )
    for rec in records:
        rec.started_at = hour + 60
    ledger = await _book(db, *records)
    await db.execute("UPDATE hedge_rollup_state SET covered_from = ? WHERE id = 1", (hour - 3600,))
    for by in ("alias", "provider", "day"):
        rows, total = await ledger.spend(by, hour - 7200)
        groups = {r.group: r for r in rows}
        assert groups[SHADOW_GROUP].requests == 2 and groups[SHADOW_GROUP].cost_usd == 0.75, by
        assert total.requests == 4 and total.cost_usd == pytest.approx(3.75), by
    rows, _ = await ledger.spend("alias", hour - 7200)
    assert {r.group: r.cost_usd for r in rows} == {"mini": 2.0, "chat": 1.0, SHADOW_GROUP: 0.75}
