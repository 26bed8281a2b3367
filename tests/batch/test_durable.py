"""The batch lane survives its gateways: a restart (clean or a crash) resumes a batch and answers
every ``custom_id`` exactly once; two gateways on one PostgreSQL split a batch's lines between
them without running a line twice; every line is booked in the ledger with its ``batch_id``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import asyncpg
import openai
import pytest

from conftest import MASTER_KEY, PG_BASE, Gateway, Mock, start_gateway

from .test_batches_sdk import chat_line, config, jsonl, lines_of, wait_final


def client_of(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)


def start_batch(client: openai.OpenAI, n: int) -> str:
    data = jsonl([chat_line(f"line-{i}", f"question {i}") for i in range(n)])
    uploaded = client.files.create(file=("in.jsonl", data), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    ).id


def wait_for(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def answered_once(client: openai.OpenAI, batch: Any, n: int) -> None:
    assert batch.status == "completed"
    assert batch.request_counts.completed == n and batch.request_counts.failed == 0
    output = lines_of(client, batch.output_file_id)
    ids = [line["custom_id"] for line in output]
    assert sorted(ids) == sorted(f"line-{i}" for i in range(n))  # each once, none lost
    for line in output:
        number = line["custom_id"].removeprefix("line-")
        assert f"question {number}" in line["response"]["body"]["choices"][0]["message"]["content"]


@pytest.mark.parametrize("stop", ["terminate", "kill"])
def test_a_restart_mid_batch_answers_every_line_once(
    mock: Mock, logs: Path, tmp_path: Path, stop: str
) -> None:
    n = 16
    cfg = config(mock, max_concurrency=2, lease_s=1.0)
    cfg["state"] = {"dir": str(tmp_path / "state"), "flush_interval_s": 0.2}
    mock.configure(latency_ms=150)
    first = start_gateway(cfg, logs)
    try:
        client = client_of(first)
        batch_id = start_batch(client, n)
        wait_for(lambda: client.batches.retrieve(batch_id).request_counts.completed >= 3)  # type: ignore[union-attr]
    finally:
        if stop == "kill":
            first.proc.kill()  # a crash: its claimed lines come back when their lease lapses
            first.proc.wait()
        else:
            first.stop()  # a clean stop: lines in flight are given back at once
    states = dict(_sqlite(tmp_path / "state" / "hedge.db", batch_id))
    assert states.get("pending", 0) + states.get("running", 0) > 0  # stopped midway
    assert states.get("running", 0) == (0 if stop == "terminate" else states.get("running", 0))
    mock.configure(latency_ms=0)
    second = start_gateway(cfg, logs)
    try:
        client = client_of(second)
        answered_once(client, wait_final(client, batch_id), n)
    finally:
        second.stop()
    rows = _sqlite_rows(tmp_path / "state" / "hedge.db", batch_id)
    assert sorted(cid for cid, status in rows if status == 200) == sorted(f"line-{i}" for i in range(n))


def _sqlite(path: Path, batch_id: str) -> list[tuple[str, int]]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT state, COUNT(*) FROM hedge_batch_lines WHERE batch_id = ? GROUP BY state", (batch_id,)
        ).fetchall()


def _sqlite_rows(path: Path, batch_id: str) -> list[tuple[str, int]]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        lines = conn.execute(
            "SELECT custom_id, result FROM hedge_batch_lines WHERE batch_id = ?", (batch_id,)
        ).fetchall()
        booked = conn.execute(
            "SELECT COUNT(*) FROM hedge_requests WHERE batch_id = ? AND status = 200", (batch_id,)
        ).fetchone()[0]
    assert booked >= len(lines)  # every line answered was booked (a crash may have booked a rerun too)
    return [(cid, json.loads(result)["response"]["status_code"]) for cid, result in lines]


def test_two_gateways_on_postgresql_split_a_batch(mock: Mock, logs: Path, pg_schema: str) -> None:
    n = 40
    cfg = config(mock, max_concurrency=2)
    cfg["state"] = {"database_url": f"{PG_BASE}?search_path={pg_schema}", "flush_interval_s": 0.2}
    mock.configure(latency_ms=100)
    a = start_gateway(cfg, logs)
    b = start_gateway(cfg, logs)
    try:
        batch_id = start_batch(client_of(a), n)
        on_b = client_of(b)
        done = wait_final(on_b, batch_id)  # created on one, read on the other: one database
        answered_once(on_b, done, n)
        by_replica = asyncio.run(
            _pg(
                pg_schema,
                "SELECT replica, COUNT(*) AS n FROM hedge_batch_lines WHERE batch_id = $1 GROUP BY replica",
                batch_id,
            )
        )
        assert len(by_replica) == 2 and sum(r["n"] for r in by_replica) == n

        def booked() -> bool:
            rows = asyncio.run(
                _pg(
                    pg_schema,
                    "SELECT COUNT(*) AS n FROM hedge_requests WHERE batch_id = $1 AND status = 200",
                    batch_id,
                )
            )
            return int(rows[0]["n"]) == n

        wait_for(booked)
    finally:
        mock.configure(latency_ms=0)
        a.stop()
        b.stop()


async def _pg(schema: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(PG_BASE, server_settings={"search_path": schema})
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def test_a_stop_while_an_answer_is_booked_gives_the_line_back(mock: Mock, tmp_path: Path) -> None:
    """A stop can land where a line cannot give itself back (here: while its answer is booked in
    the ledger); the worker then gives back every claim it still holds, so no line stays running."""
    from hedge.batch.store import BatchStore
    from hedge.batch.worker import BatchWorker

    from .test_scheduler import DAY, TEN_PM, FakeClock, add_batch, gateway_config, started

    clock = FakeClock(TEN_PM)  # the cheap window: the batch runs at once
    rt = await started(gateway_config(mock, tmp_path), clock)
    booking = asyncio.Event()
    flush = rt.ledger.flush

    async def stuck_flush() -> None:
        booking.set()
        await asyncio.Event().wait()

    try:
        batch = await add_batch(rt, 3, DAY, clock.now)
        rt.ledger.flush = stuck_flush  # type: ignore[method-assign]
        worker = BatchWorker(rt, clock)
        await worker.tick()
        await asyncio.wait_for(booking.wait(), 20)
        await asyncio.wait_for(worker.close(), 20)
        counts = (await BatchStore(rt.db).counts(batch.id)).by_state
        assert counts.get("running", 0) == 0 and counts.get("pending", 0) == 3
    finally:
        rt.ledger.flush = flush  # type: ignore[method-assign]
        await rt.close()
