"""``/v1/responses`` through Hedge with the official ``openai`` SDK, on every upstream wire style.

One gateway, one alias per style (OpenAI, Anthropic Messages, Gemini mocks): the Responses API is
translated to chat completions inside the gateway, so each style must give the same Response,
whole and streamed, as the SDK's own helpers (``output_text``, ``responses.stream()``,
``responses.parse()``) read it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pydantic
import pytest
from openai.types.responses import Response

from conftest import MASTER_KEY, PG_BASE, Gateway, Mock, start_gateway

STYLES: dict[str, tuple[str, str]] = {
    "oa": ("openai", "gpt-4o"),
    "an": ("anthropic", "claude-sonnet-4"),
    "ge": ("gemini", "gemini-2.5-flash"),
}
ALIASES = list(STYLES)
PRICE = {"input": 2.0, "output": 8.0}
WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TOOL_RESULT = json.dumps({"temp_c": 18, "sky": "sunny"}, separators=(",", ":"))
"""Compact, so the Gemini mock (which sees the parsed object) quotes back the same text."""


def gateway_config(mocks: dict[str, Mock], **extra: Any) -> dict[str, Any]:
    providers = {
        name: {
            "style": name,
            "base_url": f"{mock.url}/v1" if name == "openai" else mock.url,
            "api_key": f"key-{name}",
        }
        for name, mock in mocks.items()
    }
    models = {
        alias: {"deployments": [{"provider": provider, "model": model, "price": PRICE}]}
        for alias, (provider, model) in STYLES.items()
    }
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": providers,
        "models": models,
        "resilience": {"max_attempts": 1, "breaker": {"failures": 1_000_000}},
        **extra,
    }


@pytest.fixture(scope="module")
def gw(style_mocks: dict[str, Mock], logs: Path) -> Iterator[Gateway]:
    gateway = start_gateway(gateway_config(style_mocks), logs)
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)


@pytest.fixture
def openai_mock(style_mocks: dict[str, Mock]) -> Iterator[Mock]:
    """The OpenAI-style mock, set back to good behaviour after the test."""
    yield style_mocks["openai"]
    style_mocks["openai"].reset()


def create(client: openai.OpenAI, stream: bool, **params: Any) -> Response:
    """One response, whole or through ``responses.stream()``; a streamed one is checked event by event."""
    if not stream:
        return client.responses.create(**params)
    with client.responses.stream(**params) as events:
        seen = list(events)
        final = events.get_final_response()
    kinds = [e.type for e in seen]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in seen] == list(range(len(seen)))
    created = seen[0].response  # type: ignore[union-attr]
    assert created.id == final.id and created.status == "in_progress"
    text = "".join(e.delta for e in seen if e.type == "response.output_text.delta")
    assert text == final.output_text
    return final


def function_calls(response: Response) -> list[Any]:
    return [item for item in response.output if item.type == "function_call"]


# -- text ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("alias", ALIASES)
def test_string_input(client: openai.OpenAI, alias: str, stream: bool) -> None:
    model = STYLES[alias][1]
    response = create(client, stream, model=alias, input="hello there")
    assert response.object == "response"
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.model == model
    assert response.output_text == f"{model} says: hello there"
    [message] = response.output
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert message.id.startswith("msg_")
    assert response.usage is not None
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert (response.usage.model_extra or {})["hedge_cost_usd"] > 0


@pytest.mark.parametrize("alias", ALIASES)
def test_item_input_and_instructions(client: openai.OpenAI, alias: str) -> None:
    """Instructions reach the model as its system prompt: the mocks obey 'Always answer in uppercase'."""
    model = STYLES[alias][1]
    raw = client.responses.with_raw_response.create(
        model=alias,
        instructions="Always answer in uppercase.",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "first question"}]},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "first answer"}],
            },
            {"role": "user", "content": "second question"},
        ],
        metadata={"team": "blue"},
        temperature=0.5,
    )
    response = raw.parse()
    assert response.output_text == f"{model} says: second question".upper()
    assert response.instructions == "Always answer in uppercase."
    assert response.metadata == {"team": "blue"}
    assert response.temperature == 0.5
    assert raw.headers["x-hedge-provider"] == STYLES[alias][0]
    assert raw.headers["x-request-id"] == response._request_id  # type: ignore[attr-defined]
    assert response.id == "resp_" + raw.headers["x-request-id"].removeprefix("req_")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("alias", ALIASES)
def test_max_output_tokens_gives_incomplete(client: openai.OpenAI, alias: str, stream: bool) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    params: dict[str, Any] = {"model": alias, "input": words, "max_output_tokens": 16}
    if stream:
        events = list(client.responses.create(stream=True, **params))
        assert events[-1].type == "response.incomplete"
        response = events[-1].response
    else:
        response = client.responses.create(**params)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 16
    assert response.output[0].status == "incomplete"


# -- tools -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("alias", ALIASES)
def test_function_tool_round_trip_with_explicit_items(
    client: openai.OpenAI, alias: str, stream: bool
) -> None:
    """The client sends the whole conversation back: its input, the response's output, the tool result."""
    model = STYLES[alias][1]
    ask = "What is the weather in Paris?"
    first = create(client, stream, model=alias, input=ask, tools=[WEATHER], store=False)
    [call] = function_calls(first)
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": ask}
    assert call.call_id and call.id and call.id.startswith("fc_")
    assert call.status == "completed"
    assert first.tools[0].name == "get_weather"  # type: ignore[union-attr]

    history: list[Any] = [{"role": "user", "content": ask}]
    history += [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": TOOL_RESULT})
    second = create(client, stream, model=alias, input=history, tools=[WEATHER], store=False)
    assert function_calls(second) == []
    assert second.output_text == f"{model} says: the tool returned {TOOL_RESULT}"


@pytest.mark.parametrize("alias", ALIASES)
def test_forced_tool_choice(client: openai.OpenAI, alias: str) -> None:
    time_tool = {**WEATHER, "name": "get_time", "parameters": {"type": "object", "properties": {}}}
    response = client.responses.create(
        model=alias,
        input="hi",
        tools=[WEATHER, time_tool],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_time"},
    )
    assert [c.name for c in function_calls(response)] == ["get_time"]
    assert response.tool_choice.name == "get_time"  # type: ignore[union-attr]


# -- structured output -----------------------------------------------------------------------------------

CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 3}},
    "required": ["city", "days"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("alias", ALIASES)
def test_json_schema_format(client: openai.OpenAI, alias: str, stream: bool) -> None:
    text = {"format": {"type": "json_schema", "name": "trip", "schema": CITY_SCHEMA, "strict": True}}
    response = create(client, stream, model=alias, input="plan a trip", text=text)
    assert json.loads(response.output_text) == {"city": "plan a trip", "days": 3}
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "json_schema"


class Trip(pydantic.BaseModel):
    city: str
    days: int


@pytest.mark.parametrize("alias", ALIASES)
def test_parse_with_a_pydantic_model(client: openai.OpenAI, alias: str) -> None:
    parsed = client.responses.parse(model=alias, input="Lisbon", text_format=Trip)
    assert parsed.output_parsed == Trip(city="Lisbon", days=1)


@pytest.mark.parametrize("alias", ALIASES)
def test_stream_parse_with_a_pydantic_model(client: openai.OpenAI, alias: str) -> None:
    with client.responses.stream(model=alias, input="Lisbon", text_format=Trip) as events:
        for _ in events:
            pass
        final = events.get_final_response()
    assert final.output_parsed == Trip(city="Lisbon", days=1)


# -- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "param", "code"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "unsupported_parameter"),
        (
            {"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]},
            "tools[0].type",
            "unsupported_parameter",
        ),
        ({"truncation": "auto"}, "truncation", "unsupported_parameter"),
        ({"background": True}, "background", "unsupported_parameter"),
        ({"extra_body": {"frobnicate": 1}}, "frobnicate", "unknown_parameter"),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_image", "file_id": "file-1", "detail": "auto"}],
                    }
                ]
            },
            "input[0].content[0].file_id",
            "unsupported_parameter",
        ),
    ],
    ids=["web_search", "file_search", "truncation", "background", "unknown", "file_id"],
)
def test_refusals_are_400_in_openais_shape(
    client: openai.OpenAI, params: dict[str, Any], param: str, code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(**{"model": "oa", "input": "hi", **params})
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == param and error["code"] == code and error["type"] == "invalid_request_error"
    assert caught.value.request_id, "every answer carries x-request-id"


def test_unknown_alias_is_openais_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-alias", input="hi")


def test_failure_after_the_first_token_is_response_failed(client: openai.OpenAI, openai_mock: Mock) -> None:
    openai_mock.configure(fail_first=1, fail_mode="disconnect")
    events = list(client.responses.create(model="oa", input="one two three four five six", stream=True))
    assert events[0].type == "response.created"
    assert any(e.type == "response.output_text.delta" for e in events), "the failure came after content"
    last = events[-1]
    assert last.type == "response.failed"
    assert last.response.status == "failed"
    assert last.response.error is not None and last.response.error.code == "server_error"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    stored = client.responses.retrieve(last.response.id)
    assert stored.status == "failed", "a failed response is stored, as OpenAI stores it"
    assert stored.output_text and stored.output_text == last.response.output_text


def test_sse_event_names_and_the_record(gw: Gateway) -> None:
    """Each SSE event is named as OpenAI names it; the request counts as endpoint 'responses'."""
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    with httpx.stream(
        "POST",
        f"{gw.base_url}/responses",
        json={"model": "ge", "input": "hi", "stream": True},
        headers=headers,
    ) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        assert reply.headers["x-hedge-provider"] == "gemini"
        body = reply.read().decode()
    blocks = [b for b in body.split("\n\n") if b.strip()]
    for block in blocks:
        name, data = block.split("\n", 1)
        assert name.startswith("event: ") and data.startswith("data: ")
        assert json.loads(data.removeprefix("data: "))["type"] == name.removeprefix("event: ")
    assert "[DONE]" not in body
    metrics = httpx.get(f"{gw.url}/metrics", headers=headers).text
    assert 'endpoint="responses"' in metrics
    # Without /v1, as for the other model routes.
    plain = httpx.post(f"{gw.url}/responses", json={"model": "oa", "input": "hi"}, headers=headers)
    assert plain.status_code == 200 and plain.json()["object"] == "response"


# -- stored responses ------------------------------------------------------------------------------------


def dump(response: Response) -> Any:
    """The response as JSON, without what ``responses.stream()`` adds when it parses (``parsed``)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "parsed"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(response.model_dump(mode="json"))


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("alias", ALIASES)
def test_retrieve_and_delete(client: openai.OpenAI, alias: str, stream: bool) -> None:
    created = create(client, stream, model=alias, input="remember me", metadata={"k": "v"})
    assert created.store is True
    retrieved = client.responses.retrieve(created.id)
    assert dump(retrieved) == dump(created), "a retrieve returns what the client received"

    assert client.responses.delete(created.id) is None  # the SDK returns nothing; the body is checked below
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.retrieve(created.id)
    assert caught.value.body == {
        "message": f"Response with id '{created.id}' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)


def test_delete_body_and_unknown_ids(gw: Gateway) -> None:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    created = httpx.post(
        f"{gw.base_url}/responses", json={"model": "oa", "input": "hi"}, headers=headers
    ).json()
    deleted = httpx.delete(f"{gw.base_url}/responses/{created['id']}", headers=headers)
    assert deleted.status_code == 200
    assert deleted.json() == {"id": created["id"], "object": "response", "deleted": True}
    assert deleted.headers["x-request-id"].startswith("req_")
    for method, path in [
        ("GET", "/responses/resp_nope"),
        ("DELETE", "/responses/resp_nope"),
        ("GET", "/responses/resp_nope/input_items"),
        ("POST", "/responses/resp_nope/cancel"),
    ]:
        reply = httpx.request(method, f"{gw.base_url}{path}", headers=headers)
        assert reply.status_code == 404, (method, path)
        assert reply.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(f"{gw.base_url}/responses/resp_nope").status_code == 401


def test_store_false_is_not_kept(client: openai.OpenAI) -> None:
    created = client.responses.create(model="an", input="forget me", store=False)
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="an", input="and then?", previous_response_id=created.id)
    assert caught.value.body == {
        "message": f"Previous response with id '{created.id}' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }


def test_cancel_is_refused_for_a_synchronous_response(client: openai.OpenAI) -> None:
    created = client.responses.create(model="ge", input="hi")
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.cancel(created.id)
    assert caught.value.body == {
        "message": "Cannot cancel a synchronous response.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert client.responses.retrieve(created.id).status == "completed"


def test_input_items_list(client: openai.OpenAI) -> None:
    input_items: list[Any] = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "input_text", "text": "first"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "an answer"}]},
        {"role": "user", "content": "second"},
    ]
    created = client.responses.create(model="oa", input=input_items)
    page = client.responses.input_items.list(created.id)
    assert page.object == "list"  # type: ignore[attr-defined]
    texts = [item.content[0].text for item in page.data]  # type: ignore[union-attr]
    assert texts == ["second", "an answer", "first", "Be brief."], "newest first by default"
    assert [item.role for item in page.data] == ["user", "assistant", "user", "developer"]  # type: ignore[union-attr]
    assert all(item.id and item.type == "message" for item in page.data)
    assert page.has_more is False  # type: ignore[attr-defined]
    assert page.first_id == page.data[0].id and page.last_id == page.data[-1].id  # type: ignore[attr-defined]

    ascending = client.responses.input_items.list(created.id, order="asc")
    assert [i.id for i in ascending.data] == [i.id for i in reversed(page.data)]

    first_page = client.responses.input_items.list(created.id, limit=3)
    assert len(first_page.data) == 3 and first_page.has_more is True  # type: ignore[attr-defined]
    walked = [item.id for item in client.responses.input_items.list(created.id, limit=1)]  # follows `after`
    assert walked == [i.id for i in page.data]
    with pytest.raises(openai.BadRequestError):
        client.responses.input_items.list(created.id, limit=0)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("alias", ALIASES)
def test_function_tool_round_trip_through_previous_response_id(
    client: openai.OpenAI, alias: str, stream: bool
) -> None:
    """Only the tool result is sent back: the gateway puts the stored conversation before it."""
    model = STYLES[alias][1]
    ask = "What is the weather in Rome?"
    first = create(client, stream, model=alias, input=ask, tools=[WEATHER])
    [call] = function_calls(first)
    result = {"type": "function_call_output", "call_id": call.call_id, "output": TOOL_RESULT}
    second = create(
        client, stream, model=alias, input=[result], tools=[WEATHER], previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    assert function_calls(second) == []
    assert second.output_text == f"{model} says: the tool returned {TOOL_RESULT}"
    third = create(client, stream, model=alias, input="thanks!", previous_response_id=second.id)
    assert third.output_text == f"{model} says: thanks!"
    items = client.responses.input_items.list(third.id, order="asc").data
    assert [i.type for i in items] == ["message"], "input_items lists the response's own input only"


def test_previous_response_id_sends_the_conversation(
    client: openai.OpenAI, style_mocks: dict[str, Mock]
) -> None:
    """What reaches the upstream: the earlier turns (without the earlier instructions), then the new input."""
    first = client.responses.create(model="oa", instructions="Old rules.", input="one")
    second = client.responses.create(
        model="oa", instructions="New rules.", input="two", previous_response_id=first.id
    )
    client.responses.create(model="oa", input="three", previous_response_id=second.id)
    sent = style_mocks["openai"].stats()["last_body"]["messages"]
    assert sent == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "gpt-4o says: one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "gpt-4o says: two"},
        {"role": "user", "content": "three"},
    ]


def test_a_virtual_key_sees_only_its_own_responses(gw: Gateway, client: openai.OpenAI) -> None:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    created = httpx.post(f"{gw.url}/admin/keys", json={"name": "responses-scope"}, headers=headers)
    assert created.status_code == 201
    keyed = openai.OpenAI(base_url=gw.base_url, api_key=created.json()["key"], max_retries=0, timeout=20)

    mine = client.responses.create(model="oa", input="master's secret")
    with pytest.raises(openai.NotFoundError):
        keyed.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        keyed.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        keyed.responses.delete(mine.id)
    with pytest.raises(openai.BadRequestError) as caught:
        keyed.responses.create(model="oa", input="tell me", previous_response_id=mine.id)
    assert caught.value.code == "previous_response_not_found"
    assert client.responses.retrieve(mine.id).output_text == "gpt-4o says: master's secret", "still there"

    theirs = keyed.responses.create(model="oa", input="key's own")
    assert keyed.responses.retrieve(theirs.id).output_text == "gpt-4o says: key's own"
    followed = keyed.responses.create(model="oa", input="and?", previous_response_id=theirs.id)
    assert followed.output_text == "gpt-4o says: and?"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(theirs.id)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_stored_response_survives_a_restart(
    style_mocks: dict[str, Mock], logs: Path, tmp_path: Path, request: pytest.FixtureRequest, database: str
) -> None:
    state: dict[str, Any] = {"dir": str(tmp_path / "state")}
    if database == "postgresql":
        schema = request.getfixturevalue("pg_schema")
        state["database_url"] = f"{PG_BASE}?search_path={schema}"
    config = gateway_config(style_mocks, state=state)
    first_gw = start_gateway(config, logs)
    try:
        sdk = openai.OpenAI(base_url=first_gw.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)
        before = sdk.responses.create(model="an", input="keep this", tools=[WEATHER])
        [call] = function_calls(before)
    finally:
        first_gw.stop()
    second_gw = start_gateway(config, logs)
    try:
        sdk = openai.OpenAI(base_url=second_gw.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)
        assert dump(sdk.responses.retrieve(before.id)) == dump(before)
        result = {"type": "function_call_output", "call_id": call.call_id, "output": TOOL_RESULT}
        after = sdk.responses.create(
            model="an", input=[result], tools=[WEATHER], previous_response_id=before.id
        )
        assert after.output_text == f"claude-sonnet-4 says: the tool returned {TOOL_RESULT}"
    finally:
        second_gw.stop()


def test_prune_command(style_mocks: dict[str, Mock], logs: Path, tmp_path: Path) -> None:
    """``hedge responses prune`` deletes what is past retention, and only that."""
    config = gateway_config(style_mocks, state={"dir": str(tmp_path / "state")})
    gateway = start_gateway(config, logs)
    try:
        sdk = openai.OpenAI(base_url=gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)
        kept = sdk.responses.create(model="oa", input="recent")
    finally:
        gateway.stop()

    def prune(*args: str) -> str:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "hedge",
                "responses",
                "prune",
                "--config",
                str(gateway.config_path),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert prune() == "pruned 0 stored responses older than 30 days"
    assert prune("--days", "0.0000001") == "pruned 1 stored response older than 1e-07 days"
    gateway = start_gateway(config, logs)
    try:
        sdk = openai.OpenAI(base_url=gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)
        with pytest.raises(openai.NotFoundError):
            sdk.responses.retrieve(kept.id)
    finally:
        gateway.stop()


def test_a_serving_gateway_prunes_expired_responses(style_mocks: dict[str, Mock], logs: Path) -> None:
    """A response past ``state.responses_retention_days`` is deleted without ``hedge responses
    prune``: the gateway prunes at start and hourly; one within the retention stays readable."""
    import asyncio
    import sqlite3
    import time

    from hedge.store.db import connect
    from hedge.store.responses import DAY_S, ResponseStore
    from hedge.store.schema import MIGRATIONS

    state = logs / "responses-pruned"
    state.mkdir()
    db_path = state / "hedge.db"

    async def seed() -> None:
        db = await connect(f"sqlite:///{db_path}")
        await db.migrate(MIGRATIONS)
        store = ResponseStore(db)
        for rid, age in (("resp_expired", 31 * DAY_S), ("resp_kept", DAY_S)):
            body = {"id": rid, "object": "response", "created_at": int(time.time() - age), "output": []}
            await store.save(body, [], [], None)
        await db.close()

    asyncio.run(seed())
    gateway = start_gateway(gateway_config(style_mocks, state={"dir": str(state)}), logs)
    try:
        deadline = time.monotonic() + 20  # a bound on waiting, not a measurement
        while True:
            with sqlite3.connect(db_path) as conn:
                ids = {row[0] for row in conn.execute("SELECT id FROM hedge_responses")}
            if "resp_expired" not in ids or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert ids == {"resp_kept"}
        kept = openai.OpenAI(base_url=gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)
        assert kept.responses.retrieve("resp_kept").id == "resp_kept"
    finally:
        gateway.stop()
