"""Hedged requests: a slow first deployment is raced by the next one; the first answer wins and the
other attempt is cancelled, booked as billed, and shown as ``hedge_lost`` on the route.

Against a slow and a fast mock (the mock's ``latency_ms`` knob). Nothing here asserts a timing:
the slow mock would take 30 s, so the answer coming from the fast one is the proof."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from conftest import MASTER_KEY, Mock, start_gateway
from hedge.config import parse_config
from hedge.gateway.hedging import Race
from hedge.gateway.pipeline import Completion, Exchange, _hedge_delay
from hedge.gateway.runtime import Runtime, open_runtime
from hedge.gateway.stream import Stream
from hedge.record import Outcome, RequestRecord, RouteStep, render_route

SLOW_MS = 30_000
BODY = {"model": "chat", "messages": [{"role": "user", "content": "Say hello."}]}


def _config(slow: Mock, fast: Mock, tmp: Path, **resilience: Any) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "slow": {"style": "openai", "base_url": f"{slow.url}/v1", "api_key": "sk-a"},
            "fast": {"style": "openai", "base_url": f"{fast.url}/v1", "api_key": "sk-b"},
        },
        "models": {
            "chat": {
                "strategy": "ordered",
                "hedge_after_ms": 50,
                "deployments": [
                    {"provider": "slow", "model": "m1", "price": {"input": 1.0, "output": 2.0}},
                    {"provider": "fast", "model": "m2", "price": {"input": 3.0, "output": 6.0}},
                ],
            }
        },
        "resilience": {"breaker": {"failures": 1_000_000}, **resilience},
        "state": {"dir": str(tmp)},
    }


@pytest.fixture
async def runtime(cheap: Mock, premium: Mock, tmp_path: Path) -> AsyncIterator[Runtime]:
    cheap.configure(latency_ms=SLOW_MS)
    rt = await open_runtime(parse_config(_config(cheap, premium, tmp_path)))
    try:
        yield rt
    finally:
        await rt.close()


async def _until(check: Callable[[], bool], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the hedge to go out")
        await asyncio.sleep(0.01)


def _records(rt: Runtime) -> list[RequestRecord]:
    seen: list[RequestRecord] = []
    rt.sinks.append(seen.append)
    return seen


async def test_a_whole_answer_comes_from_the_fast_deployment_and_the_slow_one_is_cancelled(
    runtime: Runtime,
) -> None:
    seen = _records(runtime)
    result = await Exchange(runtime, "chat", "req_hedge", {}).serve(dict(BODY), None)
    assert isinstance(result, Completion)
    assert (result.provider, result.model) == ("fast", "m2")
    rec = seen[0]
    assert rec.route == [RouteStep("slow/m1", Outcome.HEDGE_LOST), RouteStep("fast/m2", Outcome.OK)]
    assert render_route(rec.route) == "slow/m1=hedge_lost, fast/m2=ok"
    assert rec.attempts == 2 and (rec.provider, rec.model) == ("fast", "m2")
    # Both are booked: the winner by its usage, the cancelled one by its prompt estimate.
    assert rec.lost_cost_usd > 0 and rec.lost_prompt_tokens > 0
    assert rec.cost_usd == pytest.approx(result.cost_usd)
    assert rec.cost_usd > rec.lost_cost_usd
    # The cost split by token class still adds up, the lost attempt's part included.
    assert rec.charges.total == pytest.approx(rec.cost_usd)
    assert rec.lost_charges.total == pytest.approx(rec.lost_cost_usd)
    assert runtime.router.stats["slow/m1"].in_flight == 0  # its attempt ended, nothing left waiting


async def test_a_stream_comes_from_the_one_that_sends_its_first_token(runtime: Runtime) -> None:
    seen = _records(runtime)
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    result = await Exchange(runtime, "chat", "req_hedge_stream", {}).serve(body, None)
    assert isinstance(result, Stream)
    assert result.provider == "fast"
    async for _ in result:
        pass
    await result.close()
    rec = seen[0]
    assert [(s.target, s.outcome) for s in rec.route] == [
        ("slow/m1", Outcome.HEDGE_LOST),
        ("fast/m2", Outcome.OK),
    ]
    assert rec.status == 200 and rec.lost_cost_usd > 0
    assert rec.cost_usd > rec.lost_cost_usd
    assert rec.charges.total == pytest.approx(rec.cost_usd)


async def test_no_hedge_without_retry_budget(cheap: Mock, premium: Mock, tmp_path: Path) -> None:
    cheap.configure(latency_ms=200)
    config = parse_config(_config(cheap, premium, tmp_path, retry_budget={"ratio": 0, "min_per_s": 0}))
    rt = await open_runtime(config)
    try:
        seen = _records(rt)
        result = await Exchange(rt, "chat", "req_no_budget", {}).serve(dict(BODY), None)
        assert isinstance(result, Completion) and result.provider == "slow"
        assert seen[0].route == [
            RouteStep("fast/m2", Outcome.RETRY_BUDGET_EXHAUSTED),
            RouteStep("slow/m1", Outcome.OK),
        ] or seen[0].route == [
            RouteStep("slow/m1", Outcome.OK),
            RouteStep("fast/m2", Outcome.RETRY_BUDGET_EXHAUSTED),
        ]
        assert seen[0].attempts == 1 and seen[0].lost_cost_usd == 0
    finally:
        await rt.close()


async def test_a_failing_hedge_leaves_the_first_answer(cheap: Mock, premium: Mock, tmp_path: Path) -> None:
    cheap.configure(latency_ms=300)
    premium.configure(fail_rate=1.0, fail_status=503)
    rt = await open_runtime(parse_config(_config(cheap, premium, tmp_path)))
    try:
        seen = _records(rt)
        result = await Exchange(rt, "chat", "req_hedge_fails", {}).serve(dict(BODY), None)
        assert isinstance(result, Completion) and result.provider == "slow"
        outcomes = {(s.target, s.outcome) for s in seen[0].route}
        assert outcomes == {("slow/m1", Outcome.OK), ("fast/m2", Outcome.FAILED)}
        assert seen[0].lost_cost_usd == 0
    finally:
        await rt.close()


async def test_the_client_leaving_cancels_both_lanes(runtime: Runtime, premium: Mock) -> None:
    premium.configure(latency_ms=SLOW_MS)
    seen = _records(runtime)
    task = asyncio.ensure_future(Exchange(runtime, "chat", "req_gone", {}).serve(dict(BODY), None))
    await _until(lambda: runtime.router.stats["fast/m2"].in_flight > 0)  # the hedge has gone out
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert {s.outcome for s in seen[0].route} == {Outcome.CANCELLED}
    assert seen[0].status == 499
    assert runtime.router.stats["fast/m2"].in_flight == runtime.router.stats["slow/m1"].in_flight == 0


def test_the_hedge_delay() -> None:
    from hedge.routing.stats import DeploymentStats

    class Dep:
        stats = DeploymentStats()

    dep: Any = Dep()
    assert _hedge_delay(250, dep, False) == 0.25
    assert _hedge_delay("p95", dep, False) is None  # nothing observed yet: no hedge
    for ms in range(1, 101):
        dep.stats.end(float(ms), ttft_ms=float(ms) / 10)
    assert _hedge_delay("p95", dep, False) == pytest.approx(0.096)
    assert _hedge_delay("p95", dep, True) == pytest.approx(0.0096)


def test_race_claims() -> None:
    race = Race()
    assert not race.lost("a")
    assert race.claim("b") and not race.claim("a")
    assert race.lost("a") and not race.lost("b")


def test_a_bad_hedge_setting_is_a_config_error(cheap: Mock, premium: Mock, tmp_path: Path) -> None:
    config = _config(cheap, premium, tmp_path)
    config["models"]["chat"]["hedge_after_ms"] = -5
    with pytest.raises(Exception, match="hedge_after_ms"):
        parse_config(config, "<test>")


def test_hedged_over_http_with_the_sdk(cheap: Mock, premium: Mock, logs: Path, tmp_path: Path) -> None:
    cheap.configure(latency_ms=SLOW_MS)
    gw = start_gateway(_config(cheap, premium, tmp_path), logs)
    try:
        client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["x-hedge-provider"] == "fast"
        assert raw.headers["x-hedge-route"] == "slow/m1=hedge_lost, fast/m2=ok"
        with client.chat.completions.with_streaming_response.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        ) as resp:
            assert resp.headers["x-hedge-route"] == "slow/m1=hedge_lost, fast/m2=ok"
            assert "".join(resp.iter_lines())
    finally:
        gw.stop()
