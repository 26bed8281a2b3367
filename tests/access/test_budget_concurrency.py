"""Budgets under concurrency, on real PostgreSQL and Redis: a burst of a key's requests across two
replicas cannot overspend its budget, and no spend booking is dropped under load."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from conftest import (
    MASTER_KEY,
    PG_BASE,
    REDIS_URL,
    Gateway,
    Mock,
    _drop_schema,
    _pg_schema,
    start_gateway,
)

MSG: list[Any] = [{"role": "user", "content": "please summarise the quarterly numbers for me"}]
MAX_TOKENS = 40
PRICE = {"input": 1.0, "output": 2.0}


@pytest.fixture(scope="module")
def shared_state() -> Iterator[dict[str, Any]]:
    schema = asyncio.run(_pg_schema())
    yield {
        "database_url": f"{PG_BASE}?search_path={schema}",
        "redis_url": REDIS_URL,
        "redis_prefix": f"hedge-test-{secrets.token_hex(4)}:",
        "flush_interval_s": 0.1,
    }
    asyncio.run(_drop_schema(schema))


@pytest.fixture(scope="module")
def replicas(mock: Mock, shared_state: dict[str, Any], logs: Path) -> Iterator[tuple[Gateway, Gateway]]:
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {"p": {"style": "openai", "base_url": f"{mock.url}/v1", "api_key": "sk-upstream"}},
        "models": {"chat": {"deployments": [{"provider": "p", "model": "m", "price": PRICE}]}},
        "state": shared_state,
    }
    first = start_gateway(config, logs)
    second = start_gateway(config, logs)
    yield first, second
    first.stop()
    second.stop()


def _admin(gw: Gateway, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    return httpx.request(method, f"{gw.url}{path}", json=body, headers=headers, timeout=30)


async def _burst(gateways: tuple[Gateway, ...], key: str, total: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=total, max_keepalive_connections=total)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        body = {"model": "chat", "messages": MSG, "max_tokens": MAX_TOKENS}
        headers = {"authorization": f"Bearer {key}"}
        return await asyncio.gather(
            *(
                client.post(
                    f"{gateways[i % len(gateways)].base_url}/chat/completions", json=body, headers=headers
                )
                for i in range(total)
            )
        )


def _ledger_total(gw: Gateway, key_name: str, requests: int) -> dict[str, Any]:
    """The key's row in /admin/spend, once it holds ``requests`` requests (the ledger writes in batches)."""
    deadline = time.monotonic() + 30
    row: dict[str, Any] = {}
    while time.monotonic() < deadline:
        rows = _admin(gw, "GET", "/admin/spend?by=key&since=1h").json()["rows"]
        row = next((r for r in rows if r["group"] == key_name), {})
        if row.get("requests") == requests:
            return row
        time.sleep(0.05)
    raise AssertionError(f"the ledger has {row} for {key_name}, expected {requests} requests")


def test_a_burst_across_two_replicas_cannot_overspend_the_budget(replicas: tuple[Gateway, Gateway]) -> None:
    first, _ = replicas
    probe = _admin(first, "POST", "/admin/keys", {"name": "probe"}).json()["key"]
    [one] = asyncio.run(_burst((first,), probe, 1))
    per_request = float(one.headers["x-hedge-cost-usd"])
    assert per_request > 0
    budget = per_request * 6.5
    created = _admin(first, "POST", "/admin/keys", {"name": "burst", "budget_usd": budget}).json()
    responses = asyncio.run(_burst(replicas, created["key"], 200))
    statuses = [r.status_code for r in responses]
    served = statuses.count(200)
    assert set(statuses) <= {200, 429}, sorted(set(statuses))
    assert all(r.json()["error"]["code"] == "budget_exceeded" for r in responses if r.status_code == 429)
    # Each request reserves at most its prompt estimate plus MAX_TOKENS; the bound is one request's maximum.
    max_cost = (200 * PRICE["input"] + MAX_TOKENS * PRICE["output"]) / 1e6
    assert 1 <= served <= 7, f"served {served} of 200 with a budget worth 6.5"
    # Once the burst has settled, what it reserved but did not spend is usable again, up to the budget.
    for _ in range(10):
        [more] = asyncio.run(_burst(replicas, created["key"], 1))
        if more.status_code == 429:
            break
        assert more.status_code == 200, more.text
        served += 1
    row = _ledger_total(first, "burst", served)
    assert 7 <= served <= 8, f"served {served} in all with a budget worth 6.5"
    assert budget - per_request <= row["cost_usd"] <= budget + max_cost


def test_no_spend_booking_is_dropped_under_a_thousand_concurrent_requests(
    replicas: tuple[Gateway, Gateway], shared_state: dict[str, Any]
) -> None:
    first, _ = replicas
    created = _admin(first, "POST", "/admin/keys", {"name": "thousand", "budget_usd": 1000.0}).json()
    responses = asyncio.run(_burst((first,), created["key"], 1000))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 1000, sorted(set(statuses))
    row = _ledger_total(first, "thousand", 1000)
    counter = redis.Redis.from_url(REDIS_URL)
    name = f"{shared_state['redis_prefix']}s:spend:{created['id']}:total:0"
    deadline = time.monotonic() + 30
    value = 0.0
    while time.monotonic() < deadline:
        value = float(counter.get(name) or 0)
        if value == pytest.approx(row["cost_usd"], rel=1e-9):
            break
        time.sleep(0.05)
    assert value == pytest.approx(row["cost_usd"], rel=1e-9), "the shared counter agrees with the ledger"
    leftover = counter.hlen(f"{shared_state['redis_prefix']}r:spend:{created['id']}:total:0")
    assert leftover == 0, "every reservation was settled"
    counter.close()


def test_reconciliation_raises_an_under_counted_key_to_the_ledger(
    mock: Mock, shared_state: dict[str, Any], logs: Path
) -> None:
    """A booking lost (here: the counter wiped behind the gateway's back) is corrected from the ledger."""
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {"p": {"style": "openai", "base_url": f"{mock.url}/v1", "api_key": "sk-upstream"}},
        "models": {"chat": {"deployments": [{"provider": "p", "model": "m", "price": PRICE}]}},
        "state": shared_state,
        "budgets": {"reconcile_interval_s": 0.2},
    }
    gw = start_gateway(config, logs)
    try:
        created = _admin(gw, "POST", "/admin/keys", {"name": "reconciled", "budget_usd": 1000.0}).json()
        asyncio.run(_burst((gw,), created["key"], 20))
        row = _ledger_total(gw, "reconciled", 20)
        counter = redis.Redis.from_url(REDIS_URL)
        name = f"{shared_state['redis_prefix']}s:spend:{created['id']}:total:0"
        counter.set(name, "0")  # as if every booking had been lost
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and float(counter.get(name) or 0) < row["cost_usd"] * 0.999:
            time.sleep(0.05)
        assert float(counter.get(name) or 0) == pytest.approx(row["cost_usd"], rel=1e-9)
        counter.close()
    finally:
        gw.stop()
