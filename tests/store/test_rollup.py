"""Hourly rollups: kept by the ledger's writes (a trigger), exact at the window's ragged ends, not
fooled by a duplicate row, rebuilt from the ledger; spend and the dashboard summary read them."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from hedge.record import Charges, RequestRecord
from hedge.store import rollup
from hedge.store.analytics import Analytics
from hedge.store.db import Database
from hedge.store.ledger import Ledger

HOUR = 3600


def _rec(i: int, started_at: float, **kw: Any) -> RequestRecord:
    base: dict[str, Any] = {
        "request_id": f"req_{i}",
        "endpoint": "chat",
        "alias": "chat",
        "provider": "cheap" if i % 2 else "premium",
        "model": "m",
        "prompt_tokens": 100,
        "completion_tokens": 10,
        "cached_tokens": 40,
        "cache_write_tokens": 20,
        "reasoning_tokens": 4,
        "charges": Charges(input=0.004, cache_read=0.001, cache_write=0.002, output=0.003, reasoning=0.0005),
        "cost_usd": 0.0105,
        "latency_ms": 100.0 + i,
        "attempts": 1,
        "started_at": started_at,
    }
    base.update(kw)
    return RequestRecord(**base)


def test_spans_split_whole_hours_from_ragged_ends() -> None:
    since, until = 10 * HOUR + 600, 14 * HOUR + 60
    assert rollup.spans(since, until) == [
        rollup.Span(since, 11 * HOUR, False),
        rollup.Span(11 * HOUR, 14 * HOUR, True),
        rollup.Span(14 * HOUR, until, False),
    ]
    assert rollup.spans(10 * HOUR + 1, 10 * HOUR + 20) == [rollup.Span(10 * HOUR + 1, 10 * HOUR + 20, False)]
    whole = rollup.spans(10 * HOUR, 12 * HOUR)
    assert whole[0] == rollup.Span(10 * HOUR, 12 * HOUR, True)
    assert rollup.spans(since, until, covered=12 * HOUR) == [
        rollup.Span(since, 12 * HOUR, False),
        rollup.Span(12 * HOUR, 14 * HOUR, True),
        rollup.Span(14 * HOUR, until, False),
    ]
    assert rollup.spans(since, until, covered=math.inf) == [rollup.Span(since, until, False)]


async def _write(db: Database, records: list[RequestRecord]) -> None:
    ledger = Ledger(db, flush_interval_s=60)
    for r in records:
        ledger(r)
    await ledger.close()


async def test_spend_and_summary_read_the_rollup_exactly(db: Database) -> None:
    now = time.time()
    base = math.floor(now / HOUR) * HOUR - 5 * HOUR  # five whole hours ago
    records = [_rec(i, base + (i % 5) * HOUR + 30 * i) for i in range(20)]
    records.append(_rec(50, base + HOUR + 5, status=502, cost_usd=0.0, charges=Charges()))
    records.append(_rec(51, base - 1200, key_id="key_a", team="t1"))  # a partial hour before `since`
    records[7].key_id, records[7].team = "key_a", "t1"
    records.append(_rec(52, now - 1, latency_ms=None))  # the current, partial hour
    await _write(db, records)
    await _write(db, [records[3]])  # written again (a replayed spool): counted once

    ledger, analytics = Ledger(db), Analytics(db)
    since = base - 600  # ragged: 600 s of the hour before `base` count, record 51 (at -1200) does not
    rows, total = await ledger.spend("provider", since)
    counted = [r for r in records if r.started_at >= since and r.status < 400]
    assert total.requests == len(counted) == 21
    assert total.input_tokens == 100 * 21 and total.output_tokens == 10 * 21
    assert (total.cached_tokens, total.cache_write_tokens, total.reasoning_tokens) == (840, 420, 84)
    assert total.cost_usd == pytest.approx(0.0105 * 21)
    assert total.charges["cache_write"] == pytest.approx(0.002 * 21)
    assert total.charges["reasoning"] == pytest.approx(0.0005 * 21)
    assert {r.group: r.requests for r in rows} == {"cheap": 10, "premium": 11}
    days = (await ledger.spend("day", since))[0]
    assert sum(d.requests for d in days) == 21
    keys = (await ledger.spend("key", since))[0]
    assert {r.group: r.requests for r in keys} == {"key_a": 1, "master key": 20}
    teams = (await ledger.spend("team", since))[0]
    assert {r.group: r.cost_usd for r in teams} == pytest.approx({"t1": 0.0105, "-": 0.0105 * 20})

    summary = await analytics.summary(since)
    assert summary["requests"] == 22 and summary["errors"] == 1
    assert summary["cache_write_tokens"] == 440 and summary["reasoning_tokens"] == 88
    assert summary["charges_usd"]["cache_read"] == pytest.approx(0.001 * 21)
    latencies = [r.latency_ms for r in records if r.started_at >= since and r.latency_ms is not None]
    assert summary["avg_latency_ms"] == pytest.approx(sum(latencies) / len(latencies), abs=1e-3)
    assert summary["first_ts"] == pytest.approx(min(r.started_at for r in records if r.started_at >= since))

    for by in ("provider", "key"):
        series = await analytics.timeseries(since, by, bucket=HOUR)
        assert sum(series["requests"]) == 22 and sum(series["errors"]) == 1
        assert sum(series["cost_usd"]) == pytest.approx(0.0105 * 21)
        by_hour = [
            sum(1 for r in records if max(b, since) <= r.started_at < b + HOUR) for b in series["buckets"]
        ]
        assert series["requests"] == by_hour
    keyed = await analytics.timeseries(since, "key", bucket=2 * HOUR)
    assert {g["group"]: g["total_requests"] for g in keyed["series"]} == {"key_a": 1, "master key": 21}

    # The whole hours come from the rollup: rows deleted from the ledger still count until a rebuild.
    middle = base + 2 * HOUR
    await db.execute("DELETE FROM hedge_requests WHERE ts >= ? AND ts < ?", [middle, middle + HOUR])
    assert (await ledger.spend("provider", since))[1].requests == 21
    await db.transaction(rollup.rebuild_statements(db.dialect))
    assert (await ledger.spend("provider", since))[1].requests == 17
    # Hours before what the rollups cover (a migration builds the last 35 days) come from the ledger.
    await db.execute(f"UPDATE {rollup.STATE_TABLE} SET covered_from = ?", [base + 3 * HOUR])
    for r in rollup.ROLLUPS:
        await db.execute(f"DELETE FROM {r.table} WHERE hour < ?", [base + 3 * HOUR])
    assert (await ledger.spend("provider", since))[1].requests == 17
    assert sum(d.requests for d in (await ledger.spend("day", since))[0]) == 17
    assert (await analytics.summary(since))["requests"] == 18
    assert sum((await analytics.timeseries(since, "model", bucket=HOUR))["requests"]) == 18


async def test_rebuild_matches_what_the_writes_kept(db: Database) -> None:
    now = time.time()
    records = [_rec(i, now - i * 1000, key_id=f"key_{i % 3}", team=None if i % 2 else "t") for i in range(40)]
    await _write(db, records)
    queries = [f"SELECT * FROM {r.table} ORDER BY hour, {', '.join(r.keys)}, failed" for r in rollup.ROLLUPS]
    kept = [await db.fetch(q) for q in queries]
    assert all(rows and sum(int(r["requests"]) for r in rows) == 40 for rows in kept)
    await db.transaction(rollup.rebuild_statements(db.dialect))
    rebuilt = [await db.fetch(q) for q in queries]
    for before, after in zip(kept, rebuilt, strict=True):
        assert len(after) == len(before)
        for a, b in zip(before, after, strict=True):
            assert a.keys() == b.keys()
            for column in a:
                assert a[column] == pytest.approx(b[column]), column
