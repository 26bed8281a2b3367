"""Active health checks: idle deployments are probed, the verdict feeds their breakers, and only
one replica probes a deployment per interval (a Redis or database lease). An injected clock drives
every round; nothing sleeps."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import MASTER_KEY, REDIS_URL, Mock, start_gateway
from hedge.config import Config, parse_config
from hedge.gateway.health import Prober
from hedge.gateway.runtime import Runtime, open_runtime
from hedge.resilience.breaker import State
from hedge.resilience.failover import Failover
from hedge.store.counters import MemoryCounters, RedisCounters
from hedge.store.db import Database
from hedge.store.leases import CounterLeases, DatabaseLeases, Leases

INTERVAL = 30.0


class Clock:
    """Monotonic seconds, far past any real activity, moved only by the test."""

    def __init__(self) -> None:
        self.now = time.monotonic() + 10_000

    def __call__(self) -> float:
        return self.now


def _config(mock: Mock, tmp: Path, **check: Any) -> dict[str, Any]:
    health = {"interval_s": INTERVAL, "timeout_s": 5, **check}
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "watched": {
                "style": "openai",
                "base_url": f"{mock.url}/v1",
                "api_key": "sk-a",
                "health_check": health,
            },
            "plain": {"style": "openai", "base_url": f"{mock.url}/v1", "api_key": "sk-b"},
        },
        "models": {
            "chat": {
                "strategy": "ordered",
                "deployments": [{"provider": "watched", "model": "m1"}, {"provider": "plain", "model": "m2"}],
            }
        },
        "resilience": {"breaker": {"failures": 2, "cooldown_s": 60}},
        "state": {"dir": str(tmp)},
    }


@pytest.fixture
async def runtime(mock: Mock, tmp_path: Path) -> AsyncIterator[Runtime]:
    rt = await open_runtime(parse_config(_config(mock, tmp_path)))
    await rt.prober.close()  # the tests drive their own probers: no background round may interleave
    try:
        yield rt
    finally:
        await rt.close()


def _prober(rt: Runtime, clock: Clock, leases: Leases | None = None) -> tuple[Prober, Failover]:
    failover = Failover(rt.config.resilience, clock=clock)
    checks = {n: p.health_check for n, p in rt.config.providers.items() if p.health_check is not None}
    deps = [d for a in rt.router.aliases.values() for d in a.deployments]
    prober = Prober(
        deps,
        checks,
        rt.transport,
        failover,
        leases or CounterLeases(MemoryCounters(clock=clock)),
        clock=clock,
    )
    return prober, failover


async def test_an_idle_deployment_is_probed_once_per_interval(runtime: Runtime, mock: Mock) -> None:
    clock = Clock()
    prober, _ = _prober(runtime, clock)
    before = mock.stats()["requests"]
    assert await prober.tick() == ["watched/m1"]  # only the provider with a health check
    assert mock.stats()["requests"] == before + 1
    assert mock.stats()["last_body"]["max_tokens"] == 1
    assert prober.last["watched/m1"].ok
    clock.now += INTERVAL / 2
    assert await prober.tick() == []  # not again within the interval
    clock.now += INTERVAL / 2
    assert await prober.tick() == ["watched/m1"]


async def test_a_busy_deployment_is_not_probed(runtime: Runtime) -> None:
    clock = Clock()
    prober, _ = _prober(runtime, clock)
    dep = prober.deployments[0]
    dep.stats.last_active = clock.now - 1  # served a request a second ago
    assert await prober.tick() == []
    clock.now += INTERVAL
    assert await prober.tick() == ["watched/m1"]


async def test_failed_probes_open_the_breaker_and_a_probe_closes_it(runtime: Runtime, mock: Mock) -> None:
    clock = Clock()
    prober, failover = _prober(runtime, clock)
    breaker = failover.breaker_by_id("watched/m1")
    mock.configure(fail_rate=1.0, fail_status=503)
    try:
        await prober.tick()
        clock.now += INTERVAL
        await prober.tick()
        assert breaker.state is State.OPEN  # two strikes (breaker.failures: 2), no request needed
        assert prober.last["watched/m1"].error is not None and not prober.last["watched/m1"].ok
        assert not failover.healthy("watched/m1")
    finally:
        mock.configure(fail_rate=0.0)
    clock.now += INTERVAL  # still within the breaker's 60 s cool-down: left alone
    before = mock.stats()["requests"]
    await prober.tick()
    assert mock.stats()["requests"] == before and breaker.state is State.OPEN
    clock.now += INTERVAL  # past the cool-down: the probe is the half-open trial, and it passes
    await prober.tick()
    assert breaker.state is State.CLOSED


async def test_a_refused_probe_is_no_verdict_on_the_deployment(runtime: Runtime, mock: Mock) -> None:
    prober, failover = _prober(runtime, Clock())
    mock.configure(fail_rate=1.0, fail_status=400)
    try:
        await prober.tick()
    finally:
        mock.configure(fail_rate=0.0, fail_status=500)
    assert not prober.last["watched/m1"].ok
    assert failover.breaker_by_id("watched/m1")._failures == 0


async def test_a_probe_that_times_out_is_a_strike(mock: Mock, tmp_path: Path) -> None:
    rt = await open_runtime(parse_config(_config(mock, tmp_path, timeout_s=0.05)))
    await rt.prober.close()
    mock.configure(latency_ms=5_000)
    try:
        prober, failover = _prober(rt, Clock())
        await prober.tick()
        assert prober.last["watched/m1"].error == "upstream_timeout"
        assert failover.breaker_by_id("watched/m1")._failures == 1
    finally:
        mock.configure(latency_ms=0)
        await rt.close()


async def test_two_replicas_probe_a_deployment_once_with_a_database_lease(
    runtime: Runtime, db: Database
) -> None:
    clock = Clock()
    wall = [1_000_000.0]
    leases = [DatabaseLeases(db, clock=lambda: wall[0]) for _ in range(2)]
    one, _ = _prober(runtime, clock, leases[0])
    two, _ = _prober(runtime, clock, leases[1])
    assert sorted([*(await one.tick()), *(await two.tick())]) == ["watched/m1"]
    clock.now += INTERVAL
    wall[0] += INTERVAL
    assert sorted([*(await two.tick()), *(await one.tick())]) == ["watched/m1"]


async def test_two_replicas_probe_a_deployment_once_with_a_redis_lease(runtime: Runtime) -> None:
    prefix = f"hedge-test-{secrets.token_hex(4)}:"
    counters = [RedisCounters(REDIS_URL, prefix) for _ in range(2)]
    try:
        clock = Clock()
        one, _ = _prober(runtime, clock, CounterLeases(counters[0]))
        two, _ = _prober(runtime, clock, CounterLeases(counters[1]))
        assert sorted([*(await one.tick()), *(await two.tick())]) == ["watched/m1"]
    finally:
        for c in counters:
            await c.close()


def test_health_checks_are_off_by_default(mock: Mock, tmp_path: Path) -> None:
    config: Config = parse_config(_config(mock, tmp_path))
    data = config.model_dump()
    assert data["providers"]["plain"]["health_check"] is None
    with pytest.raises(Exception, match="interval_s"):
        parse_config({**_config(mock, tmp_path, interval_s=0)}, "<test>")


def test_probes_show_in_admin_health(mock: Mock, logs: Path, tmp_path: Path) -> None:
    config = _config(mock, tmp_path, interval_s=1)
    gw = start_gateway(config, logs)
    try:
        auth = {"authorization": f"Bearer {MASTER_KEY}"}
        deadline = time.monotonic() + 15
        row: dict[str, Any] = {}
        while time.monotonic() < deadline:
            rows = httpx.get(f"{gw.url}/admin/health", headers=auth).json()["deployments"]
            row = next(r for r in rows if r["deployment"] == "watched/m1")
            if row["probe"] is not None:
                break
            time.sleep(0.1)
        assert row["probe"] and row["probe"]["ok"] and row["health_check"]["interval_s"] == 1
        plain = next(r for r in rows if r["deployment"] == "plain/m2")
        assert plain["health_check"] is None and plain["probe"] is None
        assert httpx.get(f"{gw.url}/admin/health").status_code == 401
        metrics = httpx.get(f"{gw.url}/metrics").text
        assert 'hedge_health_probes_total{deployment="watched/m1",outcome="ok",provider="watched"}' in metrics
    finally:
        gw.stop()
