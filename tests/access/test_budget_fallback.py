"""Budgets that degrade, team budgets and soft-limit alerts.

The gate on its own (memory, and two replicas on one Redis with the ledger on SQLite and
PostgreSQL), then the whole path over HTTP with the OpenAI SDK: a key past its budget with a
fallback gets 200 from the fallback alias with ``x-hedge-budget: fallback``, until its hard limit
refuses with 429; a team's budget holds over all its keys."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

from conftest import MASTER_KEY, PG_BASE, REDIS_URL, Gateway, Mock, _drop_schema, _pg_schema, start_gateway
from hedge.access.alerts import Alert, Alerts
from hedge.access.gate import Budgeted, BudgetExceeded, Gate
from hedge.access.keys import VirtualKey
from hedge.access.teams import Team, TeamStore
from hedge.config import BudgetAlertsConfig, BudgetConfig
from hedge.record import RequestRecord
from hedge.store.counters import Counters, MemoryCounters, RedisCounters
from hedge.store.db import Database
from hedge.store.ledger import Ledger


def _key(**kw: Any) -> VirtualKey:
    return VirtualKey(
        id="key_" + secrets.token_hex(4), name="k", key_prefix="sk-hedge-x...", created_at=0, **kw
    )


def _booked(gate: Gate, key: VirtualKey, request_id: str, cost: float) -> RequestRecord:
    rec = RequestRecord(request_id, "chat", "chat", provider="p", model="m", cost_usd=cost, prompt_tokens=1)
    gate.book(rec, key)
    return rec


@pytest.fixture(params=["memory", "redis"])
def counters(request: pytest.FixtureRequest) -> Iterator[Callable[[], Counters]]:
    """A factory of counters: each call is another replica's view of the same shared state."""
    if request.param == "memory":
        shared = MemoryCounters()
        yield lambda: shared
        return
    prefix = f"hedge-test-{secrets.token_hex(4)}:"
    made: list[RedisCounters] = []

    def make() -> Counters:
        made.append(RedisCounters(REDIS_URL, prefix))
        return made[-1]

    yield make  # each test closes its gates' counters (they belong to its event loop)


async def _close(*gates: Gate) -> None:
    for gate in gates:
        await gate.drain()
        await gate.counters.close()


async def test_past_its_budget_a_key_is_sent_to_its_fallback_until_the_hard_limit(
    db: Database, counters: Callable[[], Counters]
) -> None:
    gate = Gate(counters(), Ledger(db))
    key = _key(budget_usd=1.0, budget_period="day", hard_budget_usd=2.0, budget_fallback="cheap")
    try:
        assert (await gate.admit(key, "chat", "r1", lambda _: 0.1)).fallback is None
        _booked(gate, key, "r1", 1.5)
        await gate.drain()
        admission = await gate.admit(key, "chat", "r2", lambda _: 0.1)
        assert (admission.fallback, admission.over) == ("cheap", "key")
        _booked(gate, key, "r2", 0.6)
        await gate.drain()
        with pytest.raises(BudgetExceeded, match="hard budget of 2 USD"):
            await gate.admit(key, "chat", "r3", lambda _: 0.1)
    finally:
        await _close(gate)


async def test_without_a_fallback_the_budget_refuses_as_before(db: Database) -> None:
    gate = Gate(MemoryCounters(), Ledger(db))
    key = _key(budget_usd=1.0, budget_period="total")
    await gate.admit(key, "chat", "r1", lambda _: 0.1)
    _booked(gate, key, "r1", 1.0)
    await gate.drain()
    with pytest.raises(BudgetExceeded, match="This API key has used its total budget of 1 USD"):
        await gate.admit(key, "chat", "r2", lambda _: 0.1)


async def test_a_team_budget_holds_across_replicas_and_frees_the_key_when_it_refuses(
    db: Database, counters: Callable[[], Counters]
) -> None:
    ledger = Ledger(db)
    one, two = Gate(counters(), ledger), Gate(counters(), ledger)
    team = Team("research", 0.0, hard_budget_usd=1.0, budget_period="day")
    keys = [_key(team="research", budget_usd=100.0, budget_period="day") for _ in range(2)]
    try:

        async def admit(i: int) -> bool:
            gate, key = (one, keys[0]) if i % 2 else (two, keys[1])
            try:
                await gate.admit(key, "chat", f"t{i}", lambda _: 0.3, team)
            except BudgetExceeded as exc:
                assert "team 'research'" in exc.message
                return False
            return True

        admitted = await asyncio.gather(*(admit(i) for i in range(10)))
        assert sum(admitted) == 4  # 0, 0.3, 0.6 and 0.9 are under 1.0; every later one is refused
        # The refused requests' key reservations were released: the keys hold only the admitted four.
        held = 0.0
        for key in keys:
            name = one._spend_name(Budgeted.of_key(key), time.time())[0]
            ok, committed = await one.counters.reserve(name, "probe", 0, 100.0, 60, None)
            assert ok
            held += committed
        assert held == pytest.approx(1.2)
    finally:
        await _close(one, two)


async def test_a_team_past_its_soft_budget_sends_its_keys_to_the_team_fallback(db: Database) -> None:
    gate = Gate(MemoryCounters(), Ledger(db))
    team = Team("ops", 0.0, budget_usd=1.0, budget_period="total", budget_fallback="cheap")
    key = _key(team="ops")
    await gate.admit(key, "chat", "o1", lambda _: 0.1, team)
    _booked(gate, key, "o1", 1.2)
    await gate.drain()
    admission = await gate.admit(key, "chat", "o2", lambda _: 0.1, team)
    assert (admission.fallback, admission.over) == ("cheap", "team")


async def test_soft_limit_alerts_fire_once_per_threshold_across_replicas(
    db: Database, counters: Callable[[], Counters]
) -> None:
    seen: list[Alert] = []
    config = BudgetAlertsConfig(thresholds_pct=[50, 90])
    ledger = Ledger(db)
    gates = []
    for _ in range(2):
        c = counters()
        gates.append(Gate(c, ledger, BudgetConfig(), alerts=Alerts(config, c, on_alert=seen.append)))
    key = _key(budget_usd=1.0, budget_period="day")
    try:
        for i in range(5):  # 0.2 each: 50% is crossed at the third booking, 90% at the fifth
            gate = gates[i % 2]
            await gate.admit(key, "chat", f"a{i}", lambda _: 0.01)
            _booked(gate, key, f"a{i}", 0.2)
            await gate.drain()
        assert [(a.scope, a.threshold_pct) for a in seen] == [("key", 50), ("key", 90)]
        assert seen[0].spent_usd == pytest.approx(0.6) and seen[0].budget_usd == 1.0
    finally:
        await _close(*gates)


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    posts: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        posts.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/hook", posts
    await runner.cleanup()


async def test_an_alert_posts_its_webhook(db: Database, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    from hedge.config import ProviderConfig
    from hedge.transport import Transport

    url, posts = webhook
    transport = Transport({"p": ProviderConfig(style="openai", base_url="http://127.0.0.1:9")})
    counters = MemoryCounters()
    alerts = Alerts(BudgetAlertsConfig(thresholds_pct=[100], webhook_url=url), counters, transport.post_json)
    gate = Gate(counters, Ledger(db), alerts=alerts)
    team = Team("t", 0.0, budget_usd=0.5, budget_period="week", budget_fallback="cheap")
    key = _key(team="t")
    try:
        await gate.admit(key, "chat", "w1", lambda _: 0.01, team)
        _booked(gate, key, "w1", 0.7)
        await gate.drain()
        await alerts.drain()
        assert len(posts) == 1
        assert posts[0]["type"] == "hedge.budget_alert"
        assert (posts[0]["scope"], posts[0]["id"], posts[0]["threshold_pct"]) == ("team", "t", 100)
        assert posts[0]["spent_usd"] == pytest.approx(0.7)
    finally:
        await transport.close()


async def test_team_store_validates(db: Database) -> None:
    store = TeamStore(db, aliases={"chat": None, "cheap": None})
    team = await store.create({"name": "a", "budget_usd": 5, "budget_fallback": "cheap"})
    assert team.budget_period == "total"
    with pytest.raises(ValueError, match="exists already"):
        await store.create({"name": "a"})
    with pytest.raises(ValueError, match="budget_fallback: unknown model alias"):
        await store.update("a", {"budget_fallback": "nope"})
    with pytest.raises(ValueError, match="hard_budget_usd"):
        await store.update("a", {"hard_budget_usd": -1})
    updated = await store.update("a", {"hard_budget_usd": 9})
    assert updated is not None and updated.hard_budget_usd == 9
    assert [t.name for t in await store.list()] == ["a"]


# -- over HTTP, with the SDK, on PostgreSQL and Redis ---------------------------------------------


@pytest.fixture(scope="module")
def budget_gateway(mock: Mock, logs: Path) -> Iterator[Gateway]:
    schema = asyncio.run(_pg_schema())
    price = {"input": 1000.0, "output": 1000.0}  # a few tokens cost more than the tiny budgets below
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {"p": {"style": "openai", "base_url": f"{mock.url}/v1", "api_key": "sk-upstream"}},
        "models": {
            "chat": {"deployments": [{"provider": "p", "model": "big", "price": price}]},
            "cheap": {
                "deployments": [{"provider": "p", "model": "small", "price": {"input": 0.1, "output": 0.1}}]
            },
        },
        "state": {
            "database_url": f"{PG_BASE}?search_path={schema}",
            "redis_url": REDIS_URL,
            "redis_prefix": f"hedge-test-{secrets.token_hex(4)}:",
            "key_cache_ttl_s": 0,
            "flush_interval_s": 0.1,
        },
    }
    gw = start_gateway(config, logs)
    yield gw
    gw.stop()
    asyncio.run(_drop_schema(schema))


def _admin(gw: Gateway, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(
        method, f"{gw.url}{path}", json=body, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10
    )


def _ask(client: openai.OpenAI) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hello"}], max_tokens=5
    )


def _until(check: Callable[[], Any], within_s: float = 10.0) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_a_key_past_its_budget_with_a_fallback_gets_200_from_the_fallback(budget_gateway: Gateway) -> None:
    gw = budget_gateway
    made = _admin(gw, "POST", "/admin/keys", {"name": "fb", "budget_usd": 0.001, "budget_fallback": "cheap"})
    assert made.status_code == 201, made.text
    client = openai.OpenAI(base_url=gw.base_url, api_key=made.json()["key"], max_retries=0)
    first = _ask(client)
    assert first.http_response.status_code == 200 and "x-hedge-budget" not in first.headers
    assert first.headers["x-hedge-model"] == "big"
    # The first request's cost lands on the shared counter off the request path: then the fallback serves.
    later = _until(lambda: (r := _ask(client)).headers.get("x-hedge-budget") and r)
    assert later, "the key never went to its fallback"
    assert later.http_response.status_code == 200
    assert later.headers["x-hedge-model"] == "small" and later.headers["x-hedge-budget"] == "fallback"
    # A hard limit below what it has spent refuses, as a budget always did.
    key_id = made.json()["id"]
    assert _admin(gw, "PATCH", f"/admin/keys/{key_id}", {"hard_budget_usd": 0.001}).status_code == 200
    with pytest.raises(openai.RateLimitError) as refused:
        _ask(client)
    assert refused.value.code == "budget_exceeded"


def test_a_bad_fallback_is_a_400(budget_gateway: Gateway) -> None:
    resp = _admin(budget_gateway, "POST", "/admin/keys", {"name": "x", "budget_fallback": "gpt-9"})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "budget_fallback"


def test_a_team_budget_over_http(budget_gateway: Gateway) -> None:
    gw = budget_gateway
    team = _admin(
        gw, "POST", "/admin/teams", {"name": "lab", "budget_usd": 0.001, "budget_fallback": "cheap"}
    )
    assert team.status_code == 201, team.text
    assert _admin(gw, "POST", "/admin/teams", {"name": "lab"}).status_code == 409
    secrets_ = [
        _admin(gw, "POST", "/admin/keys", {"name": f"m{i}", "team": "lab"}).json()["key"] for i in range(2)
    ]
    first, second = (openai.OpenAI(base_url=gw.base_url, api_key=s, max_retries=0) for s in secrets_)
    assert "x-hedge-budget" not in _ask(first).headers
    # The first member's spend puts the whole team past its budget: the other member is degraded too.
    later = _until(lambda: (r := _ask(second)).headers.get("x-hedge-budget") and r)
    assert later and later.headers["x-hedge-model"] == "small"
    listed = _admin(gw, "GET", "/admin/teams").json()["data"]
    assert [t["name"] for t in listed] == ["lab"] and listed[0]["spent_usd"] > 0.001
    assert _admin(gw, "PATCH", "/admin/teams/lab", {"hard_budget_usd": 0.0005}).status_code == 200
    with pytest.raises(openai.RateLimitError):
        _ask(second)
    assert _admin(gw, "GET", "/admin/teams/none").status_code == 404


async def test_a_team_counter_starts_from_the_ledger_and_is_reconciled_with_it(db: Database) -> None:
    ledger = Ledger(db)
    counters = MemoryCounters()
    gate = Gate(counters, ledger)
    team = Team("lab", 0.0, budget_usd=10.0, budget_period="month")
    key = _key(team="lab")
    earlier = RequestRecord("old", "chat", "chat", provider="p", model="m", cost_usd=2.0, team="lab")
    ledger(earlier)
    await ledger.flush()
    await gate.admit(key, "chat", "n1", lambda _: 0.1, team)
    assert await gate.spent(Budgeted.of_team(team)) == pytest.approx(2.0)  # initialised from the ledger
    rec = _booked(gate, key, "n1", 0.5)
    rec.team = "lab"
    await gate.drain()
    ledger(rec)
    await ledger.flush()
    name = gate._spend_name(Budgeted.of_team(team), time.time())[0]
    counters._spend[name] = 0.0  # as if every booking had been lost
    assert await gate.reconcile() == 1
    assert await gate.spent(Budgeted.of_team(team)) == pytest.approx(2.5)
