"""``POST /v1/messages/count_tokens`` and Anthropic-shaped errors on ``/v1/messages*``, through a real
``hedge serve``, driven by the official ``anthropic`` SDK.

An Anthropic-style mock counts natively; an OpenAI-style mock cannot, so the gateway estimates.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from conftest import MASTER_KEY, Gateway, Mock, start_gateway
from hedge.providers.token_estimate import estimate_input_tokens

LIMIT = 64 * 1024
"""The gateway's ``server.max_body_bytes``."""
PRICE = {"input": 2.0, "output": 8.0}
SYSTEM = "You are a terse weather assistant."
MESSAGES: list[Any] = [{"role": "user", "content": "What is the weather in Paris today?"}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def gateway(style_mocks: dict[str, Mock], logs: Path) -> Iterator[Gateway]:
    an, oa = style_mocks["anthropic"], style_mocks["openai"]
    claude = {"provider": "an", "model": "claude-sonnet-4", "price": PRICE}
    gpt = {"provider": "oa", "model": "gpt-4o", "price": PRICE}
    config = {
        "server": {"master_key": MASTER_KEY, "max_body_bytes": LIMIT},
        "providers": {
            "an": {"style": "anthropic", "base_url": an.url, "api_key": "key-an"},
            "oa": {"style": "openai", "base_url": f"{oa.url}/v1", "api_key": "key-oa"},
        },
        "models": {
            "claude": {"deployments": [claude]},
            "gpt": {"deployments": [gpt]},
            "gpt-then-claude": {"strategy": "ordered", "deployments": [gpt, claude]},
        },
        "resilience": {"max_attempts": 1, "breaker": {"failures": 1_000_000}},
    }
    gw = start_gateway(config, logs)
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def _reset(style_mocks: dict[str, Mock]) -> Iterator[None]:
    yield
    for mock in style_mocks.values():
        mock.reset()


def sdk(gateway: Gateway, key: str = MASTER_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0, timeout=20)


def make_key(gateway: Gateway, **limits: Any) -> str:
    created = httpx.post(
        f"{gateway.url}/admin/keys",
        json={"name": "counter", **limits},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
    )
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


# -- counting --------------------------------------------------------------------------------------------


def test_native_count_from_an_anthropic_deployment(gateway: Gateway, style_mocks: dict[str, Mock]) -> None:
    client = sdk(gateway)
    raw = client.messages.with_raw_response.count_tokens(
        model="claude", system=SYSTEM, messages=MESSAGES, tools=[WEATHER]
    )
    counted = raw.parse()
    assert raw.headers["x-hedge-token-count"] == "native"
    assert raw.headers["x-hedge-provider"] == "an"
    assert raw.headers["x-hedge-model"] == "claude-sonnet-4"
    assert raw.headers["x-hedge-route"] == "an/claude-sonnet-4=ok"
    assert raw.headers["request-id"] == raw.headers["x-request-id"]
    sent = style_mocks["anthropic"].stats()["last_body"]
    assert sent["model"] == "claude-sonnet-4"  # the deployment's model, not the alias
    assert set(sent) == {"model", "system", "messages", "tools"}  # nothing the counting API refuses
    assert style_mocks["anthropic"].stats()["by_path"] == {"/v1/messages/count_tokens": 1}

    # The upstream's count is the one a message with the same prompt reports.
    created = client.messages.create(model="claude", max_tokens=20, system=SYSTEM, messages=MESSAGES)
    assert counted.input_tokens == created.usage.input_tokens > 0


def test_estimate_when_the_route_has_no_anthropic_deployment(
    gateway: Gateway, style_mocks: dict[str, Mock]
) -> None:
    raw = sdk(gateway).messages.with_raw_response.count_tokens(
        model="gpt", system=SYSTEM, messages=MESSAGES, tools=[WEATHER]
    )
    assert raw.headers["x-hedge-token-count"] == "estimated"
    assert "x-hedge-provider" not in raw.headers
    assert raw.http_response.json() == {
        "input_tokens": estimate_input_tokens({"system": SYSTEM, "messages": MESSAGES, "tools": [WEATHER]})
    }
    assert raw.parse().input_tokens > 346  # the tool-use system prompt alone
    assert style_mocks["openai"].stats()["requests"] == 0  # nothing upstream is asked


def test_any_anthropic_deployment_of_the_plan_counts(gateway: Gateway) -> None:
    raw = sdk(gateway).messages.with_raw_response.count_tokens(model="gpt-then-claude", messages=MESSAGES)
    assert raw.headers["x-hedge-token-count"] == "native"
    assert raw.headers["x-hedge-provider"] == "an"


def test_a_failing_upstream_falls_back_to_the_estimate(
    gateway: Gateway, style_mocks: dict[str, Mock]
) -> None:
    style_mocks["anthropic"].configure(fail_first=1, fail_status=529)
    raw = sdk(gateway).messages.with_raw_response.count_tokens(model="claude", messages=MESSAGES)
    assert raw.headers["x-hedge-token-count"] == "estimated"
    assert raw.headers["x-hedge-route"] == "an/claude-sonnet-4=upstream_unavailable"
    assert raw.headers["x-hedge-attempts"] == "1"
    assert "x-hedge-provider" not in raw.headers
    assert raw.parse().input_tokens == estimate_input_tokens({"messages": MESSAGES})
    assert style_mocks["anthropic"].stats()["failures_injected"] == 1


def test_an_upstream_refusing_the_request_is_the_answer(
    gateway: Gateway, style_mocks: dict[str, Mock]
) -> None:
    style_mocks["anthropic"].configure(fail_first=1, fail_status=400)
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk(gateway).messages.count_tokens(model="claude", messages=MESSAGES)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "invalid_request_error: Invalid request."},
    }
    assert caught.value.response.headers["x-hedge-route"] == "an/claude-sonnet-4=400"


def test_body_is_validated_like_anthropics(gateway: Gateway) -> None:
    client = sdk(gateway)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.count_tokens(model="claude", messages=MESSAGES, extra_body={"max_tokens": 5})
    assert caught.value.body["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Extra inputs are not permitted",
    }
    with pytest.raises(anthropic.BadRequestError, match=r"messages\.0\.role"):
        client.messages.count_tokens(model="claude", messages=[{"role": "developer", "content": "hi"}])
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.count_tokens(model="no-such-alias", messages=MESSAGES)
    assert missing.value.body["error"]["type"] == "not_found_error"


def test_a_restricted_key_gets_the_messages_error(gateway: Gateway) -> None:
    client = sdk(gateway, make_key(gateway, models=["gpt"]))
    with pytest.raises(anthropic.PermissionDeniedError) as counted:
        client.messages.count_tokens(model="claude", messages=MESSAGES)
    with pytest.raises(anthropic.PermissionDeniedError) as created:
        client.messages.create(model="claude", max_tokens=5, messages=MESSAGES)
    assert counted.value.body == created.value.body
    assert counted.value.body["error"]["type"] == "permission_error"
    assert client.messages.count_tokens(model="gpt", messages=MESSAGES).input_tokens > 0


def test_counting_books_nothing_on_the_key(gateway: Gateway) -> None:
    client = sdk(gateway, make_key(gateway, rpm=1))
    for alias in ("claude", "gpt", "claude"):
        assert client.messages.count_tokens(model=alias, messages=MESSAGES).input_tokens > 0
    client.messages.create(model="gpt", max_tokens=5, messages=MESSAGES)  # the minute's one request
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="gpt", max_tokens=5, messages=MESSAGES)
    lines = httpx.get(f"{gateway.url}/metrics").text.splitlines()
    counted = [line for line in lines if 'endpoint="count_tokens"' in line]
    assert any(line.startswith("hedge_requests_total{") for line in counted), "each count is one record"
    costs = [line for line in counted if line.startswith("hedge_cost_usd_total{")]
    assert costs and all(float(line.rsplit(" ", 1)[1]) == 0 for line in costs)


# -- Anthropic-shaped errors on /v1/messages* -----------------------------------------------------------


def test_authentication_failures_are_anthropic_shaped(gateway: Gateway) -> None:
    for call in (
        lambda c: c.messages.count_tokens(model="claude", messages=MESSAGES),
        lambda c: c.messages.create(model="claude", max_tokens=5, messages=MESSAGES),
    ):
        with pytest.raises(anthropic.AuthenticationError) as caught:
            call(sdk(gateway, "sk-wrong"))
        assert caught.value.body == {
            "type": "error",
            "error": {"type": "authentication_error", "message": "Incorrect API key provided."},
        }
        assert caught.value.request_id is not None


def test_a_missing_key_is_anthropic_shaped(gateway: Gateway) -> None:
    resp = httpx.post(
        f"{gateway.url}/v1/messages/count_tokens", json={"model": "claude", "messages": MESSAGES}
    )
    assert resp.status_code == 401
    assert resp.json()["type"] == "error"
    assert resp.json()["error"]["type"] == "authentication_error"


def test_a_body_too_large_is_anthropic_shaped(gateway: Gateway) -> None:
    big = [{"role": "user", "content": "x" * (LIMIT + 1)}]
    with pytest.raises(anthropic.ContentTooLargeError) as caught:
        sdk(gateway).messages.count_tokens(model="claude", messages=big)
    assert caught.value.status_code == 413
    assert caught.value.body["error"]["type"] == "request_too_large"


def test_unknown_paths_under_messages_are_anthropic_not_found(gateway: Gateway) -> None:
    request: Any = {"custom_id": "a", "params": {"model": "claude", "max_tokens": 5, "messages": MESSAGES}}
    with pytest.raises(anthropic.NotFoundError) as caught:
        sdk(gateway).messages.batches.create(requests=[request])
    body: Any = caught.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
    assert "/v1/messages/batches" in body["error"]["message"]
    assert caught.value.request_id is not None


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/messages", 405),
        ("GET", "/v1/messages/count_tokens", 405),
        ("POST", "/v1/messages/nope", 404),
        ("DELETE", "/v1/messages/batches/msgbatch_1", 404),
    ],
)
def test_wrong_routes_under_messages_are_anthropic_shaped(
    gateway: Gateway, method: str, path: str, status: int
) -> None:
    resp = httpx.request(method, f"{gateway.url}{path}", headers={"x-api-key": MASTER_KEY})
    assert resp.status_code == status
    etype = "not_found_error" if status == 404 else "invalid_request_error"
    assert resp.json() == {
        "type": "error",
        "error": {"type": etype, "message": resp.json()["error"]["message"]},
    }
    assert resp.headers["request-id"].startswith("req_")


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/chat/completions"), ("POST", "/v1/messagesx")])
def test_other_paths_keep_openais_shape(gateway: Gateway, method: str, path: str) -> None:
    resp = httpx.request(method, f"{gateway.url}{path}")
    assert resp.status_code in (404, 405)
    assert set(resp.json()) == {"error"}
    assert resp.json()["error"]["type"] == "invalid_request_error"
