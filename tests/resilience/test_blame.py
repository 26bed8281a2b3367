"""Resilience that blames the right thing: defensive Retry-After, 429s and bad keys are not outages,
and running out of local resources is not the upstream's fault.

Through real ``hedge serve`` and ``hedge mock`` processes, plus table-driven units of the pure parts.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import logging
import math
import os
import resource
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from conftest import MASTER_KEY, REDIS_URL, Gateway, Mock, start_gateway, start_mock
from hedge.config import BreakerConfig, Price, ProviderConfig, ResilienceConfig, RetryBudgetConfig, Timeouts
from hedge.errors import UpstreamError
from hedge.providers.errors import parse_retry_after, upstream_error
from hedge.providers.gemini import google_error
from hedge.providers.openai import OpenAIAdapter
from hedge.record import RouteStep
from hedge.resilience.breaker import Breaker, State
from hedge.resilience.failover import Failover
from hedge.routing.deployment import Deployment
from hedge.transport import Transport, network_error
from hedge.transport.http1 import ConnectError, ConnectTimeout, PoolTimeout, ProtocolError, ReadTimeout

MESSAGES: list[Any] = [{"role": "user", "content": "hello blame"}]
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
CAP_S = 2.0
"""``resilience.max_cooldown_s`` of the module's gateway: small, so a clamped cool-down passes quickly."""
FAR_FUTURE_DATE = "Wed, 21 Oct 2099 07:28:00 GMT"
NOW = 1_700_000_000.0


# ---- parse_retry_after: a table ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "ceiling", "expected"),
    [
        ({}, None, None),
        ({"retry-after": "5"}, None, 5.0),
        ({"retry-after": " 7 "}, None, 7.0),
        ({"retry-after": "1.5"}, None, 1.5),
        ({"retry-after": "0"}, None, 0.0),
        ({"retry-after": ""}, None, None),
        ({"retry-after": "inf"}, None, None),
        ({"retry-after": "Infinity"}, None, None),
        ({"retry-after": "-inf"}, None, None),
        ({"retry-after": "nan"}, None, None),
        ({"retry-after": "-5"}, None, None),
        ({"retry-after": "1e400"}, None, None),
        ({"retry-after": "garbage"}, None, None),
        ({"retry-after": "999999999"}, None, 999999999.0),
        ({"retry-after": "999999999"}, 300.0, 300.0),
        ({"retry-after": "5"}, 300.0, 5.0),
        ({"retry-after-ms": "1500"}, None, 1.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, None, 1.5),
        ({"retry-after-ms": "nan", "retry-after": "2"}, None, 2.0),
        ({"retry-after-ms": "inf"}, None, None),
        ({"retry-after-ms": "-100", "retry-after": "garbage"}, None, None),
        ({"retry-after-ms": "999999999999"}, 300.0, 300.0),
        ({"retry-after": email.utils.formatdate(NOW + 60, usegmt=True)}, None, 60.0),
        ({"retry-after": email.utils.formatdate(NOW - 60, usegmt=True)}, None, 0.0),
        ({"retry-after": email.utils.formatdate(NOW + 60).replace("+0000", "-0000")}, None, 60.0),
        ({"retry-after": FAR_FUTURE_DATE}, 300.0, 300.0),
        ({"retry-after": "Wed, 99 Foo 2099 99:99:99 GMT"}, None, None),
        ({"retry-after": "Mon, 01 Jan 99999 00:00:00 GMT"}, None, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], ceiling: float | None, expected: float | None) -> None:
    assert parse_retry_after(headers, ceiling=ceiling, now=NOW) == expected


@pytest.mark.parametrize("value", ["inf", "nan", "-5", "1e400", "garbage", FAR_FUTURE_DATE, "999999999"])
def test_upstream_error_with_any_retry_after_renders(value: str) -> None:
    """Building and rendering the client's error never raises, and its Retry-After is a sane integer."""
    exc = upstream_error("p", 429, {"retry-after": value}, "slow down")
    assert exc.status == 429
    header = exc.headers.get("retry-after")
    assert header is None or (header.isdigit() and int(header) >= 0)
    orjson.loads(exc.to_bytes())


@pytest.mark.parametrize("retry_after", [math.inf, -math.inf, math.nan, -3.0])
def test_upstream_error_ignores_a_retry_after_that_is_not_a_duration(retry_after: float) -> None:
    exc = UpstreamError("x", status=503, retry_after=retry_after)
    assert exc.retry_after is None and "retry-after" not in exc.headers


@pytest.mark.parametrize(
    ("delay", "expected"),
    [
        ("2.5s", 3.0),  # rounded up: a client back after 2 s of a 2.5 s delay is refused again
        ("infs", None),
        ("1e999s", None),
        ("nans", None),
        ("-3s", None),
        ("soon", None),
        (7, 7.0),
    ],
)
def test_gemini_retry_info_is_parsed_defensively(delay: object, expected: float | None) -> None:
    err = {
        "code": 429,
        "message": "quota",
        "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}],
    }
    exc = google_error("g", 429, {}, err)
    assert exc.status == 429 and exc.retry_after == expected


# ---- breakers and failover as units, on an injected clock -------------------------------------------


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


def _failover(clock: FakeClock, **changes: Any) -> Failover:
    settings: dict[str, Any] = {
        "max_attempts": 4,
        "max_retry_wait_s": 5,
        "breaker": BreakerConfig(failures=1, cooldown_s=60),
        "retry_budget": RetryBudgetConfig(ratio=1.0, min_per_s=1000),
        **changes,
    }
    return Failover(ResilienceConfig(**settings), clock=clock, sleep=clock.sleep)


def test_cool_downs_are_capped() -> None:
    clock = FakeClock()
    breaker = Breaker("d", BreakerConfig(failures=100), clock, max_cooldown_s=300)
    breaker.failure(retry_after=999999999)
    assert breaker.cooldown_until - clock.now == 300
    breaker.cool_down(math.inf)
    breaker.cool_down(math.nan)
    assert breaker.cooldown_until - clock.now == 300
    clock.now += 300
    assert breaker.blocked_reason() is None


def test_adopted_snapshots_are_clamped() -> None:
    """An absurd snapshot from another replica (or an older version) cannot hold a deployment for years."""
    clock = FakeClock()
    breaker = Breaker("d", BreakerConfig(failures=2, cooldown_s=30), clock, max_cooldown_s=300)
    wall = time.time()
    breaker.adopt({"state": "closed", "opened_at": 0.0, "cooldown_until": wall + 1e9, "changed_at": wall})
    assert 0 < breaker.cooldown_until - clock.now <= 301
    breaker.adopt({"state": "open", "opened_at": wall + 1e9, "cooldown_until": 0.0, "changed_at": wall + 1})
    assert breaker.state is State.OPEN
    clock.now += 301
    assert breaker.blocked_reason() is None, (
        "the opening time is clamped to now: one cooldown_s, not 31 years"
    )
    for bad in ({"state": "open", "cooldown_until": None}, {"state": "weird"}, {"changed_at": "nan"}):
        breaker.adopt(
            {"opened_at": 0.0, "cooldown_until": 0.0, "changed_at": wall + 2, "state": "open", **bad}
        )


def test_a_429_cools_down_but_never_opens_the_breaker() -> None:
    clock = FakeClock()
    failover = _failover(clock, max_attempts=3)
    dep = _dep("rl")

    async def attempt(d: Deployment) -> str:
        raise upstream_error("rl", 429, {"retry-after": "1"}, "slow down")

    async def run() -> None:
        for _ in range(5):
            with pytest.raises(UpstreamError) as exc:
                await failover.run([dep], attempt, [])
            assert exc.value.status == 429

    asyncio.run(run())
    breaker = failover.breaker(dep)
    assert breaker.state is State.CLOSED, "429s are not failures of health"
    assert clock.slept and all(s >= 1.0 for s in clock.slept), "each retry waited out the Retry-After"


def test_a_huge_retry_after_is_capped_for_the_deployment_and_the_client() -> None:
    clock = FakeClock()
    failover = _failover(clock, max_cooldown_s=300)
    dep = _dep("rl")

    async def attempt(d: Deployment) -> str:
        raise upstream_error("rl", 429, {"retry-after": "999999999"}, "slow down")

    with pytest.raises(UpstreamError) as exc:
        asyncio.run(failover.run([dep], attempt, []))
    assert exc.value.headers["retry-after"] == "300"
    assert failover.breaker(dep).cooldown_until - clock.now == 300


def test_a_401_fails_over_once_and_marks_the_deployment_misconfigured(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    failover = _failover(clock, breaker=BreakerConfig(failures=100, cooldown_s=60))
    locked, spare = _dep("locked"), _dep("spare")
    calls: list[str] = []
    spare_failures = [upstream_error("spare", 500, {}, "boom")]

    async def attempt(d: Deployment) -> str:
        calls.append(d.provider)
        if d is locked:
            raise upstream_error("locked", 401, {}, "Incorrect API key provided.")
        if spare_failures:
            raise spare_failures.pop()
        return "ok"

    caplog.set_level(logging.WARNING, logger="hedge.breaker")
    trace: list[RouteStep] = []
    assert asyncio.run(failover.run([locked, spare], attempt, trace)) == "ok"
    assert calls == ["locked", "spare", "spare"], (
        "the deployment with a bad key is not retried in the request"
    )
    assert asyncio.run(failover.run([locked, spare], attempt, [])) == "ok"
    assert failover.breaker(locked).misconfigured
    warnings = [r for r in caplog.records if "misconfigured" in r.getMessage()]
    assert len(warnings) == 1, "one warning per deployment, not one per request"


def test_a_403_on_every_deployment_ends_the_request_without_rounds() -> None:
    clock = FakeClock()
    failover = _failover(clock)
    deps = [_dep("one"), _dep("two")]
    calls = 0

    async def attempt(d: Deployment) -> str:
        nonlocal calls
        calls += 1
        raise upstream_error(d.provider, 403, {}, "forbidden")

    with pytest.raises(UpstreamError) as exc:
        asyncio.run(failover.run(deps, attempt, []))
    assert exc.value.code == "upstream_auth_error"
    assert calls == 2 and clock.slept == []


def _connector_error(code: int) -> ConnectError:
    return ConnectError(code, os.strerror(code))


LOCAL = (503, "gateway_resource_exhausted", False)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_connector_error(errno.EMFILE), LOCAL),
        (_connector_error(errno.ENFILE), LOCAL),
        (_connector_error(errno.ENOBUFS), LOCAL),
        (_connector_error(errno.ENOMEM), LOCAL),
        (OSError(errno.EMFILE, "Too many open files"), LOCAL),
        (ConnectionResetError(errno.ENOBUFS, "No buffer space available"), LOCAL),
        (PoolTimeout("no free connection"), LOCAL),
        # The upstream's (or its address's) fault: these keep blaming it.
        (_connector_error(errno.ECONNREFUSED), (502, "upstream_unreachable", True)),
        (_connector_error(errno.EHOSTUNREACH), (502, "upstream_unreachable", True)),
        (TimeoutError(), (504, "upstream_timeout", True)),
        (ConnectTimeout("connecting took too long"), (504, "upstream_timeout", True)),
        (ReadTimeout("silent"), (504, "upstream_timeout", True)),
        (ProtocolError("closed before the response was complete"), (502, "upstream_connection_error", True)),
        (ConnectionResetError(errno.ECONNRESET, "reset"), (502, "upstream_connection_error", True)),
    ],
)
def test_network_errors_blame_the_right_side(exc: BaseException, expected: tuple[int, str, bool]) -> None:
    err = network_error("p", exc)
    assert isinstance(err, UpstreamError) and err.retryable, "another deployment may still serve"
    assert (err.status, err.code, err.blame) == expected


def test_resource_exhaustion_from_the_transport_does_not_open_the_breaker() -> None:
    clock = FakeClock()
    failover = _failover(clock)
    starved, spare = _dep("starved"), _dep("spare")

    async def attempt(d: Deployment) -> str:
        if d is starved:
            raise network_error("starved", _connector_error(errno.EMFILE))
        return "ok"

    async def run() -> None:
        for _ in range(5):
            assert await failover.run([starved, spare], attempt, []) == "ok"

    asyncio.run(run())
    assert failover.breaker(starved).state is State.CLOSED


def test_a_full_connection_pool_is_the_gateway_s_problem() -> None:
    """Waiting for a pooled connection past the connect timeout is local: no blame, 503, try elsewhere."""

    async def scenario() -> BaseException:
        release = asyncio.Event()
        arrived = asyncio.Event()

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            arrived.set()
            await release.wait()
            writer.close()

        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        config = ProviderConfig(style="openai", base_url=f"http://127.0.0.1:{port}/v1", max_connections=1)
        transport = Transport({"p": config})
        adapter = OpenAIAdapter("p", config)
        request = adapter.chat_request({"messages": MESSAGES}, "m", False, False)
        timeouts = Timeouts(connect=0.2, read=30, total=30)
        first = asyncio.ensure_future(transport.open("p", request, timeouts))
        await asyncio.wait_for(arrived.wait(), 10)
        try:
            await transport.open("p", request, timeouts)
        except BaseException as exc:  # the error is what this test inspects
            caught: BaseException = exc
        else:
            raise AssertionError("the second request found a free connection")
        finally:
            release.set()
            first.cancel()
            await asyncio.gather(first, return_exceptions=True)
            await transport.close()
            server.close()
            await server.wait_closed()
        return caught

    err = asyncio.run(scenario())
    assert isinstance(err, UpstreamError)
    assert (err.status, err.code, err.blame) == (503, "gateway_resource_exhausted", False)


# ---- through real processes --------------------------------------------------------------------------


VALUES = {
    "inf": "inf",
    "nan": "nan",
    "neg": "-5",
    "huge": "999999999",
    "garbage": "garbage",
    "date": FAR_FUTURE_DATE,
}


@pytest.fixture(scope="module")
def started_mocks(logs: Path) -> Iterator[dict[str, Mock]]:
    started = {name: start_mock("openai", logs) for name in ("bad", "good", "solo", "locked")}
    started["locked"].configure(api_key="sk-the-right-one")
    yield started
    for m in started.values():
        m.stop()


@pytest.fixture
def mocks(started_mocks: dict[str, Mock]) -> Iterator[dict[str, Mock]]:
    """The module's mocks, well-behaved again after each test."""
    yield started_mocks
    for m in started_mocks.values():
        m.reset()


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"hedge-test-{secrets.token_hex(4)}:"


@pytest.fixture(scope="module")
def gw(started_mocks: dict[str, Mock], logs: Path, prefix: str) -> Iterator[Gateway]:
    providers = {
        n: {"style": "openai", "base_url": f"{m.url}/v1", "api_key": f"sk-{n}"}
        for n, m in started_mocks.items()
    }
    models: dict[str, Any] = {
        f"v-{name}": {
            "strategy": "ordered",
            "deployments": [{"provider": "bad", "model": f"m-{name}"}, {"provider": "good", "model": "m"}],
        }
        for name in VALUES
    }
    models["solo"] = {"deployments": [{"provider": "solo", "model": "m"}]}
    models["solo-huge"] = {"deployments": [{"provider": "bad", "model": "m-solo-huge"}]}
    models["auth"] = {
        "strategy": "ordered",
        "deployments": [{"provider": "locked", "model": "m"}, {"provider": "good", "model": "m2"}],
    }
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": providers,
        "models": models,
        "resilience": {
            "max_attempts": 4,
            "backoff": {"base_ms": 10, "max_ms": 50},
            "max_retry_wait_s": 1.5,
            "max_cooldown_s": CAP_S,
            "breaker": {"failures": 2, "cooldown_s": 60},
            "retry_budget": {"ratio": 1.0, "min_per_s": 100},
        },
        "state": {"redis_url": REDIS_URL, "redis_prefix": prefix},
    }
    models["seeded"] = {"deployments": [{"provider": "good", "model": "m-seeded"}]}
    # What an older version left behind: a 31-year cool-down in a hash without a TTL.
    client = redis.Redis.from_url(REDIS_URL)
    now = time.time()
    seed = {"state": "closed", "opened_at": 0.0, "cooldown_until": now + 999999999, "changed_at": now}
    client.hset(prefix + "breakers", "good/m-seeded", orjson.dumps(seed))
    gateway = start_gateway(config, logs)
    try:
        deadline = time.monotonic() + 10
        while not breaker_row(gateway, "good/m-seeded")["cooling_down"]:  # adopted from Redis
            assert time.monotonic() < deadline, "the gateway never read the shared breaker state"
            time.sleep(0.05)
        yield gateway
    finally:
        gateway.stop()
        client.delete(prefix + "breakers")
        client.close()


def breaker_row(gw: Gateway, deployment: str) -> dict[str, Any]:
    rows = httpx.get(f"{gw.url}/admin/dashboard/breakers", headers=AUTH).json()["deployments"]
    row: dict[str, Any] = next(r for r in rows if r["deployment"] == deployment)
    return row


def test_an_absurd_shared_cool_down_is_clamped_and_the_hash_expires(gw: Gateway, prefix: str) -> None:
    deadline = time.monotonic() + CAP_S + 10
    while breaker_row(gw, "good/m-seeded")["cooling_down"]:
        assert time.monotonic() < deadline, "a cool-down adopted from Redis outlasts max_cooldown_s"
        time.sleep(0.05)
    resp = chat(gw, "seeded")
    assert resp.status_code == 200 and resp.headers["x-hedge-route"] == "good/m-seeded=ok"
    ttl, _ = shared_breakers(prefix)
    assert 0 < ttl <= 3600, "a hash left without a TTL gets one when a gateway starts"


def chat(gw: Gateway, model: str) -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": model, "messages": MESSAGES},
        headers=AUTH,
        timeout=30,
    )


def shared_breakers(prefix: str) -> tuple[int, dict[str, dict[str, Any]]]:
    """The shared hash's TTL and its snapshots."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        ttl = int(client.ttl(prefix + "breakers"))
        raw = client.hgetall(prefix + "breakers")
    finally:
        client.close()
    return ttl, {k.decode(): orjson.loads(v) for k, v in raw.items()}


@pytest.mark.parametrize("name", list(VALUES))
def test_any_retry_after_fails_over_and_never_500s(
    gw: Gateway, mocks: dict[str, Mock], prefix: str, name: str
) -> None:
    mocks["bad"].configure(fail_rate=1.0, fail_status=429, retry_after=VALUES[name])
    # Values that are no duration cool nothing down; a date far ahead or a huge number, up to the cap.
    later = "cooling_down" if name in ("huge", "date") else "rate_limit_exceeded"
    for n, expected in enumerate(["rate_limit_exceeded", later, later]):
        resp = chat(gw, f"v-{name}")
        assert resp.status_code == 200, resp.text
        route = resp.headers["x-hedge-route"]
        assert route == f"bad/m-{name}={expected}, good/m=ok", f"request {n + 1}: no breaker opened by 429s"
    ttl, snapshots = shared_breakers(prefix)
    now = time.time()
    for dep, snap in snapshots.items():
        if dep == "good/m-seeded":
            continue  # planted by the fixture, as an older version would have written it
        assert snap["cooldown_until"] - now <= CAP_S + 1, f"{dep} cools down beyond max_cooldown_s"
    if snapshots:
        assert 0 < ttl <= 3600, "the shared breaker hash expires"


def test_a_huge_retry_after_reaches_the_client_capped(
    gw: Gateway, mocks: dict[str, Mock], prefix: str
) -> None:
    mocks["bad"].configure(fail_rate=1.0, fail_status=429, retry_after="999999999")
    resp = chat(gw, "solo-huge")
    assert resp.status_code == 429, resp.text
    assert resp.json()["error"]["code"] == "rate_limit_exceeded"
    assert resp.headers["retry-after"] == str(int(CAP_S))
    ttl, snapshots = shared_breakers(prefix)
    assert snapshots["bad/m-solo-huge"]["cooldown_until"] - time.time() <= CAP_S + 1
    assert 0 < ttl <= 3600


def test_a_429_does_not_open_the_breaker(gw: Gateway, mocks: dict[str, Mock]) -> None:
    solo = mocks["solo"]
    solo.configure(fail_rate=1.0, fail_status=429, retry_after=1)
    first = chat(gw, "solo")
    assert first.status_code == 429 and first.headers["retry-after"] == "1"
    # The gateway waits out the 1 s cool-down itself (max_retry_wait_s 1.5), then asks again.
    second = chat(gw, "solo")
    assert second.status_code == 429, f"a rate limit is passed on, not turned into an outage: {second.text}"
    assert second.json()["error"]["code"] == "rate_limit_exceeded"
    assert second.headers["retry-after"] == "1"
    solo.configure(fail_rate=0.0)
    third = chat(gw, "solo")
    assert third.status_code == 200, third.text
    assert third.headers["x-hedge-route"].endswith("solo/m=ok")
    assert "breaker solo/m: closed -> open" not in gw.log.read_text()


def test_an_upstream_401_fails_over_and_flags_the_deployment(gw: Gateway, mocks: dict[str, Mock]) -> None:
    locked, good = mocks["locked"], mocks["good"]
    before = locked.stats()["requests"]
    good.configure(fail_first=1, fail_status=500)
    resp = chat(gw, "auth")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-hedge-route"].startswith("locked/m=upstream_auth_error, good/m2=upstream_error")
    assert resp.headers["x-hedge-route"].endswith("good/m2=ok")
    assert locked.stats()["requests"] == before + 1, "a bad key is not retried on the same deployment"
    again = chat(gw, "auth")
    assert again.status_code == 200
    assert locked.stats()["requests"] <= before + 2
    assert breaker_row(gw, "locked/m")["misconfigured"] is True
    assert breaker_row(gw, "good/m2")["misconfigured"] is False
    lines = [
        line for line in gw.log.read_text().splitlines() if "locked/m" in line and "misconfigured" in line
    ]
    assert len(lines) == 1 and "WARNING" in lines[0], lines
    assert "sk-locked" not in gw.log.read_text()


# ---- a gateway that runs out of file descriptors ----------------------------------------------------


def _lowest_free_fd(pid: int) -> int:
    used = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
    return next(n for n in range(len(used) + 1) if n not in used)


def test_running_out_of_file_descriptors_does_not_open_the_breaker(
    mocks: dict[str, Mock], logs: Path
) -> None:
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            p: {"style": "openai", "base_url": f"{mocks[m].url}/v1", "api_key": "sk-x"}
            for p, m in (("one", "good"), ("two", "solo"))
        },
        "models": {
            "pair": {
                "strategy": "ordered",
                "deployments": [{"provider": "one", "model": "m"}, {"provider": "two", "model": "m"}],
            }
        },
        "resilience": {"breaker": {"failures": 1, "cooldown_s": 600}, "backoff": {"base_ms": 1, "max_ms": 5}},
    }
    gw = start_gateway(config, logs)
    soft, hard = resource.prlimit(gw.proc.pid, resource.RLIMIT_NOFILE)
    try:
        with httpx.Client(base_url=gw.url, headers=AUTH, timeout=30) as client:
            assert client.get("/health").status_code == 200  # the one connection this test will use
            # Every descriptor number below the limit is taken: the next socket() fails with EMFILE.
            resource.prlimit(gw.proc.pid, resource.RLIMIT_NOFILE, (_lowest_free_fd(gw.proc.pid), hard))
            for _ in range(3):
                resp = client.post("/v1/chat/completions", json={"model": "pair", "messages": MESSAGES})
                assert resp.status_code == 503, resp.text
                assert resp.json()["error"]["code"] == "gateway_resource_exhausted"
            resource.prlimit(gw.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
            resp = client.post("/v1/chat/completions", json={"model": "pair", "messages": MESSAGES})
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-hedge-route"] == "one/m=ok", "the breaker stayed closed"
        assert "breaker one/m: closed -> open" not in gw.log.read_text()
    finally:
        gw.stop()
