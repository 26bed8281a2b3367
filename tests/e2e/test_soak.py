"""The redundancy acceptance run: a 30%-failing provider and one killed and restarted mid-run.

Thousands of requests through the real SDK must all succeed, and every breaker
transition must be in the gateway's log.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import openai

from conftest import MASTER_KEY, start_gateway, start_mock

TOTAL = int(os.environ.get("HEDGE_SOAK_REQUESTS", "2000"))


def test_soak_with_flaky_and_killed_provider(logs: Path) -> None:
    flaky = start_mock("openai", logs, "--fail-rate", "0.3", "--seed", "3")
    killable = start_mock("openai", logs)
    steady = start_mock("openai", logs)
    mocks = {"flaky": flaky, "killable": killable, "steady": steady}
    config: dict[str, Any] = {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            n: {"style": "openai", "base_url": f"{m.url}/v1", "api_key": f"sk-{n}"} for n, m in mocks.items()
        },
        "models": {
            "soak": {"deployments": [{"provider": n, "model": f"model-{n}", "weight": 1} for n in mocks]},
        },
        "resilience": {"max_attempts": 4, "breaker": {"failures": 3, "cooldown_s": 0.5}},
    }
    gw = start_gateway(config, logs)
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0, timeout=30)
    errors: list[str] = []
    served: Counter[str] = Counter()
    done = 0
    quarter, half = asyncio.Event(), asyncio.Event()

    async def worker(queue: asyncio.Queue[int]) -> None:
        nonlocal done
        while not queue.empty():
            i = queue.get_nowait()
            try:
                raw = await client.chat.completions.with_raw_response.create(
                    model="soak", messages=[{"role": "user", "content": f"request {i}"}], max_tokens=8
                )
                served[raw.headers["x-hedge-provider"]] += 1
            except openai.APIError as exc:
                errors.append(f"{i}: {exc}")
            done += 1
            if done >= TOTAL // 4:
                quarter.set()
            if done >= TOTAL // 2:
                half.set()

    async def chaos() -> None:
        nonlocal killable
        await quarter.wait()
        os.kill(killable.proc.pid, signal.SIGKILL)
        killable.proc.wait()
        await half.wait()
        killable = await asyncio.to_thread(start_mock, "openai", logs, port=killable.port)

    async def main() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(TOTAL):
            queue.put_nowait(i)
        await asyncio.gather(chaos(), *(worker(queue) for _ in range(16)))
        await client.close()

    try:
        asyncio.run(main())
    finally:
        gw.stop()
        for m in (flaky, killable, steady):
            m.stop()
    assert errors == [], f"{len(errors)} client-visible errors, first: {errors[:3]}"
    assert sum(served.values()) == TOTAL
    assert served["killable"] > 0 and served["steady"] > 0 and served["flaky"] > 0
    log = gw.log.read_text()
    assert "breaker killable/model-killable: closed -> open" in log
    assert "breaker killable/model-killable: half_open -> closed" in log, "the restarted provider is back"
    for line in (ln for ln in log.splitlines() if "breaker " in ln):
        assert " -> " in line
