"""What stalls the event loop is measured: loop lag, collector pauses, ledger flushes.

The watch itself is driven in-process (a stall is made by holding the loop, a collection by
``gc.collect``); the served histograms are read from a real ``hedge serve`` at ``/metrics``.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import MASTER_KEY, Gateway, start_gateway, start_mock
from hedge.heap import YOUNG_THRESHOLD
from hedge.observe.loop import LoopWatch


async def _until(condition: object, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_a_held_loop_and_a_collection_are_measured() -> None:
    lags: list[float] = []
    pauses: list[tuple[int, float]] = []

    async def main() -> None:
        watch = LoopWatch(lags.append, lambda gen, s: pauses.append((gen, s)), interval_s=0.01)
        watch.start()
        try:
            await _until(lambda: lags)  # the watch is running
            held = time.perf_counter()
            while time.perf_counter() - held < 0.05:  # hold the loop for 50 ms
                pass
            await _until(lambda: max(lags) >= 0.03)
            gc.collect()
            assert any(gen == 2 and seconds > 0 for gen, seconds in pauses)
        finally:
            await watch.close()
        count = len(pauses)
        gc.collect()
        assert len(pauses) == count  # closed: no longer told

    asyncio.run(main())


def test_serve_settles_its_heap() -> None:
    """``hedge.heap.settle`` (what ``hedge serve`` runs once started) freezes the start-up heap and
    collects the young generation less often; run in a child so this process keeps its collector."""
    code = (
        "import gc; from hedge import heap; heap.settle(); "
        "print(gc.get_freeze_count() > 0, gc.get_threshold()[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", str(YOUNG_THRESHOLD)]


@pytest.fixture(scope="module")
def gateway(logs: Path) -> Iterator[Gateway]:
    mock = start_mock("openai", logs)
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {"up": {"style": "openai", "base_url": f"{mock.url}/v1", "api_key": "sk-up-0001"}},
        "models": {"chat": {"deployments": [{"provider": "up", "model": "small"}]}},
        "state": {"flush_interval_s": 0.05},
        "pricing": {"on_missing": "zero"},
    }
    gw = start_gateway(config, logs)
    try:
        yield gw
    finally:
        gw.stop()
        mock.stop()


def _counts(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.endswith("_count")
    }


def test_stall_histograms_are_served(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)
    client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hello"}])

    async def served() -> None:
        await _until(
            lambda: (
                (c := _counts(gateway.url)).get("hedge_ledger_flush_seconds_count", 0) >= 1
                and c.get("hedge_event_loop_lag_seconds_count", 0) >= 1
            )
        )

    asyncio.run(served())
    text = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    assert "# TYPE hedge_gc_pause_seconds histogram" in text
