"""The native lane: a batch whose deadline leaves a provider's batch API its 24 hours, and whose
lines cost less there, is handed to it in one submission, polled, and its lines answered and
booked at the batch price; lines it could not run go back to be scheduled. Against an in-process
stand-in with the native clients' interface (``hedge.batch.lanes.NativeClient``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import Mock
from hedge.batch.lanes import NativeSupport
from hedge.batch.store import BatchStore
from hedge.batch.worker import BatchWorker
from hedge.config import ProviderConfig
from hedge.gateway.runtime import Runtime
from hedge.providers.base import Usage
from hedge.transport import Transport

from .test_scheduler import DAY, NOON, TEN_PM, FakeClock, add_batch, gateway_config, run_to_rest, started


@dataclass(frozen=True)
class Line:
    custom_id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Progress:
    status: str
    completed: int = 0
    failed: int = 0
    total: int = 0


@dataclass(frozen=True)
class Result:
    custom_id: str
    status: int | None
    body: dict[str, Any]
    usage: Usage | None = None
    retryable: bool = False


class FakeBatches:
    """A provider's batch API: it ends when told to; line 0 is refused, line 1 fails retryably."""

    def __init__(self) -> None:
        self.lines: list[Line] = []
        self.status = "running"
        self.cancelled = False
        self.submissions = 0
        self.polls = 0

    async def submit(self, lines: Sequence[Any]) -> str:
        self.submissions += 1
        self.lines = list(lines)
        return "upstream_1"

    async def poll(self, upstream_id: str) -> Progress:
        assert upstream_id == "upstream_1"
        self.polls += 1
        return Progress(self.status)

    async def results(self, upstream_id: str) -> list[Result]:
        out = []
        for i, line in enumerate(self.lines):
            if self.cancelled:
                out.append(Result(line.custom_id, None, {"error": {"code": "batch_cancelled"}}, None, True))
            elif i == 0:
                out.append(Result(line.custom_id, 400, {"error": {"message": "no", "code": "bad"}}))
            elif i == 1:
                out.append(Result(line.custom_id, 503, {"error": {"message": "busy"}}, None, True))
            else:
                body = {"object": "chat.completion", "model": line.body["model"], "choices": []}
                out.append(Result(line.custom_id, 200, body, Usage(1000, 500, 0)))
        return out

    async def cancel(self, upstream_id: str) -> None:
        self.cancelled = True
        self.status = "cancelled"


@pytest.fixture
def fake() -> FakeBatches:
    return FakeBatches()


@pytest.fixture
def support(fake: FakeBatches) -> NativeSupport:
    def clients(transport: Transport, name: str, config: ProviderConfig) -> FakeBatches | None:
        return fake if name == "up" else None

    return NativeSupport(clients, Line)


@pytest.fixture
async def runtime(mock: Mock, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Runtime]:
    config = gateway_config(mock, tmp_path)
    config["models"]["chat"]["deployments"][0]["price"]["batch_discount"] = 0.8  # 0.8/1.6: below off-peak
    rt = await started(config, clock)
    yield rt
    await rt.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


async def test_a_batch_goes_native_and_is_booked_at_the_batch_price(
    runtime: Runtime, clock: FakeClock, fake: FakeBatches, support: NativeSupport
) -> None:
    store = BatchStore(runtime.db)
    batch = await add_batch(runtime, 4, 2 * DAY, NOON)
    worker = BatchWorker(runtime, clock, native=support)
    await run_to_rest(worker)
    assert fake.submissions == 1 and len(fake.lines) == 4
    assert {line.body["model"] for line in fake.lines} == {"gpt-4o-mini"}  # the upstream model
    assert (await store.counts(batch.id)).by_state == {"running": 4}
    clock.now += 30  # batch.native_poll_s
    await run_to_rest(worker)  # still running upstream: nothing changes, nothing is resubmitted
    assert fake.submissions == 1 and fake.polls == 1
    assert (await store.counts(batch.id)).by_state == {"running": 4}

    fake.status = "ended"
    await run_to_rest(worker)
    assert fake.polls == 1  # not again before native_poll_s
    clock.now += 30
    await run_to_rest(worker)
    counts = await store.counts(batch.id)
    # Line 1 failed retryably: it is scheduled again, interactively, in the off-peak window.
    assert counts.by_state == {"failed": 1, "succeeded": 2, "pending": 1}
    assert counts.cost_usd == pytest.approx(2 * (1000 * 0.8 + 500 * 1.6) / 1e6)
    assert counts.baseline_cost_usd == pytest.approx(2 * (1000 * 4.0 + 500 * 8.0) / 1e6)
    await runtime.ledger.flush()
    rows = await runtime.db.fetch(
        "SELECT status, cost_usd, route FROM hedge_requests WHERE batch_id = ? ORDER BY status", (batch.id,)
    )
    assert [r["status"] for r in rows] == [200, 200, 400]
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(counts.cost_usd)
    assert "native_batch" in rows[0]["route"]

    clock.now = TEN_PM
    await run_to_rest(worker)
    done = await store.get_batch(batch.id)
    assert done is not None and done.status == "completed" and fake.submissions == 1
    assert (await store.counts(batch.id)).by_state == {"failed": 1, "succeeded": 3}


async def test_a_deadline_under_a_day_is_not_sent_native(
    runtime: Runtime, clock: FakeClock, fake: FakeBatches, support: NativeSupport
) -> None:
    batch = await add_batch(runtime, 2, DAY - 60, NOON)
    await run_to_rest(BatchWorker(runtime, clock, native=support))
    assert fake.submissions == 0
    assert (await BatchStore(runtime.db).counts(batch.id)).by_state == {"pending": 2}  # waits for 22:00


async def test_cancelling_a_native_batch_cancels_it_upstream(
    runtime: Runtime, clock: FakeClock, fake: FakeBatches, support: NativeSupport
) -> None:
    store = BatchStore(runtime.db)
    batch = await add_batch(runtime, 3, 2 * DAY, NOON)
    worker = BatchWorker(runtime, clock, native=support)
    await run_to_rest(worker)
    row = await store.get_batch(batch.id)
    assert row is not None and await store.cancel(row, clock.now)
    await run_to_rest(worker)
    await run_to_rest(worker)
    done = await store.get_batch(batch.id)
    assert fake.cancelled and done is not None and done.status == "cancelled"
    assert (await store.counts(batch.id)).by_state == {"cancelled": 3}
