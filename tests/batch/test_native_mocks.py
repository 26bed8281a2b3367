"""A batch handed to a provider's own batch API by ``hedge serve``'s worker, end to end: the real
native clients (``hedge.batch.native``) against the openai- and anthropic-style mocks' batch APIs,
every line answered once and booked at the batch price."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Mock, start_mock
from hedge.batch.store import BatchStore
from hedge.batch.worker import BatchWorker
from hedge.gateway.runtime import Runtime

from .test_scheduler import DAY, NOON, FakeClock, add_batch, gateway_config, run_to_rest, started

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-test"}


@pytest.fixture(scope="module")
def mocks(logs: Path) -> Iterator[dict[str, Mock]]:
    up = {style: start_mock(style, logs, "--batch-polls", "2") for style in MODELS}
    yield up
    for m in up.values():
        m.stop()


@pytest.fixture(params=sorted(MODELS))
def mock(request: pytest.FixtureRequest, mocks: dict[str, Mock]) -> Mock:
    return mocks[str(request.param)]


@pytest.fixture
async def runtime(mock: Mock, tmp_path: Path) -> AsyncIterator[Runtime]:
    config: dict[str, Any] = gateway_config(mock, tmp_path, model=MODELS[mock.style])
    up = config["providers"]["up"]
    up["style"], up["batch"] = mock.style, True
    if mock.style != "openai":
        up["base_url"] = mock.url
    config["models"]["chat"]["deployments"][0]["price"]["batch_discount"] = 0.8  # 0.8/1.6: below off-peak
    rt = await started(config, FakeClock(NOON))
    yield rt
    await rt.close()


async def test_a_batch_runs_on_the_upstreams_batch_api_at_the_batch_price(
    runtime: Runtime, mock: Mock
) -> None:
    clock = FakeClock(NOON)
    store = BatchStore(runtime.db)
    batch = await add_batch(runtime, 5, 2 * DAY, NOON)
    worker = BatchWorker(runtime, clock)  # the default: the real native clients
    await run_to_rest(worker)
    assert (await store.counts(batch.id)).by_state == {"running": 5}  # handed over in one submission
    for _ in range(10):  # the mock ends a batch after two retrievals
        clock.now += runtime.config.batch.native_poll_s
        await run_to_rest(worker)
        done = await store.get_batch(batch.id)
        if done is not None and done.status == "completed":
            break
    else:
        raise AssertionError("the native batch never completed")
    counts = await store.counts(batch.id)
    assert counts.by_state == {"succeeded": 5}
    assert 0 < counts.cost_usd == pytest.approx(counts.baseline_cost_usd * 0.2)
    await runtime.ledger.flush()
    rows = await runtime.db.fetch(
        "SELECT status, cost_usd, route FROM hedge_requests WHERE batch_id = ?", (batch.id,)
    )
    assert len(rows) == 5 and {r["status"] for r in rows} == {200}
    assert all("native_batch" in r["route"] for r in rows)
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(counts.cost_usd)
