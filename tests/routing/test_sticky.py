"""Cache-warm routing: a sticky session stays on one deployment, sessions split by the weights,
and (with Redis) every replica keeps a session where another put it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import MASTER_KEY, REDIS_URL, Mock, start_gateway
from hedge.config import StickyConfig, parse_config
from hedge.gateway.pipeline import Completion, Exchange
from hedge.gateway.runtime import Runtime, open_runtime
from hedge.routing.sticky import pin_name, session_of


def _config(cheap: Mock, premium: Mock, tmp: Path, sticky: dict[str, Any], **state: Any) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "a": {"style": "openai", "base_url": f"{cheap.url}/v1", "api_key": "sk-a"},
            "b": {"style": "openai", "base_url": f"{premium.url}/v1", "api_key": "sk-b"},
        },
        "models": {
            "chat": {
                "strategy": "weighted",
                "sticky": sticky,
                "deployments": [
                    {"provider": "a", "model": "m1", "weight": 50, "price": {"input": 1.0, "output": 2.0}},
                    {"provider": "b", "model": "m2", "weight": 50, "price": {"input": 1.0, "output": 2.0}},
                ],
            }
        },
        "resilience": {"breaker": {"failures": 1}},
        "state": {"dir": str(tmp), **state},
    }


async def _serve(rt: Runtime, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    result = await Exchange(rt, "chat", "req_" + secrets.token_hex(4), headers or {}).serve(body, None)
    assert isinstance(result, Completion)
    return f"{result.provider}/{result.model}"


def _body(user: str, turn: int = 0) -> dict[str, Any]:
    return {"model": "chat", "user": user, "messages": [{"role": "user", "content": f"turn {turn}"}]}


@pytest.fixture
async def runtime(cheap: Mock, premium: Mock, tmp_path: Path) -> AsyncIterator[Runtime]:
    rt = await open_runtime(parse_config(_config(cheap, premium, tmp_path, {"by": "user"})))
    try:
        yield rt
    finally:
        await rt.close()


async def test_four_users_over_a_sticky_even_split_each_stay_on_one_deployment(runtime: Runtime) -> None:
    users = ["ann", "bob", "cy", "dee"]
    served: dict[str, set[str]] = {u: set() for u in users}
    for turn in range(4):
        for user in users:
            served[user].add(await _serve(runtime, _body(user, turn)))
    assert all(len(deps) == 1 for deps in served.values()), served
    homes = [next(iter(d)) for d in served.values()]
    assert sorted(homes) == ["a/m1", "a/m1", "b/m2", "b/m2"]


async def test_without_a_session_id_the_split_is_per_request(runtime: Runtime) -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    assert {await _serve(runtime, dict(body)) for _ in range(4)} == {"a/m1", "b/m2"}


async def test_a_session_moves_when_its_deployment_is_unhealthy_and_stays_there(
    runtime: Runtime, cheap: Mock
) -> None:
    home = await _serve(runtime, _body("eve"))
    away = "b/m2" if home == "a/m1" else "a/m1"
    runtime.failover.breaker_by_id(home).failure()  # one failure opens it (breaker.failures: 1)
    assert await _serve(runtime, _body("eve", 1)) == away
    assert await _serve(runtime, _body("eve", 2)) == away
    assert runtime.router.stats[away].prompt_tokens > 0


async def test_replicas_share_sessions_through_redis(cheap: Mock, premium: Mock, tmp_path: Path) -> None:
    prefix = f"hedge-test-{secrets.token_hex(4)}:"
    config = parse_config(
        _config(
            cheap,
            premium,
            tmp_path,
            {"by": "header:x-session", "ttl_s": 60},
            redis_url=REDIS_URL,
            redis_prefix=prefix,
        )
    )
    one, two = await open_runtime(config), await open_runtime(config)
    try:
        body = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}
        homes = {s: await _serve(one, dict(body), {"x-session": s}) for s in ("s1", "s2")}
        assert set(homes.values()) == {"a/m1", "b/m2"}
        for _ in range(3):  # the other replica's round-robin starts afresh: only the pins keep them
            for session, home in homes.items():
                assert await _serve(two, dict(body), {"x-session": session}) == home
    finally:
        await one.close()
        await two.close()


def test_session_identities() -> None:
    user = StickyConfig(by="user")
    assert session_of(user, {"user": "u1"}, {}) == "u1"
    assert session_of(user, {"safety_identifier": "s1"}, {}) == "s1"
    assert session_of(user, {"metadata": {"user_id": "m1"}}, {}) == "m1"
    assert session_of(user, {}, {}) is None
    assert session_of(StickyConfig(by="prompt_cache_key"), {"prompt_cache_key": "k"}, {}) == "k"
    header = StickyConfig(by="header:X-Session")
    assert header.by == "header:x-session"
    assert session_of(header, {}, {"x-session": "h"}) == "h"
    prefix = StickyConfig(by="prefix")
    first = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"}]}
    later = {
        "messages": [
            *first["messages"],
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
        ]
    }
    other = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "other"}]}
    assert session_of(prefix, first, {}) == session_of(prefix, later, {}) != session_of(prefix, other, {})
    assert "u1" not in pin_name("chat", "u1")


def test_a_bad_sticky_setting_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="header:NAME"):
        StickyConfig(by="cookie")


def test_sticky_over_http_with_the_sdk(cheap: Mock, premium: Mock, logs: Path, tmp_path: Path) -> None:
    gw = start_gateway(_config(cheap, premium, tmp_path, {"by": "prompt_cache_key"}), logs)
    try:
        client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0)
        seen: dict[str, set[str]] = {"k1": set(), "k2": set()}
        for _ in range(3):
            for k in seen:
                raw = client.chat.completions.with_raw_response.create(
                    model="chat", messages=[{"role": "user", "content": "hi"}], prompt_cache_key=k
                )
                seen[k].add(raw.headers["x-hedge-provider"])
        assert [len(v) for v in seen.values()] == [1, 1] and seen["k1"] != seen["k2"]
        rows = httpx.get(
            f"{gw.url}/admin/dashboard/breakers", headers={"authorization": f"Bearer {MASTER_KEY}"}
        ).json()["deployments"]
        assert all("cached_tokens" in r and r["prompt_tokens"] > 0 for r in rows)
    finally:
        gw.stop()
