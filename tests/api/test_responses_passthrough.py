"""``/v1/responses`` passed through to an OpenAI-native upstream (``responses_api: true``): the
upstream's own Responses API answers, under the gateway's ids, with the gateway's routing, cost
and storage; a deployment without it in the same alias is still served by translation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import MASTER_KEY, Gateway, Mock, start_gateway, start_mock

PRICE = {"input": 1.0, "output": 2.0}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def native(logs: Path) -> Iterator[Mock]:
    mock = start_mock("openai", logs)
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def translated(logs: Path) -> Iterator[Mock]:
    mock = start_mock("anthropic", logs)
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def gateway(native: Mock, translated: Mock, logs: Path) -> Iterator[Gateway]:
    config: dict[str, Any] = {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "oai": {
                "style": "openai",
                "base_url": f"{native.url}/v1",
                "api_key": "sk-o",
                "responses_api": True,
            },
            "claude": {"style": "anthropic", "base_url": translated.url, "api_key": "sk-c"},
        },
        "models": {
            "native": {"deployments": [{"provider": "oai", "model": "gpt-4o", "price": PRICE}]},
            "claude-only": {
                "deployments": [{"provider": "claude", "model": "claude-sonnet-4-5", "price": PRICE}]
            },
            "mixed": {
                "strategy": "ordered",
                "deployments": [
                    {"provider": "oai", "model": "gpt-4o", "price": PRICE},
                    {"provider": "claude", "model": "claude-sonnet-4-5", "price": PRICE},
                ],
            },
        },
        "resilience": {"max_attempts": 2, "breaker": {"failures": 1_000_000}},
    }
    gw = start_gateway(config, logs)
    yield gw
    gw.stop()


@pytest.fixture
def client(gateway: Gateway, native: Mock, translated: Mock) -> Iterator[openai.OpenAI]:
    yield openai.OpenAI(base_url=gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)
    native.reset()
    translated.reset()


def test_a_whole_response_comes_from_the_upstreams_own_responses_api(
    client: openai.OpenAI, native: Mock
) -> None:
    raw = client.responses.with_raw_response.create(model="native", input="Say hello.")
    response = raw.parse()
    assert native.stats()["by_path"].get("/v1/responses") == 1, "passed through, not translated to chat"
    assert "/v1/chat/completions" not in native.stats()["by_path"]
    request_id = raw.headers["x-hedge-request-id"]
    assert response.id == "resp_" + request_id.removeprefix("req_"), "the gateway's id, not the upstream's"
    assert response.output_text and response.status == "completed"
    assert float(raw.headers["x-hedge-cost-usd"]) > 0
    assert raw.headers["x-hedge-provider"] == "oai"
    assert native.stats()["last_body"]["model"] == "gpt-4o"
    assert client.responses.retrieve(response.id).output_text == response.output_text


def test_a_streamed_response_is_forwarded_with_the_gateways_id(client: openai.OpenAI, native: Mock) -> None:
    with client.responses.stream(model="native", input="Say hello.") as stream:
        events = [event.type for event in stream]
        final = stream.get_final_response()
    assert native.stats()["by_path"].get("/v1/responses") == 1
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert final.id.startswith("resp_") and final.output_text
    stored = client.responses.retrieve(final.id)
    assert stored.output_text == final.output_text


def test_a_tool_round_trip_through_previous_response_id(client: openai.OpenAI, native: Mock) -> None:
    first = client.responses.create(model="native", input="What is the weather in Paris?", tools=[WEATHER])
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert json.loads(call.arguments)
    second = client.responses.create(
        model="native",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
        tools=[WEATHER],
    )
    assert "sunny, 21 C" in second.output_text
    sent = native.stats()["last_body"]
    assert "previous_response_id" not in sent, "the upstream does not know the gateway's ids"
    assert [item.get("type") for item in sent["input"]][-2:] == ["function_call", "function_call_output"]


def test_an_alias_fails_over_from_native_to_translated(
    client: openai.OpenAI, native: Mock, translated: Mock
) -> None:
    native.configure(fail_rate=1.0, fail_status=503)
    raw = client.responses.with_raw_response.create(model="mixed", input="Say hello.")
    assert raw.headers["x-hedge-provider"] == "claude"
    assert raw.headers["x-hedge-route"] == "oai/gpt-4o=upstream_unavailable, claude/claude-sonnet-4-5=ok"
    assert raw.parse().output_text
    assert translated.stats()["by_path"].get("/v1/messages") == 1


def test_a_native_stream_cut_part_way_ends_with_an_error_event(
    gateway: Gateway, client: openai.OpenAI, native: Mock
) -> None:
    native.configure(fail_rate=1.0, fail_mode="disconnect")
    body = {"model": "native", "input": "Tell me a long story about whales.", "stream": True}
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    with httpx.stream(
        "POST", f"{gateway.base_url}/responses", json=body, headers=headers, timeout=20
    ) as resp:
        assert resp.status_code == 200
        text = resp.read().decode()
    events = [block for block in text.split("\n\n") if block.strip()]
    assert events[0].startswith("event: response.created")
    assert events[-1].startswith("event: error"), events[-1]
    code = json.loads(events[-1].split("data: ", 1)[1])["code"]
    assert code in ("upstream_stream_truncated", "upstream_connection_error")


HOSTED = [{"type": "web_search_preview"}]


def test_hosted_tools_go_to_a_native_upstream(client: openai.OpenAI, native: Mock) -> None:
    response = client.responses.create(model="native", input="Search the news.", tools=HOSTED)  # type: ignore[arg-type]
    assert response.output_text
    assert native.stats()["last_body"]["tools"] == HOSTED


def test_hosted_tools_are_refused_where_no_native_upstream_can_run_them(
    client: openai.OpenAI, native: Mock, translated: Mock
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="claude-only", input="Search the news.", tools=HOSTED)  # type: ignore[arg-type]
    assert caught.value.code == "unsupported_parameter" and caught.value.param == "tools[0]"
    assert "responses_api" in caught.value.message
    assert translated.stats()["requests"] == 0, "nothing was sent to the upstream that cannot run it"
    native.configure(fail_rate=1.0, fail_status=503)  # the native one is down: the other cannot stand in
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="mixed", input="Search the news.", tools=HOSTED)  # type: ignore[arg-type]
