"""The openai-style mock's Responses API, driven by the official ``openai`` SDK (no gateway).

Every object and stream event the mock sends is read raw and validated against the SDK's own pydantic
types strictly: required fields present, no field the type does not have (the SDK's models accept
unknown fields silently, so that is checked separately), nothing coerced.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from pydantic import BaseModel

from conftest import Mock
from hedge.mock.openai_responses import ResponseStore, _Item

MODEL = "gpt-4o"
KEY = "sk-test"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
TIME: Any = {
    "type": "function",
    "name": "get_time",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
}
EVENTS: dict[str, type[BaseModel]] = {
    "response.created": ResponseCreatedEvent,
    "response.in_progress": ResponseInProgressEvent,
    "response.output_item.added": ResponseOutputItemAddedEvent,
    "response.content_part.added": ResponseContentPartAddedEvent,
    "response.output_text.delta": ResponseTextDeltaEvent,
    "response.output_text.done": ResponseTextDoneEvent,
    "response.content_part.done": ResponseContentPartDoneEvent,
    "response.function_call_arguments.delta": ResponseFunctionCallArgumentsDeltaEvent,
    "response.function_call_arguments.done": ResponseFunctionCallArgumentsDoneEvent,
    "response.output_item.done": ResponseOutputItemDoneEvent,
    "response.completed": ResponseCompletedEvent,
    "response.incomplete": ResponseIncompleteEvent,
}


@pytest.fixture(autouse=True)
def _reset(mock: Mock) -> Iterator[None]:
    yield
    mock.reset()
    mock.configure(api_key=None)


@pytest.fixture
def client(mock: Mock) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{mock.url}/v1", api_key=KEY, max_retries=0, timeout=10)


@pytest.fixture
def http(mock: Mock) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mock.url, headers={"authorization": f"Bearer {KEY}"}, timeout=10) as c:
        yield c


# -- strict validation against the SDK's types -----------------------------------------------------


def _no_extras(value: Any, path: str) -> None:
    if isinstance(value, BaseModel):
        assert not value.model_extra, (
            f"{path}: fields the SDK type does not have: {sorted(value.model_extra)}"
        )
        for name in type(value).model_fields:
            _no_extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_extras(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_extras(item, f"{path}.{key}")


def strict(model: type[BaseModel], data: dict[str, Any]) -> Any:
    """``data`` as ``model``: valid, without unknown fields, and dumping back to exactly ``data``."""
    obj = model.model_validate(data)
    _no_extras(obj, model.__name__)
    assert obj.model_dump(mode="json", by_alias=True, exclude_unset=True) == data
    return obj


def create(client: openai.OpenAI, **params: Any) -> tuple[Response, dict[str, Any]]:
    """``responses.create`` through the SDK, with the raw JSON it parsed, validated strictly."""
    raw = client.responses.with_raw_response.create(**params)
    data: dict[str, Any] = raw.http_response.json()
    strict(Response, data)
    return raw.parse(), data


def sse(http: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of a streamed ``POST /v1/responses``, each validated strictly against its SDK type."""
    events: list[dict[str, Any]] = []
    with http.stream("POST", "/v1/responses", json={**body, "stream": True}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = resp.read().decode()
    assert raw.endswith("\n\n")
    for block in raw.strip("\n").split("\n\n"):
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        name, data = lines[0][7:], orjson.loads(lines[1][6:])
        assert data["type"] == name
        strict(EVENTS[name], data)
        events.append(data)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def error_of(resp: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    error: dict[str, Any] = body["error"]
    return error


# -- whole answers ---------------------------------------------------------------------------------


def test_string_input(client: openai.OpenAI, mock: Mock) -> None:
    response, data = create(client, model=MODEL, input="hello there")
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == MODEL
    assert response.output_text == f"{MODEL} says: hello there"
    assert response.incomplete_details is None and response.error is None
    assert response.completed_at is not None
    [message] = response.output
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert message.id.startswith("msg_")
    usage = response.usage
    assert usage is not None
    assert usage.output_tokens == 4
    assert usage.input_tokens > 0
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert (
        data["tools"] == [] and data["tool_choice"] == "auto" and data["text"]["format"] == {"type": "text"}
    )
    assert mock.stats()["by_path"]["/v1/responses"] >= 1


def test_items_input_with_image_and_instructions(client: openai.OpenAI) -> None:
    def ask(with_image: bool, **params: Any) -> Response:
        parts: list[Any] = [{"type": "input_text", "text": "what is in this picture"}]
        if with_image:
            parts.append(
                {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "auto"}
            )
        items: Any = [
            {"role": "developer", "content": "Be brief."},
            {"type": "message", "role": "user", "content": parts},
        ]
        response, _ = create(client, model=MODEL, input=items, **params)
        return response

    plain, with_image = ask(False), ask(True)
    assert with_image.output_text == plain.output_text == f"{MODEL} says: what is in this picture"
    assert plain.usage is not None and with_image.usage is not None
    assert with_image.usage.input_tokens == plain.usage.input_tokens + 85

    loud = ask(False, instructions="Always answer in uppercase.")
    assert loud.output_text == f"{MODEL.upper()} SAYS: WHAT IS IN THIS PICTURE"
    assert loud.instructions == "Always answer in uppercase."
    # instructions are not carried over to a follow-up (OpenAI's documented behaviour)
    follow, _ = create(client, model=MODEL, input="and now?", previous_response_id=loud.id)
    assert follow.output_text == f"{MODEL} says: and now?"
    assert follow.previous_response_id == loud.id
    assert follow.usage is not None and loud.usage is not None
    # one word is one token, and each item costs 3 more: the instructions (4 words) no longer count,
    # the previous answer (7 words) and the new message (2 words) do
    assert follow.usage.input_tokens == loud.usage.input_tokens - (4 + 3) + (7 + 3) + (2 + 3)


def test_previous_response_carries_the_conversation(client: openai.OpenAI) -> None:
    first, _ = create(
        client, model=MODEL, input=[{"role": "system", "content": "Always answer in uppercase"}]
    )
    second, _ = create(client, model=MODEL, input="quiet please", previous_response_id=first.id)
    assert second.output_text == f"{MODEL.upper()} SAYS: QUIET PLEASE"  # the system message carried over
    assert first.usage is not None and second.usage is not None
    # the first conversation and its answer, then the new message (2 words), each item 3 tokens more
    expected = first.usage.input_tokens + (first.usage.output_tokens + 3) + (2 + 3)
    assert second.usage.input_tokens == expected


# -- function calls --------------------------------------------------------------------------------


def test_function_call_round_trip_by_previous_response_id(client: openai.OpenAI) -> None:
    asked, data = create(client, model=MODEL, input="What is the weather in Paris?", tools=[WEATHER])
    [call] = asked.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert call.id is not None and call.id.startswith("fc_")
    assert call.call_id.startswith("call_")
    assert call.status == "completed"
    assert set(orjson.loads(call.arguments)) == {"city"}
    assert asked.output_text == ""
    assert data["tools"][0]["name"] == "get_weather" and data["tools"][0]["strict"] is True

    answered, _ = create(
        client,
        model=MODEL,
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24C"}],
        tools=[WEATHER],
    )
    assert answered.output_text == f"{MODEL} says: the tool returned sunny, 24C"
    assert answered.status == "completed"


def test_function_call_round_trip_by_explicit_items(client: openai.OpenAI) -> None:
    question: Any = {"role": "user", "content": "What is the weather in Oslo?"}
    asked, _ = create(client, model=MODEL, input=[question], tools=[WEATHER], store=False)
    [call] = asked.output
    assert call.type == "function_call"
    with pytest.raises(openai.NotFoundError):  # store=False: nothing kept
        client.responses.retrieve(asked.id)

    items: Any = [
        question,
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "snow"},
    ]
    answered, _ = create(client, model=MODEL, input=items, tools=[WEATHER], store=False)
    assert answered.output_text == f"{MODEL} says: the tool returned snow"


def test_parallel_calls_tool_choice_and_none(client: openai.OpenAI) -> None:
    both = "use get_weather and get_time for Rome"
    parallel, _ = create(client, model=MODEL, input=both, tools=[WEATHER, TIME])
    assert [item.type for item in parallel.output] == ["function_call", "function_call"]
    assert sorted(item.name for item in parallel.output if item.type == "function_call") == [
        "get_time",
        "get_weather",
    ]
    single, data = create(client, model=MODEL, input=both, tools=[WEATHER, TIME], parallel_tool_calls=False)
    assert len(single.output) == 1 and data["parallel_tool_calls"] is False

    forced, data = create(
        client,
        model=MODEL,
        input="hi",
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "name": "get_time"},
    )
    assert [item.name for item in forced.output if item.type == "function_call"] == ["get_time"]
    assert data["tool_choice"] == {"type": "function", "name": "get_time"}

    text, _ = create(client, model=MODEL, input="hi", tools=[WEATHER], tool_choice="none")
    assert text.output_text == f"{MODEL} says: hi"


# -- streams ---------------------------------------------------------------------------------------


def test_stream_event_sequence(http: httpx.Client, client: openai.OpenAI) -> None:
    events = sse(http, {"model": MODEL, "input": "stream these words"})
    names = [e["type"] for e in events]
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(deltas),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert len(deltas) == 5
    text = f"{MODEL} says: stream these words"
    assert "".join(deltas) == text
    created, final = events[0]["response"], events[-1]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    assert final["id"] == created["id"]
    assert final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"] == text
    assert final["usage"]["output_tokens"] == 5
    assert events[2]["item"]["status"] == "in_progress" and events[2]["item"]["content"] == []
    item_id = events[2]["item"]["id"]
    assert all(e["item_id"] == item_id for e in events[3:-2])
    assert events[-2]["item"] == final["output"][0]
    # stored when it finished, as the whole answer is
    assert http.get(f"/v1/responses/{final['id']}").json() == final


def test_stream_function_call_events(http: httpx.Client) -> None:
    events = sse(http, {"model": MODEL, "input": "weather in Lima", "tools": [WEATHER]})
    names = [e["type"] for e in events]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    added, done = events[2]["item"], events[-2]["item"]
    assert added["type"] == "function_call" and added["arguments"] == "" and added["status"] == "in_progress"
    arguments = events[3]["delta"] + events[4]["delta"]
    assert events[5]["arguments"] == arguments == done["arguments"]
    assert orjson.loads(arguments) == {"city": "weather in Lima"}
    assert done["call_id"] == added["call_id"] and done["status"] == "completed"
    assert events[-1]["response"]["output"] == [done]


def test_sdk_stream_and_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input="tell me something") as stream:
        seen = [event.type for event in stream]
        final = stream.get_final_response()
    assert seen[0] == "response.created" and seen[-1] == "response.completed"
    assert final.output_text == f"{MODEL} says: tell me something"
    assert final.usage is not None and final.usage.output_tokens == 5

    with client.responses.stream(model=MODEL, input="weather in Kyiv", tools=[WEATHER]) as stream:
        arguments = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
        final = stream.get_final_response()
    [call] = final.output
    assert call.type == "function_call" and call.arguments == arguments


# -- structured output, limits ---------------------------------------------------------------------


class Weather(BaseModel):
    city: str
    degrees: int
    sunny: bool


def test_parse_with_a_pydantic_model(client: openai.OpenAI, mock: Mock) -> None:
    raw = client.responses.with_raw_response.parse(
        model=MODEL, input="Weather in Madrid", text_format=Weather
    )
    strict(Response, raw.http_response.json())
    parsed = raw.parse()
    sent = mock.stats()["last_body"]["text"]["format"]
    assert sent["type"] == "json_schema" and sent["name"] == "Weather" and sent["strict"] is True
    weather = parsed.output_parsed
    assert isinstance(weather, Weather)
    assert weather == Weather(city="Weather in Madrid", degrees=1, sunny=True)
    assert parsed.text is not None and parsed.text.format is not None
    assert parsed.text.format.type == "json_schema"


def test_json_schema_format_by_hand(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}, "required": ["n"]}
    fmt: Any = {"type": "json_schema", "name": "count", "schema": schema}
    response, data = create(client, model=MODEL, input="count", text={"format": fmt})
    assert orjson.loads(response.output_text) == {"n": 3}
    assert data["text"]["format"] == {**fmt, "description": None, "strict": False}


def test_small_max_output_tokens_is_incomplete(client: openai.OpenAI, http: httpx.Client) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    response, _ = create(client, model=MODEL, input=words, max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.completed_at is None
    assert response.max_output_tokens == 16
    assert response.usage is not None and response.usage.output_tokens == 16
    [message] = response.output
    assert message.type == "message" and message.status == "incomplete"
    assert response.output_text == f"{MODEL} says: " + " ".join(f"w{i}" for i in range(14)) + " "

    events = sse(http, {"model": MODEL, "input": words, "max_output_tokens": 16})
    assert events[-1]["type"] == "response.incomplete"
    final = events[-1]["response"]
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["usage"]["output_tokens"] == 16
    assert events[-2]["item"]["status"] == "incomplete"

    whole, _ = create(client, model=MODEL, input="short", max_output_tokens=16)
    assert whole.status == "completed"


# -- stored responses ------------------------------------------------------------------------------


def test_retrieve_and_delete(client: openai.OpenAI, http: httpx.Client) -> None:
    response, data = create(client, model=MODEL, input="keep me")
    got = http.get(f"/v1/responses/{response.id}")
    assert got.status_code == 200 and got.json() == data
    assert client.responses.retrieve(response.id).output_text == response.output_text

    deleted = http.delete(f"/v1/responses/{response.id}")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": response.id, "object": "response", "deleted": True}
    missing = http.get(f"/v1/responses/{response.id}")
    assert missing.status_code == 404
    assert error_of(missing) == {
        "message": f"Response with id '{response.id}' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert http.delete(f"/v1/responses/{response.id}").status_code == 404
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model=MODEL, input="again", previous_response_id=response.id)
    assert caught.value.param == "previous_response_id"
    assert caught.value.code == "previous_response_not_found"

    other, _ = create(client, model=MODEL, input="another")
    client.responses.delete(other.id)  # the SDK's delete expects an empty-bodied success it ignores
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(other.id)


def test_item_reference_to_a_stored_item(client: openai.OpenAI, http: httpx.Client) -> None:
    first, _ = create(client, model=MODEL, input="remember this")
    ref: Any = [{"type": "item_reference", "id": first.output[0].id}, {"role": "user", "content": "next"}]
    second, _ = create(client, model=MODEL, input=ref)
    assert second.output_text == f"{MODEL} says: next"
    missing = http.post(
        "/v1/responses", json={"model": MODEL, "input": [{"type": "item_reference", "id": "msg_nope"}]}
    )
    assert missing.status_code == 404 and error_of(missing)["param"] == "input"


def test_store_is_bounded() -> None:
    store = ResponseStore(max_count=3, max_bytes=10_000)
    for i in range(5):
        store.put(f"resp_{i}", b"{}", [_Item("message", "user", f"text {i}", 2)])
    assert [store.get(f"resp_{i}") is not None for i in range(5)] == [False, False, True, True, True]
    store.put("resp_big", b"x" * 9_900, [])  # room only for itself
    assert store.get("resp_big") is not None
    assert [store.get(f"resp_{i}") is not None for i in range(2, 5)] == [False, False, False]
    store.put("resp_huge", b"x" * 20_000, [])  # larger than the whole store: not kept
    assert store.get("resp_huge") is None and store.get("resp_big") is not None
    assert store.delete("resp_big") and not store.delete("resp_big")


# -- what OpenAI rejects ---------------------------------------------------------------------------

CALL = {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"}
REJECTED: list[tuple[str, dict[str, Any], str, str | None]] = [
    ("no model", {"input": "hi"}, "model", "missing_required_parameter"),
    ("no input", {"model": MODEL}, "input", "missing_required_parameter"),
    ("unknown parameter", {"model": MODEL, "input": "hi", "messages": []}, "messages", "unknown_parameter"),
    ("input of a bad type", {"model": MODEL, "input": 42}, "input", "invalid_type"),
    ("item of a bad type", {"model": MODEL, "input": [{"type": "chat"}]}, "input[0].type", "invalid_value"),
    (
        "chat-style content part",
        {"model": MODEL, "input": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
        "input[0].content[0].type",
        "invalid_value",
    ),
    (
        "input part in an assistant message",
        {"model": MODEL, "input": [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]},
        "input[0].content[0].type",
        "invalid_value",
    ),
    (
        "unknown field of an item",
        {"model": MODEL, "input": [{"role": "user", "content": "hi", "name": "bob"}]},
        "input[0].name",
        "unknown_parameter",
    ),
    (
        "bad role",
        {"model": MODEL, "input": [{"role": "tool", "content": "x"}]},
        "input[0].role",
        "invalid_value",
    ),
    (
        "function output without call_id",
        {"model": MODEL, "input": [{"type": "function_call_output", "output": "x"}]},
        "input[0].call_id",
        "missing_required_parameter",
    ),
    (
        "function output without its call",
        {"model": MODEL, "input": [{"type": "function_call_output", "call_id": "call_1", "output": "x"}]},
        "input",
        None,
    ),
    (
        "function call without its output",
        {"model": MODEL, "input": [{"role": "user", "content": "hi"}, CALL]},
        "input",
        None,
    ),
    (
        "max_output_tokens below 16",
        {"model": MODEL, "input": "hi", "max_output_tokens": 15},
        "max_output_tokens",
        "integer_below_min_value",
    ),
    (
        "max_output_tokens not an integer",
        {"model": MODEL, "input": "hi", "max_output_tokens": "many"},
        "max_output_tokens",
        "invalid_type",
    ),
    (
        "temperature above 2",
        {"model": MODEL, "input": "hi", "temperature": 2.5},
        "temperature",
        "decimal_above_max_value",
    ),
    (
        "json_schema without a name",
        {"model": MODEL, "input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}},
        "text.format.name",
        "missing_required_parameter",
    ),
    (
        "json_object without the word json",
        {"model": MODEL, "input": "hi", "text": {"format": {"type": "json_object"}}},
        "input",
        None,
    ),
    (
        "tool of a bad type",
        {"model": MODEL, "input": "hi", "tools": [{"type": "functions", "name": "f"}]},
        "tools[0].type",
        "invalid_value",
    ),
    (
        "function tool without a name",
        {"model": MODEL, "input": "hi", "tools": [{"type": "function"}]},
        "tools[0].name",
        "missing_required_parameter",
    ),
    (
        "tool_choice naming no tool",
        {
            "model": MODEL,
            "input": "hi",
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "name": "nope"},
        },
        "tool_choice",
        None,
    ),
    ("store not a boolean", {"model": MODEL, "input": "hi", "store": "yes"}, "store", "invalid_type"),
]


@pytest.mark.parametrize(("body", "param", "code"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_rejects_what_openai_rejects(
    http: httpx.Client, body: dict[str, Any], param: str, code: str | None
) -> None:
    resp = http.post("/v1/responses", json=body)
    assert resp.status_code == 400, resp.text
    error = error_of(resp)
    assert (error["param"], error["code"]) == (param, code)
    assert error["message"]


def test_sdk_raises_bad_request_with_param(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="hi", extra_body={"frobnicate": True})
    assert caught.value.param == "frobnicate"
    assert caught.value.code == "unknown_parameter"
    assert caught.value.body == {
        "message": "Unknown parameter: 'frobnicate'.",
        "type": "invalid_request_error",
        "param": "frobnicate",
        "code": "unknown_parameter",
    }


def test_unknown_model_and_unknown_previous_response(http: httpx.Client) -> None:
    resp = http.post("/v1/responses", json={"model": "gpt-no-such-model", "input": "hi"})
    assert resp.status_code == 404
    assert (error_of(resp)["param"], error_of(resp)["code"]) == ("model", "model_not_found")
    resp = http.post("/v1/responses", json={"model": MODEL, "input": "hi", "previous_response_id": "resp_x"})
    assert resp.status_code == 404
    assert error_of(resp) == {
        "message": "Previous response with id 'resp_x' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }


# -- the mock's knobs ------------------------------------------------------------------------------


def test_api_key_required(mock: Mock, client: openai.OpenAI, http: httpx.Client) -> None:
    stored, _ = create(client, model=MODEL, input="hi")
    mock.configure(api_key="sk-right")
    with pytest.raises(openai.AuthenticationError):
        client.responses.create(model=MODEL, input="hi")
    assert http.get(f"/v1/responses/{stored.id}").status_code == 401
    assert http.delete(f"/v1/responses/{stored.id}").status_code == 401
    right = openai.OpenAI(base_url=f"{mock.url}/v1", api_key="sk-right", max_retries=0, timeout=10)
    assert right.responses.retrieve(stored.id).id == stored.id


def test_injected_failures(mock: Mock, client: openai.OpenAI, http: httpx.Client) -> None:
    mock.configure(fail_first=1, fail_status=503)
    with pytest.raises(openai.InternalServerError) as caught:
        client.responses.create(model=MODEL, input="hi")
    assert caught.value.status_code == 503
    assert client.responses.create(model=MODEL, input="hi").status == "completed"

    mock.configure(fail_first=1, fail_mode="disconnect")
    before = mock.stats()["streams_cancelled"]
    body = {"model": MODEL, "input": "a longer answer to cut in the middle", "stream": True}
    with pytest.raises(httpx.RemoteProtocolError), http.stream("POST", "/v1/responses", json=body) as resp:
        resp.read()
    assert mock.stats()["streams_cancelled"] == before + 1
    assert "_mock_disconnect" not in (mock.stats()["last_body"] or {})


def test_quirks(mock: Mock, client: openai.OpenAI, http: httpx.Client) -> None:
    mock.configure(quirks=["drop-system"])
    dropped, _ = create(client, model=MODEL, input="hi", instructions="Always answer in uppercase")
    assert dropped.output_text == f"{MODEL} says: hi"

    mock.configure(quirks=["no-stream-usage"])
    events = sse(http, {"model": MODEL, "input": "hi"})
    assert events[-1]["response"]["usage"] is None

    mock.configure(quirks=["error-as-200"])
    resp = http.post("/v1/responses", json={"model": MODEL})
    assert resp.status_code == 200 and error_of(resp)["param"] == "input"
