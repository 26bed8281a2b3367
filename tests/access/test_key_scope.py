"""What a virtual key may reach: its model restriction holds for whatever serves the request, its
cached answers are its own, and a revoked key is refused on every authenticated endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import MASTER_KEY, Gateway, Mock, start_gateway

CHEAP_MODEL = "qwen2.5-72b-instruct"
PREMIUM_MODEL = "gpt-4o"


def _config(cheap: Mock, premium: Mock) -> dict[str, Any]:
    price = {"input": 1, "output": 1}
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "cheap": {"style": "openai", "base_url": f"{cheap.url}/v1", "api_key": "sk-a"},
            "premium": {"style": "openai", "base_url": f"{premium.url}/v1", "api_key": "sk-b"},
        },
        "models": {
            "cheap": {
                "deployments": [{"provider": "cheap", "model": CHEAP_MODEL, "price": price}],
                "rules": [{"when": {"tags": ["vip"]}, "use": "premium"}],
                "fallbacks": ["premium"],
                "escalate": {"to": "premium", "when": ["length"]},
            },
            "premium": {"deployments": [{"provider": "premium", "model": PREMIUM_MODEL, "price": price}]},
            "cached": {
                "deployments": [{"provider": "cheap", "model": CHEAP_MODEL, "price": price}],
                "cache_ttl_s": 300,
            },
            "shared-cache": {
                "deployments": [{"provider": "cheap", "model": CHEAP_MODEL, "price": price}],
                "cache_ttl_s": 300,
                "cache_scope": "team",
            },
        },
        "resilience": {"max_attempts": 2, "breaker": {"failures": 1_000_000}},
        "state": {"key_cache_ttl_s": 0},
    }


@pytest.fixture(scope="module")
def gw(cheap: Mock, premium: Mock, logs: Path) -> Iterator[Gateway]:
    gateway = start_gateway(_config(cheap, premium), logs)
    yield gateway
    gateway.stop()


def _admin(gw: Gateway, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    return httpx.request(method, f"{gw.url}{path}", json=body, headers=headers, timeout=10)


def _key(gw: Gateway, **fields: Any) -> dict[str, Any]:
    resp = _admin(gw, "POST", "/admin/keys", {"name": "k", **fields})
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


def _chat(gw: Gateway, key: str, model: str = "cheap", headers: Any = None, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello there"}], **extra}
    return httpx.post(
        f"{gw.base_url}/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}", **(headers or {})},
        timeout=20,
    )


# Each way a request for 'cheap' could end up on 'premium'.
ESCAPES: list[tuple[str, dict[str, Any]]] = [
    ("tag header rule", {"headers": {"x-hedge-tags": "vip"}}),
    ("metadata.tags rule", {"metadata": {"tags": ["vip"]}}),
    ("hedge.order preference", {"hedge": {"order": ["premium"]}}),
    ("escalation", {"max_tokens": 1}),
]


@pytest.mark.parametrize(("how", "extra"), ESCAPES, ids=[e[0] for e in ESCAPES])
def test_the_master_key_is_routed_to_premium(gw: Gateway, how: str, extra: dict[str, Any]) -> None:
    """The control: without a restriction each of these does reach the other alias."""
    resp = _chat(gw, MASTER_KEY, **extra)
    assert resp.status_code == 200, resp.text
    assert PREMIUM_MODEL in resp.headers["x-hedge-route"], (how, resp.headers["x-hedge-route"])


@pytest.mark.parametrize(("how", "extra"), ESCAPES, ids=[e[0] for e in ESCAPES])
def test_a_restricted_key_is_only_served_by_its_aliases(gw: Gateway, how: str, extra: dict[str, Any]) -> None:
    key = _key(gw, models=["cheap"])["key"]
    resp = _chat(gw, key, **extra)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-hedge-model"] == CHEAP_MODEL, how
    assert PREMIUM_MODEL not in resp.headers["x-hedge-route"], (how, resp.headers["x-hedge-route"])


def test_a_restricted_key_is_not_failed_over_to_another_alias(gw: Gateway, cheap: Mock) -> None:
    cheap.configure(fail_rate=1.0, fail_status=500)
    master = _chat(gw, MASTER_KEY)
    assert master.status_code == 200 and master.headers["x-hedge-model"] == PREMIUM_MODEL
    key = _key(gw, models=["cheap"])["key"]
    resp = _chat(gw, key)
    assert resp.status_code == 502, resp.text
    assert PREMIUM_MODEL not in resp.headers.get("x-hedge-route", "")


def test_cached_answers_are_scoped_to_the_key(gw: Gateway) -> None:
    first, second = _key(gw)["key"], _key(gw)["key"]
    assert _chat(gw, first, "cached").headers["x-hedge-cache"] == "miss"
    assert _chat(gw, first, "cached").headers["x-hedge-cache"] == "hit"
    other = _chat(gw, second, "cached")
    assert other.headers["x-hedge-cache"] == "miss", "one key never receives another key's cached answer"
    assert _chat(gw, MASTER_KEY, "cached").headers["x-hedge-cache"] == "miss"


def test_cache_scope_team_shares_within_a_team_only(gw: Gateway) -> None:
    alice, bob = _key(gw, team="red")["key"], _key(gw, team="red")["key"]
    carol = _key(gw, team="blue")["key"]
    assert _chat(gw, alice, "shared-cache").headers["x-hedge-cache"] == "miss"
    assert _chat(gw, bob, "shared-cache").headers["x-hedge-cache"] == "hit"
    assert _chat(gw, carol, "shared-cache").headers["x-hedge-cache"] == "miss"


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/cheap"])
def test_revoked_and_expired_keys_are_refused_everywhere(gw: Gateway, path: str) -> None:
    import time

    revoked = _key(gw)
    assert (
        httpx.get(f"{gw.url}{path}", headers={"authorization": f"Bearer {revoked['key']}"}).status_code == 200
    )
    _admin(gw, "DELETE", f"/admin/keys/{revoked['id']}")
    resp = httpx.get(f"{gw.url}{path}", headers={"authorization": f"Bearer {revoked['key']}"})
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "key_revoked"
    expired = _key(gw, expires_at=time.time() - 1)
    resp = httpx.get(f"{gw.url}{path}", headers={"authorization": f"Bearer {expired['key']}"})
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "key_expired"
