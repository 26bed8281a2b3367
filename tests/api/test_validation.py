"""The request validators, table by table: each crash the input audit found is a 400 naming the field.

The audit fuzzed the gateway and found 500s (with tracebacks) for a ``role``, a
``response_format.type`` or a ``tool_choice`` given as an array or object, an image part
whose ``image_url`` is not an object, a bad ``/v1/messages`` ``system`` block or image
source, and JSON nested 500 levels deep. ``tests/api/test_input_fuzz.py`` drives the same
inputs through a real gateway; these pin the messages and ``param`` of each.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from hedge.api.validation import (
    MAX_JSON_DEPTH,
    parse_json_object,
    too_deep,
    validate_chat,
    validate_embeddings,
)
from hedge.errors import InvalidRequest
from hedge.providers.anthropic_inbound import to_openai, validate_messages
from hedge.routing.escalation import conforms

USER = {"role": "user", "content": "hi"}


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [USER], **fields}


def with_message(message: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [message]}


def image(image_url: Any) -> dict[str, Any]:
    return with_message({"role": "user", "content": [{"type": "image_url", "image_url": image_url}]})


CHAT_ERRORS: list[tuple[dict[str, Any], str, str]] = [
    # role as an array or object
    (
        with_message({"role": ["user"], "content": "hi"}),
        "messages[0].role",
        "Invalid type for 'messages[0].role': expected a string, but got an array.",
    ),
    (
        with_message({"role": {"user": True}, "content": "hi"}),
        "messages[0].role",
        "Invalid type for 'messages[0].role': expected a string, but got an object.",
    ),
    (with_message({"role": 7, "content": "hi"}), "messages[0].role", "got an integer"),
    (with_message({"role": "robot", "content": "hi"}), "messages[0].role", "Invalid value"),
    # response_format.type as an array or object
    (
        chat(response_format={"type": ["json_object"]}),
        "response_format.type",
        "Invalid type for 'response_format.type': expected a string, but got an array.",
    ),
    (
        chat(response_format={"type": {"json": 1}}),
        "response_format.type",
        "Invalid type for 'response_format.type': expected a string, but got an object.",
    ),
    (chat(response_format={}), "response_format.type", "Missing required parameter"),
    (chat(response_format={"type": "yaml"}), "response_format.type", "Invalid value"),
    (chat(response_format={"type": "json_schema"}), "response_format.json_schema", "Missing required"),
    (
        chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": [1]}}),
        "response_format.json_schema.schema",
        "expected an object, but got an array",
    ),
    # tool_choice as an array, or an object of the wrong shape
    (
        chat(tool_choice=["auto"]),
        "tool_choice",
        "Invalid type for 'tool_choice': expected a string or an object, but got an array.",
    ),
    (
        chat(tool_choice={"type": "function", "function": "f"}),
        "tool_choice.function",
        "Invalid type for 'tool_choice.function': expected an object, but got a string.",
    ),
    (chat(tool_choice={"type": "function"}), "tool_choice.function", "Missing required parameter"),
    (chat(tool_choice={"type": ["function"]}), "tool_choice.type", "expected a string, but got an array"),
    (chat(tool_choice={"function": {"name": 5}}), "tool_choice.function.name", "got an integer"),
    (chat(tool_choice={"function": {}}), "tool_choice.function.name", "Missing required parameter"),
    (chat(tool_choice=5), "tool_choice", "expected a string or an object, but got an integer"),
    # an image part whose image_url is not an object
    (
        image("https://example.com/cat.png"),
        "messages[0].content[0].image_url",
        "Invalid type for 'messages[0].content[0].image_url': expected an object, but got a string.",
    ),
    (image(5), "messages[0].content[0].image_url", "expected an object, but got an integer"),
    (image(["u"]), "messages[0].content[0].image_url", "expected an object, but got an array"),
    (image(None), "messages[0].content[0].image_url", "Missing required parameter"),
    (image({}), "messages[0].content[0].image_url.url", "Missing required parameter"),
    (image({"url": ["u"]}), "messages[0].content[0].image_url.url", "expected a string, but got an array"),
    (image({"url": "u", "detail": 1}), "messages[0].content[0].image_url.detail", "got an integer"),
    # the other parts and fields the adapters read
    (
        with_message({"role": "user", "content": [{"type": "input_audio", "input_audio": 5}]}),
        "messages[0].content[0].input_audio",
        "expected an object",
    ),
    (
        with_message({"role": "user", "content": [{"type": "file", "file": "f"}]}),
        "messages[0].content[0].file",
        "expected an object",
    ),
    (
        with_message({"role": "user", "content": [{"type": "text", "text": 5}]}),
        "messages[0].content[0].text",
        "expected a string",
    ),
    (
        with_message({"role": "user", "content": [{"type": 5}]}),
        "messages[0].content[0].type",
        "got an integer",
    ),
    (with_message({"role": "user", "content": [{}]}), "messages[0].content[0].type", "Missing required"),
    (with_message({"role": "user", "content": 5}), "messages[0].content", "got an integer"),
    (with_message({"role": "user", "content": "hi", "name": ["n"]}), "messages[0].name", "got an array"),
    (
        with_message({"role": "tool", "content": "x", "tool_call_id": 5}),
        "messages[0].tool_call_id",
        "integer",
    ),
    (
        with_message({"role": "assistant", "content": None, "tool_calls": [5]}),
        "messages[0].tool_calls[0]",
        "expected an object",
    ),
    (
        with_message({"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": 5}}]}),
        "messages[0].tool_calls[0].function.name",
        "got an integer",
    ),
    (
        with_message(
            {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": 5}}]}
        ),
        "messages[0].tool_calls[0].function.arguments",
        "got an integer",
    ),
    (
        with_message({"role": "assistant", "tool_calls": [{"id": "c"}]}),
        "messages[0].tool_calls[0].function",
        "Missing",
    ),
    (
        with_message({"role": "assistant", "function_call": "f"}),
        "messages[0].function_call",
        "expected an object",
    ),
    (
        chat(tools=[{"type": "function", "function": {"name": "f", "parameters": 5}}]),
        "tools[0].function.parameters",
        "object",
    ),
    (
        chat(tools=[{"type": "function", "function": {"name": "f", "description": []}}]),
        "tools[0].function.description",
        "string",
    ),
    (
        chat(tools=[{"type": "function", "function": {"name": ["f"]}}]),
        "tools[0].function.name",
        "got an array",
    ),
    (chat(tools=[5]), "tools[0]", "expected an object"),
    (chat(stream=True, stream_options={"include_usage": "yes"}), "stream_options.include_usage", "boolean"),
    (chat(metadata={"tags": [{"t": 1}]}), "metadata.tags", "a string or an array of strings"),
    (chat(metadata=["batch"]), "metadata", "expected an object"),
    (chat(user=5), "user", "expected a string, but got an integer"),
    (chat(safety_identifier=[]), "safety_identifier", "expected a string"),
    (chat(seed="1"), "seed", "expected an integer"),
    (chat(seed=2**64 - 1), "seed", "Invalid value"),
    (chat(parallel_tool_calls="no"), "parallel_tool_calls", "expected a boolean"),
    (chat(logit_bias=[1]), "logit_bias", "expected an object"),
    (chat(max_tokens=1e30), "max_tokens", "expected an integer, but got a decimal number"),
    (chat(temperature=1e308), "temperature", "between 0 and 2"),
    (chat(hedge={"sort": ["price"]}), "hedge.sort", "Invalid value"),
    (chat(hedge={"on_unsupported": {"x": 1}}), "hedge.on_unsupported", "Invalid value"),
]


CHAT_ACCEPTED: list[dict[str, Any]] = [
    chat(),
    chat(tool_choice="auto", tools=[{"type": "function", "function": {"name": "f"}}]),
    chat(tool_choice={"type": "function", "function": {"name": "f"}}),
    chat(tool_choice={"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}),
    chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}),
    image({"url": "data:image/png;base64,AAAA", "detail": "low"}),
    with_message({"role": "user", "content": [{"type": "some_future_part", "payload": [1, {"a": None}]}]}),
    with_message(
        {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {}}}]}
    ),
    with_message(
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "f"}}]}
    ),
    chat(metadata={"tags": "a, b", "other": 5}),
    chat(stream=True, stream_options={"include_usage": True}),
    chat(max_tokens=2**64 - 1, seed=-(2**63)),
    # Unknown parameters are not the gateway's business, whatever their type.
    chat(prediction={"type": "content", "content": [1, 2]}, store=True, x_vendor=[{"deep": {"er": None}}]),
    chat(content="\x00", user="a\x00b"),
]


"""Bodies that must stay accepted, and untouched, however strict the checks above are."""


def check(validate: Any, body: dict[str, Any], param: str | None, message: str | None) -> None:
    """``param is None``: accepted and left as it was; else a 400 naming ``param`` and saying ``message``."""
    before = json.dumps(body)
    if param is None:
        validate(body)
        assert json.dumps(body) == before
        return
    with pytest.raises(InvalidRequest) as caught:
        validate(body)
    assert (caught.value.status, caught.value.param) == (400, param)
    assert message is not None and message in caught.value.message


@pytest.mark.parametrize(
    ("body", "param", "message"), CHAT_ERRORS + [(body, None, None) for body in CHAT_ACCEPTED]
)
def test_chat(body: dict[str, Any], param: str | None, message: str | None) -> None:
    check(validate_chat, body, param, message)


EMBEDDINGS_ERRORS: list[tuple[dict[str, Any], str, str]] = [
    ({"model": "e", "input": [[{"a": 1}]]}, "input", "expected a string or a non-empty array"),
    ({"model": "e", "input": [[]]}, "input", "expected a string or a non-empty array"),
    ({"model": "e", "input": [[1, True]]}, "input", "expected a string or a non-empty array"),
    ({"model": "e", "input": ["a", 1]}, "input", "expected a string or a non-empty array"),
    ({"model": "e", "input": []}, "input", "expected a string or a non-empty array"),
    ({"model": "e", "input": "x", "encoding_format": ["float"]}, "encoding_format", "expected a string"),
    ({"model": "e", "input": "x", "encoding_format": "int8"}, "encoding_format", "Invalid value"),
    ({"model": "e", "input": "x", "dimensions": 1e30}, "dimensions", "expected an integer"),
    ({"model": "e", "input": "x", "user": 1}, "user", "expected a string"),
    ({"model": "e", "input": "x", "metadata": {"tags": 5}}, "metadata.tags", "a string or an array"),
    ({"model": ["e"], "input": "x"}, "model", "expected a non-empty string, but got an array"),
]


EMBEDDINGS_ACCEPTED: list[dict[str, Any]] = [
    {"model": "e", "input": "x"},
    {"model": "e", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 8},
    {"model": "e", "input": [1, 2]},
    {"model": "e", "input": [[1, 2], [3]], "user": "u", "x_vendor": {"any": [None]}},
]


@pytest.mark.parametrize(
    ("body", "param", "message"), EMBEDDINGS_ERRORS + [(body, None, None) for body in EMBEDDINGS_ACCEPTED]
)
def test_embeddings(body: dict[str, Any], param: str | None, message: str | None) -> None:
    check(validate_embeddings, body, param, message)


def anthropic(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], **fields}


def anthropic_user(*blocks: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": list(blocks)}]}


def source(src: Any) -> dict[str, Any]:
    return anthropic_user({"type": "image", "source": src})


MESSAGES_ERRORS: list[tuple[dict[str, Any], str, str]] = [
    # bad system blocks
    (
        anthropic(system=[{"type": "text", "text": 5}]),
        "system.0.text",
        "system.0.text: Input should be a valid string",
    ),
    (anthropic(system=[{"type": "text"}]), "system.0.text", "system.0.text: Field required"),
    (anthropic(system=[5]), "system.0", "system.0: Input should be a valid dictionary"),
    (anthropic(system=[{"text": "x"}]), "system.0.type", "system.0.type: Field required"),
    (anthropic(system=[{"type": "image", "text": "x"}]), "system.0.type", "Input should be 'text'"),
    (anthropic(system=[{"type": ["text"], "text": "x"}]), "system.0.type", "Input should be a valid string"),
    (anthropic(system=5), "system", "Input should be a valid string or a list of text blocks"),
    # bad image sources
    (
        source(5),
        "messages.0.content.0.source",
        "messages.0.content.0.source: Input should be a valid dictionary",
    ),
    (source(None), "messages.0.content.0.source", "Field required"),
    (source({}), "messages.0.content.0.source.type", "Field required"),
    (
        source({"type": "file", "file_id": "f"}),
        "messages.0.content.0.source.type",
        "Input should be 'base64' or 'url'",
    ),
    (source({"type": ["url"]}), "messages.0.content.0.source.type", "Input should be a valid string"),
    (
        source({"type": "url", "url": ["x"]}),
        "messages.0.content.0.source.url",
        "Input should be a valid string",
    ),
    (source({"type": "url"}), "messages.0.content.0.source.url", "Field required"),
    (
        source({"type": "base64", "media_type": "image/png"}),
        "messages.0.content.0.source.data",
        "Field required",
    ),
    (
        source({"type": "base64", "media_type": 5, "data": "x"}),
        "messages.0.content.0.source.media_type",
        "string",
    ),
    # other blocks and fields translation reads
    (
        anthropic_user({"type": "text", "text": 5}),
        "messages.0.content.0.text",
        "Input should be a valid string",
    ),
    (anthropic_user({"type": "text"}), "messages.0.content.0.text", "Field required"),
    (anthropic_user(5), "messages.0.content.0", "Input should be a valid dictionary"),
    (anthropic_user({"type": 5}), "messages.0.content.0.type", "Input should be a valid string"),
    (anthropic_user({"type": "tool_result", "tool_use_id": 5}), "messages.0.content.0.tool_use_id", "string"),
    (
        anthropic_user({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": 1}]}),
        "messages.0.content.0.content.0.text",
        "Input should be a valid string",
    ),
    (
        anthropic_user({"type": "tool_result", "tool_use_id": "t", "content": 5}),
        "messages.0.content.0.content",
        "string",
    ),
    (
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": 5}]}
            ],
        },
        "messages.0.content.0.input",
        "Input should be a valid dictionary",
    ),
    (
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "f"}]}],
        },
        "messages.0.content.0.id",
        "Field required",
    ),
    (
        {"model": "m", "max_tokens": 5, "messages": [{"role": ["user"], "content": "x"}]},
        "messages.0.role",
        "valid string",
    ),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user"}]}, "messages.0.content", "Field required"),
    ({"model": "m", "max_tokens": 5, "messages": [5]}, "messages.0", "Input should be a valid dictionary"),
    (anthropic(tools=[{"name": 5}]), "tools.0.name", "Input should be a valid string"),
    (anthropic(tools=[{"description": "d"}]), "tools.0.name", "Field required"),
    (anthropic(tools=[{"name": "f", "input_schema": []}]), "tools.0.input_schema", "valid dictionary"),
    (anthropic(tool_choice="auto"), "tool_choice", "Input should be a valid dictionary"),
    (anthropic(tool_choice={"type": "tool"}), "tool_choice.name", "Field required"),
    (
        anthropic(tool_choice={"type": "sometimes"}),
        "tool_choice.type",
        "Input should be 'auto', 'any', 'tool' or 'none'",
    ),
    (anthropic(stop_sequences="END"), "stop_sequences", "Input should be a valid list"),
    (anthropic(stop_sequences=[1]), "stop_sequences.0", "Input should be a valid string"),
    (anthropic(metadata={"user_id": 5}), "metadata.user_id", "Input should be a valid string"),
    (anthropic(stream="yes"), "stream", "Input should be a valid boolean"),
    (anthropic(temperature="hot"), "temperature", "Input should be a valid number"),
    (anthropic(top_k=1.5), "top_k", "Input should be a valid integer"),
    (anthropic(max_tokens=True), "max_tokens", "Input should be a valid integer"),
    (anthropic(max_tokens=0), "max_tokens", "greater than or equal to 1"),
    (anthropic(model=""), "model", "at least 1 character"),
    (anthropic(messages=[]), "messages", "at least 1 item"),
]


@pytest.mark.parametrize(("body", "param", "message"), MESSAGES_ERRORS)
def test_messages_rejections(body: dict[str, Any], param: str, message: str) -> None:
    for check in (validate_messages, to_openai):
        with pytest.raises(InvalidRequest) as caught:
            check(body)
        assert caught.value.param == param
        assert message in caught.value.message
        assert caught.value.message.startswith(f"{param}: "), "Anthropic's wording: the field's path first"


def test_messages_accepted_shapes_translate() -> None:
    body = anthropic(
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/gif", "data": "R0lG"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": None},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
        ],
        tools=[{"name": "f", "description": None}],
        tool_choice={"type": "any"},
        stream=False,
        metadata={"user_id": None},
    )
    out = to_openai(body)
    validate_chat(out)
    # The system block keeps its prompt-cache marker (for an Anthropic upstream), so it stays a part.
    assert out["messages"][0] == {
        "role": "system",
        "content": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    }
    assert out["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "https://example.com/a.png"},
    }
    assert out["messages"][1]["content"][2]["image_url"]["url"] == "data:image/gif;base64,R0lG"
    assert out["messages"][2]["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "t1", "content": ""}
    assert out["tools"][0]["function"]["description"] == ""
    assert out["tool_choice"] == "required"


# -- JSON nesting depth -----------------------------------------------------------------------------


def nested(depth: int, as_list: bool = True) -> bytes:
    """A body nested ``depth`` levels deep, the top-level object included."""
    k = depth - 1
    inner = b"[" * k + b"]" * k if as_list else b'{"a":' * (k - 1) + b"{}" + b"}" * (k - 1)
    return b'{"model": "m", "x": ' + inner + b"}"


@pytest.mark.parametrize(
    ("raw", "accepted"),
    [
        (nested(2), True),
        (nested(MAX_JSON_DEPTH), True),
        (nested(MAX_JSON_DEPTH, as_list=False), True),
        (nested(MAX_JSON_DEPTH + 1), False),
        (nested(MAX_JSON_DEPTH + 1, as_list=False), False),
        (nested(500), False),
        (nested(500, as_list=False), False),
        (nested(5000), False),  # past orjson's own limit: still a 400
        # Many containers, none deep: counted, walked, accepted.
        (b'{"messages": [' + b",".join([b'{"a": [1, {"b": []}]}'] * 500) + b"]}", True),
        # Brackets inside strings are not nesting.
        (b'{"content": "' + b"[" * 1000 + b'"}', True),
    ],
)
def test_json_depth(raw: bytes, accepted: bool) -> None:
    if accepted:
        assert isinstance(parse_json_object(raw), dict)
        return
    with pytest.raises(InvalidRequest) as caught:
        parse_json_object(raw)
    assert caught.value.status == 400 and caught.value.code == "invalid_json"
    assert "nested too deeply" in caught.value.message or "depth limit" in caught.value.message


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ({}, 1, False),
        ([], 1, False),
        ({"a": {}}, 1, True),
        ({"a": {}}, 2, False),
        ([[[]]], 2, True),
        ([[[]]], 3, False),
        ({"a": 1, "b": [1, 2, {"c": "[[[["}]}, 3, False),
        ({"a": 1, "b": [1, 2, {"c": [[]]}]}, 4, True),
        ("not a container", 1, False),
    ],
)
def test_too_deep(value: Any, limit: int, expected: bool) -> None:
    assert too_deep(value, limit) is expected


# -- a client's tool schema, read by escalation's tool_schema check ------------------------------------


@pytest.mark.parametrize(
    ("value", "schema", "expected"),
    [
        ({"a": 1}, {"required": [["x"]]}, True),
        ({"a": 1}, {"required": 5}, True),
        ({"a": 1}, {"required": ["a", {"b": 1}]}, True),
        ({"a": 1}, {"required": ["b"]}, False),
        ({"a": 1}, {"enum": 5}, True),
        (1, {"enum": [1, [2]]}, True),
        (3, {"enum": [1, [2]]}, False),
        ({"a": 1}, {"properties": ["a"]}, True),
        ({"a": 1}, {"properties": {"a": 5}}, True),
        ({"a": 1}, {"properties": {"a": {"type": "string"}}}, False),
        ({"a": 1}, {"type": {"a": 1}}, True),
        ([1], {"type": [["x"], "array"]}, True),
        ([1], {"type": [["x"], "object"]}, False),
        ([1], {"type": "array", "items": 5}, True),
    ],
)
def test_escalation_reads_any_schema(value: Any, schema: Any, expected: bool) -> None:
    """A malformed keyword constrains nothing; it never raises (it did: a 500 on an escalating alias)."""
    assert conforms(value, schema) is expected
