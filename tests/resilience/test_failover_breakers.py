"""Failover, Retry-After, circuit breakers and the retry budget, through the gateway and as units."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from conftest import MASTER_KEY, Gateway, Mock, start_gateway, start_mock
from hedge.config import BreakerConfig, Price, ProviderConfig, ResilienceConfig, RetryBudgetConfig, Timeouts
from hedge.errors import UpstreamError
from hedge.providers.openai import OpenAIAdapter
from hedge.record import RouteStep, render_route
from hedge.resilience.breaker import Breaker, State
from hedge.resilience.failover import Failover
from hedge.routing.deployment import Deployment

MESSAGES: list[Any] = [{"role": "user", "content": "hello failover"}]


@pytest.fixture(scope="module")
def mocks(logs: Path) -> Iterator[dict[str, Mock]]:
    started = {name: start_mock("openai", logs) for name in ("a", "b", "c")}
    yield started
    for m in started.values():
        m.stop()


@pytest.fixture(autouse=True)
def _reset(mocks: dict[str, Mock]) -> Iterator[None]:
    yield
    for m in mocks.values():
        m.reset()


@pytest.fixture(scope="module")
def gw(mocks: dict[str, Mock], logs: Path) -> Iterator[Gateway]:
    providers = {
        n: {"style": "openai", "base_url": f"{m.url}/v1", "api_key": f"sk-{n}"} for n, m in mocks.items()
    }
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": providers,
        "models": {
            "ab": {
                "strategy": "ordered",
                "deployments": [{"provider": "a", "model": "m-a"}, {"provider": "b", "model": "m-b"}],
            },
            "solo": {"deployments": [{"provider": "c", "model": "m-c"}]},
            "a-then-c": {"deployments": [{"provider": "a", "model": "m-a2"}], "fallbacks": ["solo"]},
        },
        "resilience": {
            "max_attempts": 4,
            "backoff": {"base_ms": 20, "max_ms": 200},
            "max_retry_wait_s": 3,
            "breaker": {"failures": 3, "cooldown_s": 1.0},
            "retry_budget": {"ratio": 1.0, "min_per_s": 100},
        },
    }
    gateway = start_gateway(config, logs)
    yield gateway
    gateway.stop()


@pytest.fixture
def sdk(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)


def test_failover_to_next_deployment_on_5xx(sdk: openai.OpenAI, mocks: dict[str, Mock]) -> None:
    mocks["a"].configure(fail_first=1, fail_status=503)
    raw = sdk.chat.completions.with_raw_response.create(model="ab", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "m-b says: hello failover"
    assert raw.headers["x-hedge-attempts"] == "2"
    assert raw.headers["x-hedge-route"] == "a/m-a=upstream_unavailable, b/m-b=ok"
    assert raw.headers["x-hedge-provider"] == "b"


def test_fallback_alias_after_own_deployments(sdk: openai.OpenAI, mocks: dict[str, Mock]) -> None:
    mocks["a"].configure(fail_first=1, fail_status=500)
    raw = sdk.chat.completions.with_raw_response.create(model="a-then-c", messages=MESSAGES)
    assert raw.headers["x-hedge-route"] == "a/m-a2=upstream_error, c/m-c=ok"


def test_client_errors_are_not_retried(sdk: openai.OpenAI, mocks: dict[str, Mock]) -> None:
    mocks["a"].configure(fail_first=1, fail_status=400)
    before = mocks["b"].stats()["requests"]
    with pytest.raises(openai.BadRequestError) as exc:
        sdk.chat.completions.create(model="ab", messages=MESSAGES)
    assert exc.value.response.headers["x-hedge-attempts"] == "1"
    assert mocks["b"].stats()["requests"] == before


def test_retry_after_is_honoured(sdk: openai.OpenAI, mocks: dict[str, Mock]) -> None:
    mocks["c"].configure(fail_first=1, fail_status=429, retry_after=1)
    raw = sdk.chat.completions.with_raw_response.create(model="solo", messages=MESSAGES)
    assert raw.headers["x-hedge-attempts"] == "2"
    first, second = mocks["c"].stats()["request_times"][-2:]
    assert second - first >= 0.95, "the retry waited for the provider's Retry-After"


def test_retry_after_longer_than_allowed_wait_is_returned(sdk: openai.OpenAI, mocks: dict[str, Mock]) -> None:
    mocks["c"].configure(fail_first=1, fail_status=429, retry_after=30)
    with pytest.raises(openai.RateLimitError) as exc:
        sdk.chat.completions.create(model="solo", messages=MESSAGES)
    assert exc.value.response.headers["retry-after"] == "30"
    assert mocks["c"].stats()["requests"] == 1


def test_breaker_opens_then_probe_closes_it(sdk: openai.OpenAI, mocks: dict[str, Mock], gw: Gateway) -> None:
    healthy = sdk.chat.completions.with_raw_response.create(model="ab", messages=MESSAGES)
    assert healthy.headers["x-hedge-provider"] == "a", "a success resets the consecutive-failure count"
    mocks["a"].reset()
    mocks["a"].configure(fail_rate=1.0, fail_status=500)
    for _ in range(8):
        raw = sdk.chat.completions.with_raw_response.create(model="ab", messages=MESSAGES)
        assert raw.headers["x-hedge-provider"] == "b"
    assert mocks["a"].stats()["requests"] == 3, "no traffic reaches a deployment whose breaker is open"
    assert "circuit_open" in raw.headers["x-hedge-route"]
    mocks["a"].configure(fail_rate=0.0)
    time.sleep(1.1)
    raw = sdk.chat.completions.with_raw_response.create(model="ab", messages=MESSAGES)
    assert raw.headers["x-hedge-route"] == "a/m-a=ok", "the half-open probe succeeded and closed the breaker"
    log = gw.log.read_text()
    assert "breaker a/m-a: closed -> open" in log
    assert "breaker a/m-a: open -> half_open" in log
    assert "breaker a/m-a: half_open -> closed" in log


def test_stream_failover_before_first_token_is_invisible(sdk: openai.OpenAI, mocks: dict[str, Mock]) -> None:
    mocks["a"].configure(fail_first=1, fail_mode="early-disconnect")
    stream = sdk.chat.completions.create(model="ab", messages=MESSAGES, stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "m-b says: hello failover"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert mocks["a"].stats()["streams_cancelled"] == 1
    mocks["a"].configure(fail_first=1, fail_status=502, fail_mode="status")
    raw = sdk.chat.completions.with_raw_response.create(model="ab", messages=MESSAGES, stream=True)
    assert raw.headers["x-hedge-route"].startswith("a/m-a=upstream_error")
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse()) == "m-b says: hello failover"


# ---- units, with an injected clock: nothing here waits ----


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _dep(name: str) -> Deployment:
    adapter = OpenAIAdapter(name, ProviderConfig(style="openai", base_url="http://x"))
    return Deployment(name, "m", adapter, Price(), 1.0, Timeouts())


def test_breaker_state_machine() -> None:
    clock = FakeClock()
    b = Breaker("d", BreakerConfig(failures=2, cooldown_s=10), clock)
    assert b.blocked_reason() is None
    b.failure()
    assert b.state is State.CLOSED
    b.failure()
    assert b.state is State.OPEN and b.blocked_reason() == "circuit_open"
    b.success()
    assert b.state is State.OPEN, "a late success from before the opening does not close it"
    clock.now += 10
    assert b.blocked_reason() is None and b.state is State.HALF_OPEN
    assert b.blocked_reason() == "circuit_half_open", "only one probe at a time"
    b.failure()
    assert b.state is State.OPEN
    clock.now += 10
    assert b.blocked_reason() is None
    b.success()
    assert b.state is State.CLOSED
    b.failure(retry_after=5)
    assert b.blocked_reason() == "cooling_down"
    clock.now += 5
    assert b.blocked_reason() is None


def test_retry_budget_caps_extra_load() -> None:
    clock = FakeClock()
    config = ResilienceConfig(
        max_attempts=3,
        retry_budget=RetryBudgetConfig(ratio=0.2, min_per_s=0, window_s=10),
        max_retry_wait_s=0,
    )
    failover = Failover(config, clock=clock, sleep=clock.sleep)
    deps = [_dep("x"), _dep("y"), _dep("z")]
    calls = 0

    async def attempt(dep: Deployment) -> str:
        nonlocal calls
        calls += 1
        if dep.provider == "x":
            raise UpstreamError("down", status=502)
        return "ok"

    async def run_all() -> None:
        for _ in range(100):
            failover.breakers.clear()
            with contextlib.suppress(UpstreamError):
                await failover.run(deps, attempt, [])

    asyncio.run(run_all())
    retries = calls - 100
    assert retries <= 20, f"retries added {retries}% extra load, budget is 20%"
    assert retries >= 19


def test_backoff_rounds_honour_retry_after_and_stop_at_max_wait() -> None:
    clock = FakeClock()
    config = ResilienceConfig(max_attempts=5, max_retry_wait_s=4)
    failover = Failover(config, clock=clock, sleep=clock.sleep)
    dep = _dep("only")
    outcomes = [
        UpstreamError("slow down", status=429, retry_after=2),
        UpstreamError("boom", status=502),
        "ok",
    ]

    async def attempt(d: Deployment) -> str:
        result = outcomes.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    trace: list[RouteStep] = []
    assert asyncio.run(failover.run([dep], attempt, trace)) == "ok"
    assert clock.slept[0] >= 2.0, "first wait covers the Retry-After"
    assert clock.slept[1] <= 0.2, "second round: plain jittered backoff"
    assert render_route(trace) == "only/m=429, only/m=502, only/m=ok"


def test_breaker_state_is_shared_through_redis(logs: Path) -> None:
    import secrets

    from conftest import REDIS_URL

    dead, alive = start_mock("openai", logs), start_mock("openai", logs)
    dead.configure(fail_rate=1.0, fail_status=500)
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "dead": {"style": "openai", "base_url": f"{dead.url}/v1", "api_key": "sk-x"},
            "alive": {"style": "openai", "base_url": f"{alive.url}/v1", "api_key": "sk-x"},
        },
        "models": {
            "m": {
                "strategy": "ordered",
                "deployments": [{"provider": "dead", "model": "d"}, {"provider": "alive", "model": "a"}],
            }
        },
        "resilience": {"breaker": {"failures": 2, "cooldown_s": 60}},
        "state": {"redis_url": REDIS_URL, "redis_prefix": f"hedge-test-{secrets.token_hex(4)}:"},
    }
    first, second = start_gateway(config, logs), start_gateway(config, logs)
    try:
        one = openai.OpenAI(base_url=first.base_url, api_key=MASTER_KEY, max_retries=0)
        two = openai.OpenAI(base_url=second.base_url, api_key=MASTER_KEY, max_retries=0)
        for _ in range(2):
            one.chat.completions.create(model="m", messages=MESSAGES)
        assert dead.stats()["requests"] == 2
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "from another replica" not in second.log.read_text():
            time.sleep(0.1)
        raw = two.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
        assert raw.headers["x-hedge-route"] == "dead/d=circuit_open, alive/a=ok"
        assert dead.stats()["requests"] == 2, "the second replica never tried the dead deployment"
        assert "breaker dead/d: closed -> open (from another replica)" in second.log.read_text()
    finally:
        for proc in (first, second, dead, alive):
            proc.stop()


def test_shared_breaker_snapshots_never_go_backwards() -> None:
    import secrets

    import orjson
    import redis.asyncio as redis

    from conftest import REDIS_URL
    from hedge.resilience.shared import SharedBreakers

    async def scenario() -> dict[str, object]:
        prefix = f"hedge-test-{secrets.token_hex(4)}:"
        shared = SharedBreakers(REDIS_URL, prefix, Failover(ResilienceConfig()))
        newer = {"state": "open", "opened_at": 1.0, "cooldown_until": 0.0, "changed_at": 200.0}
        older = {"state": "closed", "opened_at": 0.0, "cooldown_until": 0.0, "changed_at": 100.0}
        await shared._write("d/m", newer)
        await shared._write("d/m", older)  # e.g. a slower replica's stale view
        client = redis.from_url(REDIS_URL)
        stored: dict[str, object] = orjson.loads(await client.hget(prefix + "breakers", "d/m"))
        await client.delete(prefix + "breakers")
        await client.aclose()
        await shared.close()
        return stored

    assert asyncio.run(scenario())["state"] == "open"
