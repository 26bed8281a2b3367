"""A new user's cost-control story, through the SDK and the CLI, on SQLite and on two replicas
sharing PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import (
    MASTER_KEY,
    PG_BASE,
    REDIS_URL,
    Gateway,
    Mock,
    start_gateway,
)

MSG: list[Any] = [{"role": "user", "content": "please summarise the quarterly numbers for me"}]


def _config(mock: Mock, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "p": {"style": "openai", "base_url": f"{mock.url}/v1", "api_key": "sk-upstream-secret"}
        },
        "models": {
            "chat": {
                "baseline": "premium",
                "deployments": [
                    {"provider": "p", "model": "qwen2.5-72b-instruct", "price": {"input": 1, "output": 2}}
                ],
            },
            "premium": {"deployments": [{"provider": "p", "model": "gpt-4o"}]},  # priced from the catalogue
        },
        "state": {"key_cache_ttl_s": 0, "flush_interval_s": 0.2, **state},
    }


def _admin(gw: Gateway, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(
        method, f"{gw.url}{path}", json=body, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10
    )


@pytest.fixture(scope="module")
def gw(mock: Mock, logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    state_dir = tmp_path_factory.mktemp("state")
    gateway = start_gateway(_config(mock, {"dir": str(state_dir)}), logs)
    yield gateway
    gateway.stop()


def _sdk(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def test_budget_spend_and_savings_on_sqlite(gw: Gateway) -> None:
    created = _admin(gw, "POST", "/admin/keys", {"name": "alice", "team": "research", "budget_usd": 0.0002})
    assert created.status_code == 201, created.text
    secret, key_id = created.json()["key"], created.json()["id"]
    client = _sdk(gw, secret)
    costs: list[float] = []
    with pytest.raises(openai.RateLimitError) as exc:
        for _ in range(100):
            raw = client.chat.completions.with_raw_response.create(model="chat", messages=MSG)
            costs.append(float(raw.headers["x-hedge-cost-usd"]))
    assert exc.value.code == "budget_exceeded"
    assert sum(costs) >= 0.0002 > sum(costs[:-1]), "refused exactly once the budget was used up"
    spend = _admin(gw, "GET", "/admin/spend?by=key&since=1h").json()
    row = next(r for r in spend["rows"] if r["group"] == "alice")
    assert row["requests"] == len(costs)
    assert row["cost_usd"] == pytest.approx(sum(costs), abs=1e-9), "headers and ledger agree"
    assert row["baseline_cost_usd"] > row["cost_usd"] and row["savings_usd"] > 0
    assert set(spend["total"]) == {
        "group",
        "requests",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "cost_usd",
        "baseline_cost_usd",
        "savings_usd",
        "charges_usd",
        "price_missing",
        "usage_missing",
    }
    assert spend["total"]["charges_usd"]["input"] + spend["total"]["charges_usd"]["output"] == pytest.approx(
        spend["total"]["cost_usd"]
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hedge",
            "spend",
            "--config",
            str(gw.config_path),
            "--by",
            "team",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    team = next(r for r in json.loads(out.stdout)["rows"] if r["group"] == "research")
    assert team["cost_usd"] == pytest.approx(sum(costs), abs=1e-9)
    listed = _admin(gw, "GET", "/admin/keys").json()["data"]
    assert any(k["id"] == key_id for k in listed) and secret not in json.dumps(listed)


def test_rpm_limit_returns_429_with_retry_after(gw: Gateway) -> None:
    if 60 - time.time() % 60 < 5:  # stay inside one rate-limit minute
        time.sleep(60 - time.time() % 60 + 0.1)
    secret = _admin(gw, "POST", "/admin/keys", {"name": "rpm", "rpm": 3}).json()["key"]
    client = _sdk(gw, secret)
    for _ in range(3):
        client.chat.completions.create(model="chat", messages=MSG)
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="chat", messages=MSG)
    assert exc.value.code == "rate_limit_exceeded"
    assert 1 <= int(exc.value.response.headers["retry-after"]) <= 60


def test_model_not_allowed_revoked_and_expired(gw: Gateway) -> None:
    created = _admin(gw, "POST", "/admin/keys", {"name": "limited", "models": ["chat"]}).json()
    client = _sdk(gw, created["key"])
    assert [m.id for m in client.models.list()] == ["chat"]
    with pytest.raises(openai.PermissionDeniedError) as exc:
        client.chat.completions.create(model="premium", messages=MSG)
    assert exc.value.code == "model_not_allowed"
    client.chat.completions.create(model="chat", messages=MSG)
    assert _admin(gw, "DELETE", f"/admin/keys/{created['id']}").json()["revoked_at"] is not None
    with pytest.raises(openai.AuthenticationError) as auth:
        client.chat.completions.create(model="chat", messages=MSG)
    assert auth.value.code == "key_revoked"
    expired = _admin(gw, "POST", "/admin/keys", {"name": "old", "expires_at": time.time() - 1}).json()
    with pytest.raises(openai.AuthenticationError) as old:
        _sdk(gw, expired["key"]).chat.completions.create(model="chat", messages=MSG)
    assert old.value.code == "key_expired"
    patched = _admin(gw, "PATCH", f"/admin/keys/{expired['id']}", {"expires_at": "30d"})
    assert patched.status_code == 200
    _sdk(gw, expired["key"]).chat.completions.create(model="chat", messages=MSG)


def test_admin_api_needs_master_key_and_valid_fields(gw: Gateway) -> None:
    secret = _admin(gw, "POST", "/admin/keys", {"name": "user"}).json()["key"]
    resp = httpx.get(f"{gw.url}/admin/keys", headers={"authorization": f"Bearer {secret}"})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "master_key_required"
    bad = _admin(gw, "POST", "/admin/keys", {"name": "x", "budget_period": "fortnight"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "budget_period"
    assert _admin(gw, "PATCH", "/admin/keys/key_nope", {"rpm": 1}).status_code == 404
    assert _admin(gw, "GET", "/admin/spend?by=colour").status_code == 400


def test_secrets_never_reach_logs_or_ledger(gw: Gateway) -> None:
    secret = _admin(gw, "POST", "/admin/keys", {"name": "quiet"}).json()["key"]
    _sdk(gw, secret).chat.completions.create(model="chat", messages=MSG)
    with pytest.raises(openai.AuthenticationError):
        _sdk(gw, secret + "typo").chat.completions.create(model="chat", messages=MSG)
    time.sleep(0.5)  # one ledger flush interval
    state_dir = Path(json.loads(json.dumps(_read_yaml(gw.config_path)))["state"]["dir"])
    stored = b"".join(p.read_bytes() for p in state_dir.glob("hedge.db*"))
    for needle in (secret, MASTER_KEY, "sk-upstream-secret"):
        assert needle.encode() not in stored
        assert needle not in gw.log.read_text()


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def test_cli_keys_roundtrip(gw: Gateway) -> None:
    def hedge(*args: str) -> Any:
        out = subprocess.run(
            [sys.executable, "-m", "hedge", "keys", *args, "--config", str(gw.config_path), "--json"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    created = hedge("create", "--name", "cli", "--budget-usd", "5", "--budget-period", "month", "--rpm", "7")
    assert created["key"].startswith("sk-hedge-") and created["budget_period"] == "month"
    _sdk(gw, created["key"]).chat.completions.create(model="chat", messages=MSG)
    assert hedge("update", created["id"], "--tpm", "1000")["tpm"] == 1000
    assert hedge("revoke", created["id"])["revoked_at"] is not None
    assert any(k["id"] == created["id"] for k in hedge("list"))


# ---- two replicas sharing PostgreSQL and Redis ----


@pytest.fixture
def replicas(mock: Mock, logs: Path, pg_schema: str) -> Iterator[tuple[Gateway, Gateway]]:
    state = {
        "database_url": f"{PG_BASE}?search_path={pg_schema}",
        "redis_url": REDIS_URL,
        "redis_prefix": f"hedge-test-{secrets.token_hex(4)}:",
    }
    config = _config(mock, state)
    first = start_gateway(config, logs)
    second = start_gateway(config, logs)
    yield first, second
    first.stop()
    second.stop()


async def _hammer(
    gateways: tuple[Gateway, Gateway], secret: str, total: int, max_tokens: int | None = None
) -> list[int]:
    clients = [openai.AsyncOpenAI(base_url=g.base_url, api_key=secret, max_retries=0) for g in gateways]
    statuses: list[int] = []
    extra: dict[str, Any] = {} if max_tokens is None else {"max_tokens": max_tokens}

    async def one(i: int) -> None:
        try:
            await clients[i % 2].chat.completions.create(model="chat", messages=MSG, **extra)
            statuses.append(200)
        except openai.APIStatusError as exc:
            statuses.append(exc.status_code)

    await asyncio.gather(*(one(i) for i in range(total)))
    for c in clients:
        await c.close()
    return statuses


def test_two_replicas_enforce_one_budget_and_one_rpm(replicas: tuple[Gateway, Gateway]) -> None:
    first, second = replicas
    if 60 - time.time() % 60 < 10:
        time.sleep(60 - time.time() % 60 + 0.1)
    rpm_key = _admin(first, "POST", "/admin/keys", {"name": "shared-rpm", "rpm": 10}).json()["key"]
    statuses = asyncio.run(_hammer(replicas, rpm_key, 30))
    assert statuses.count(200) == 10, "one RPM limit across both replicas"
    assert statuses.count(429) == 20

    per_request = 0.0
    probe = _admin(second, "POST", "/admin/keys", {"name": "probe"}).json()["key"]
    raw = _sdk(first, probe).chat.completions.with_raw_response.create(model="chat", messages=MSG)
    per_request = float(raw.headers["x-hedge-cost-usd"])
    budget = per_request * 10.5
    budget_key = _admin(second, "POST", "/admin/keys", {"name": "shared-budget", "budget_usd": budget}).json()
    served = 0
    for _ in range(40):  # waves of concurrent requests until both replicas refuse, the budget used up
        statuses = asyncio.run(_hammer(replicas, budget_key["key"], 8, max_tokens=16))
        served += statuses.count(200)
        if not statuses.count(200) and _key_spend(first, "shared-budget", served) >= budget:
            break
    # Admission reserves each request's maximum cost, so concurrency cannot push past the budget:
    # at most the one request admitted while budget remained ends beyond it.
    assert 11 <= served <= 12, f"served {served} with a budget worth 10.5 requests"
    spend = _admin(first, "GET", "/admin/spend?by=key&since=1h").json()
    row = next(r for r in spend["rows"] if r["group"] == "shared-budget")
    assert row["requests"] == served
    assert row["cost_usd"] == pytest.approx(served * per_request, rel=1e-6)


def _key_spend(gw: Gateway, name: str, requests: int) -> float:
    """The key's booked cost, once the ledger holds all ``requests`` of it (it writes in batches)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = _admin(gw, "GET", "/admin/spend?by=key&since=1h").json()["rows"]
        row = next((r for r in rows if r["group"] == name), None)
        if row is not None and row["requests"] == requests:
            return float(row["cost_usd"])
        time.sleep(0.05)
    raise AssertionError(f"the ledger never showed {requests} requests for {name}")
