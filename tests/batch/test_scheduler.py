"""When a batch runs: the scheduler's arithmetic (table-driven), and the worker following its plan
on a fake clock, against an OpenAI-style mock, with lines booked at the price in force."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import MASTER_KEY, Mock
from hedge.batch import scheduler
from hedge.batch.store import BatchRow, BatchStore, NewLine, new_id
from hedge.batch.worker import BatchWorker
from hedge.config import parse_config
from hedge.gateway.runtime import Runtime, open_runtime
from hedge.store.counters import MemoryCounters

NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC).timestamp()
TEN_PM = datetime(2026, 12, 2, 22, 0, tzinfo=UTC).timestamp()
DAY = 86400.0


def offpeak(t: float) -> float:
    """A line's cost: 1.0 by day, 0.25 from 22:00 to 06:00 UTC."""
    hour = datetime.fromtimestamp(t, UTC).hour
    return 0.25 if hour >= 22 or hour < 6 else 1.0


@pytest.mark.parametrize(
    ("deadline", "needed", "start", "run_now", "reason"),
    [
        (NOON + DAY, 600, TEN_PM, False, "waiting for a cheaper window at 2026-12-02 22:00 UTC"),
        (TEN_PM + 600, 600, TEN_PM, False, "waiting"),  # exactly enough time left in the window
        (TEN_PM + 599, 600, NOON, True, "running now: no cheaper window in time"),
        (NOON + 3600, 600, NOON, True, "running now"),
        (NOON + 300, 600, NOON, True, "deadline close: running at once"),
        (NOON + 600, 600, NOON, True, "deadline close"),
    ],
)
def test_plan(deadline: float, needed: float, start: float, run_now: bool, reason: str) -> None:
    plan = scheduler.plan(NOON, deadline, needed, offpeak)
    assert (plan.start_at, plan.run_now) == (start, run_now)
    assert plan.reason.startswith(reason)
    assert plan.now_cost_per_line_usd == 1.0
    assert plan.cost_per_line_usd == (1.0 if run_now else 0.25)


def test_plan_starts_now_inside_the_cheap_window() -> None:
    plan = scheduler.plan(TEN_PM + 30, TEN_PM + DAY, 600, offpeak)
    assert plan.run_now and plan.start_at == TEN_PM + 30 and plan.cost_per_line_usd == 0.25


def test_needed_seconds_uses_throughput_and_margin() -> None:
    assert scheduler.needed_seconds(100, 2.0, 4, 2.0, 600) == 100 * 2.0 / 4 * 2.0 + 600
    assert scheduler.needed_seconds(10, 1.0, 0, 1.0, 0) == 10.0  # never divides by zero


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def gateway_config(mock: Mock, tmp_path: Path, **deployment: Any) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {"up": {"style": "openai", "base_url": f"{mock.url}/v1", "api_key": "sk-up"}},
        "models": {
            "chat": {
                "deployments": [
                    {
                        "provider": "up",
                        "model": "gpt-4o-mini",
                        "price": {"input": 4.0, "output": 8.0},
                        "price_windows": [
                            {"window": "22:00-06:00", "price": {"input": 1.0, "output": 2.0}},
                        ],
                        **deployment,
                    }
                ]
            }
        },
        "state": {"dir": str(tmp_path), "flush_interval_s": 60},
        "batch": {"max_concurrency": 4, "min_margin_s": 600, "assumed_line_s": 1.0, "max_share": 0.3},
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


async def started(config: dict[str, Any], clock: FakeClock) -> Runtime:
    rt = await open_runtime(parse_config(config))
    rt.router.clock = lambda: datetime.fromtimestamp(clock.now, UTC)  # prices in force at the fake time
    rt.counters = rt.quotas.counters = MemoryCounters(clock)  # one fake minute of quota throughout
    return rt


@pytest.fixture
async def runtime(mock: Mock, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Runtime]:
    rt = await started(gateway_config(mock, tmp_path), clock)
    yield rt
    await rt.close()


async def add_batch(rt: Runtime, lines: int, window_s: float, now: float) -> BatchRow:
    batch = BatchRow(
        id=new_id("batch_"),
        owner="",
        key_id=None,
        endpoint="/v1/chat/completions",
        model="chat",
        input_file_id="file-x",
        completion_window=f"{int(window_s)}s",
        status="validating",
        created_at=now,
        deadline=now + window_s,
    )
    body = {"model": "chat", "messages": [{"role": "user", "content": "one two three"}]}
    await BatchStore(rt.db).create_batch(batch, [NewLine(i, f"l{i}", body) for i in range(lines)])
    return batch


async def run_to_rest(worker: BatchWorker) -> None:
    """Tick until the worker has nothing more to start."""
    for _ in range(50):
        await worker.tick()
        if not worker._lines:
            return
        await worker.idle()
    raise AssertionError("the worker never came to rest")


async def test_a_batch_waits_for_the_cheaper_window_then_runs_in_it(
    runtime: Runtime, clock: FakeClock
) -> None:
    store = BatchStore(runtime.db)
    batch = await add_batch(runtime, 4, DAY, NOON)
    worker = BatchWorker(runtime, clock)
    await run_to_rest(worker)
    waiting = await store.get_batch(batch.id)
    assert waiting is not None and waiting.status == "in_progress"
    assert waiting.plan is not None and not waiting.plan["run_now"]
    assert waiting.plan["start_at"] == TEN_PM
    assert (await store.counts(batch.id)).by_state == {"pending": 4}

    clock.now = TEN_PM - 61
    await run_to_rest(worker)
    assert (await store.counts(batch.id)).by_state == {"pending": 4}

    clock.now = TEN_PM
    await run_to_rest(worker)
    done = await store.get_batch(batch.id)
    counts = await store.counts(batch.id)
    assert done is not None and done.status == "completed" and counts.by_state == {"succeeded": 4}
    # Booked at the off-peak price; the baseline is the price outside the window: a quarter of it.
    assert counts.cost_usd > 0
    assert counts.baseline_cost_usd == pytest.approx(4 * counts.cost_usd)

    await runtime.ledger.flush()
    rows = await runtime.db.fetch(
        "SELECT cost_usd, tags FROM hedge_requests WHERE batch_id = ? AND status = 200", (batch.id,)
    )
    assert len(rows) == 4
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(counts.cost_usd)
    assert all("batch" in r["tags"] for r in rows)


@pytest.mark.parametrize(
    ("window_s", "runs_now"),
    [
        (10 * 3600 + 5 * 60, True),  # the window opens 5 min before the deadline: under the margin
        (10 * 3600 + 15 * 60, False),  # 15 min in the window is enough: wait for it
        (300, True),  # the deadline is closer than the margin: at once
    ],
)
async def test_the_deadline_decides_whether_to_wait(
    runtime: Runtime, clock: FakeClock, window_s: float, runs_now: bool
) -> None:
    store = BatchStore(runtime.db)
    batch = await add_batch(runtime, 2, window_s, NOON)
    await run_to_rest(BatchWorker(runtime, clock))
    counts = await store.counts(batch.id)
    assert (counts.by_state == {"succeeded": 2}) is runs_now
    assert (counts.by_state == {"pending": 2}) is not runs_now


async def test_open_lines_expire_at_the_deadline(runtime: Runtime, clock: FakeClock) -> None:
    store = BatchStore(runtime.db)
    batch = await add_batch(runtime, 3, DAY, NOON)
    worker = BatchWorker(runtime, clock)
    await run_to_rest(worker)  # waits for 22:00
    clock.now = NOON + DAY
    await run_to_rest(worker)
    done = await store.get_batch(batch.id)
    assert done is not None and done.status == "expired" and done.error_file_id is not None
    assert (await store.counts(batch.id)).by_state == {"expired": 3}


async def test_batch_lines_keep_to_their_share_of_the_rpm(
    mock: Mock, tmp_path: Path, clock: FakeClock
) -> None:
    clock.now = TEN_PM  # the cheap window: run at once
    rt = await started(gateway_config(mock, tmp_path, rpm=10), clock)
    try:
        store = BatchStore(rt.db)
        batch = await add_batch(rt, 10, DAY, clock.now)
        worker = BatchWorker(rt, clock)
        await run_to_rest(worker)
        assert (await store.counts(batch.id)).by_state == {"succeeded": 3, "pending": 7}  # 30% of 10
        # Interactive traffic still has the other 70% of the minute.
        for _ in range(7):
            answer = await serve(rt)
            assert answer.body
        await run_to_rest(worker)
        assert (await store.counts(batch.id)).by_state == {"succeeded": 3, "pending": 7}
        clock.now += 60  # a new minute: the batch takes its share again
        await run_to_rest(worker)
        assert (await store.counts(batch.id)).by_state == {"succeeded": 6, "pending": 4}
    finally:
        await rt.close()


async def test_batch_yields_to_interactive_traffic(mock: Mock, tmp_path: Path, clock: FakeClock) -> None:
    clock.now = TEN_PM
    rt = await started(gateway_config(mock, tmp_path, rpm=10), clock)
    try:
        for _ in range(9):  # interactive traffic takes 9 of the minute's 10 requests
            await serve(rt)
        store = BatchStore(rt.db)
        batch = await add_batch(rt, 5, DAY, clock.now)
        await run_to_rest(BatchWorker(rt, clock))
        assert (await store.counts(batch.id)).by_state == {"succeeded": 1, "pending": 4}
    finally:
        await rt.close()


async def test_batch_lines_keep_to_their_share_of_connections(
    mock: Mock, tmp_path: Path, clock: FakeClock
) -> None:
    config = gateway_config(mock, tmp_path)
    config["providers"]["up"]["max_connections"] = 10
    rt = await started(config, clock)
    try:
        worker = BatchWorker(rt, clock)
        dep = rt.router.aliases["chat"].deployments[0]
        for _ in range(3):
            assert await worker.capacity.room(dep)
            await worker.capacity.started(dep)
        assert not await worker.capacity.room(dep)  # 30% of 10 connections
        dep.stats.in_flight = 10  # interactive requests hold every connection
        assert not await worker.capacity.room(dep)
    finally:
        await rt.close()


async def serve(rt: Runtime) -> Any:
    from hedge.gateway.pipeline import Completion, Exchange

    exchange = Exchange(rt, "chat", new_id("req_"), {})
    body = {"model": "chat", "messages": [{"role": "user", "content": "interactive"}]}
    answer = await exchange.serve(body, None)
    assert isinstance(answer, Completion)
    return answer


def test_boundaries_are_where_windows_open_and_close() -> None:
    from hedge.windows import parse_window

    windows = [parse_window("22:00-06:00"), parse_window("09:00-24:00", "Europe/Zurich")]
    found = sorted(scheduler.boundaries(windows, NOON, NOON + DAY))
    stamps = [datetime.fromtimestamp(t, UTC).strftime("%H:%M") for t in found]
    # 22:00 and 06:00 UTC; 09:00 and midnight in Zurich (UTC+1 in December): 08:00 and 23:00 UTC.
    assert stamps == ["22:00", "23:00", "06:00", "08:00"]
    plan = scheduler.plan(NOON, NOON + DAY, 600, offpeak, found)
    assert plan.start_at == TEN_PM and not plan.run_now
