"""Inbound Responses API translation, table by table: requests, errors, responses and stream events.

Every Response object and stream event is also checked against the installed ``openai`` SDK's own
types (pydantic validation, not the SDK's lenient parsing), so the shapes are OpenAI's exactly.
"""

from __future__ import annotations

import itertools
from typing import Any, get_args

import orjson
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from hedge.errors import InvalidRequest
from hedge.providers.responses_inbound import ResponsesEvents, items_to_messages, to_chat, to_response
from hedge.wire.sse import event_data

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


EVENT_TYPES: dict[str, Any] = {
    get_args(cls.model_fields["type"].annotation)[0]: cls
    for cls in get_args(get_args(ResponseStreamEvent)[0])
}
"""The SDK's stream event classes by their ``type``."""


def counter() -> Any:
    """Deterministic ids: ``msg_1``, ``fc_2`` ..."""
    numbers = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(numbers)}"


def valid(model: Any, data: dict[str, Any]) -> None:
    """``data`` validates as the SDK type ``model``, but for usage's ``cache_write_tokens``: chat
    completions does not report cache writes, so the gateway does not claim a number."""
    adapter = pydantic.TypeAdapter(model)
    try:
        adapter.validate_python(data)
    except pydantic.ValidationError as exc:
        others = [e for e in exc.errors() if e["loc"][-1] != "cache_write_tokens"]
        assert not others, others


# -- requests --------------------------------------------------------------------------------------------

REQUESTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "string input",
        {"model": "m", "input": "hi"},
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    ),
    (
        "instructions first, then developer, user and assistant turns",
        {
            "model": "m",
            "instructions": "Be brief.",
            "input": [
                {"role": "developer", "content": "Use metric units."},
                {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Where?"}],
                },
                {"role": "user", "content": "Paris"},
            ],
        },
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": "Use metric units."},
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "Where?"},
                {"role": "user", "content": "Paris"},
            ]
        },
    ),
    (
        "images and files become chat parts",
        {
            "model": "m",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what is this?"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                        {
                            "type": "input_file",
                            "file_data": "data:application/pdf;base64,JVBE",
                            "filename": "a.pdf",
                        },
                    ],
                }
            ],
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                        },
                        {
                            "type": "file",
                            "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
                        },
                    ],
                }
            ]
        },
    ),
    (
        "an assistant message and the calls after it are one turn; outputs are tool messages",
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "weather in Paris and Rome?"},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Checking."}],
                },
                {
                    "type": "function_call",
                    "call_id": "c1",
                    "name": "get_weather",
                    "arguments": '{"city":"Paris"}',
                },
                {
                    "type": "function_call",
                    "call_id": "c2",
                    "name": "get_weather",
                    "arguments": '{"city":"Rome"}',
                },
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "rain"}],
                },
            ],
        },
        {
            "messages": [
                {"role": "user", "content": "weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "c2", "content": "rain"},
            ]
        },
    ),
    (
        "a function call with no message before it",
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "weather?"},
                {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            ],
        },
        {
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            ]
        },
    ),
    (
        "tools, tool_choice and parallel_tool_calls",
        {
            "model": "m",
            "input": "hi",
            "tools": [{**WEATHER, "strict": True}],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "parallel_tool_calls": False,
        },
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Weather for a city",
                        "parameters": WEATHER["parameters"],
                        "strict": True,
                    },
                }
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
        },
    ),
    (
        "tool_choice required",
        {"model": "m", "input": "hi", "tool_choice": "required"},
        {"tool_choice": "required"},
    ),
    (
        "json_schema text format",
        {
            "model": "m",
            "input": "hi",
            "text": {"format": {"type": "json_schema", "name": "n", "schema": SCHEMA, "strict": True}},
        },
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "n", "schema": SCHEMA, "strict": True},
            }
        },
    ),
    (
        "json_object text format and verbosity",
        {"model": "m", "input": "hi", "text": {"format": {"type": "json_object"}, "verbosity": "low"}},
        {"response_format": {"type": "json_object"}, "verbosity": "low"},
    ),
    (
        "sampling, limits, reasoning and pass-through strings",
        {
            "model": "m",
            "input": "hi",
            "temperature": 0.5,
            "top_p": 0.9,
            "max_output_tokens": 64,
            "reasoning": {"effort": "low", "summary": "auto"},
            "user": "u1",
            "safety_identifier": "s1",
            "prompt_cache_key": "k1",
            "service_tier": "flex",
        },
        {
            "temperature": 0.5,
            "top_p": 0.9,
            "max_completion_tokens": 64,
            "reasoning_effort": "low",
            "user": "u1",
            "safety_identifier": "s1",
            "prompt_cache_key": "k1",
            "service_tier": "flex",
        },
    ),
    (
        "streaming asks for usage",
        {"model": "m", "input": "hi", "stream": True},
        {"stream": True, "stream_options": {"include_usage": True}},
    ),
    (
        "logprobs through include",
        {"model": "m", "input": "hi", "include": ["message.output_text.logprobs"], "top_logprobs": 2},
        {"logprobs": True, "top_logprobs": 2},
    ),
    (
        "the gateway's own options pass",
        {"model": "m", "input": "hi", "hedge": {"cache": 60}},
        {"hedge": {"cache": 60}},
    ),
]


@pytest.mark.parametrize(("body", "expected"), [r[1:] for r in REQUESTS], ids=[r[0] for r in REQUESTS])
def test_request_translation(body: dict[str, Any], expected: dict[str, Any]) -> None:
    chat, _ = to_chat(body)
    assert {k: chat.get(k) for k in expected} == expected


@pytest.mark.parametrize(
    "body",
    [
        {
            "model": "m",
            "input": "hi",
            "metadata": {"tags": "a"},
            "store": True,
            "previous_response_id": "resp_1",
            "truncation": "disabled",
            "max_tool_calls": 3,
            "include": ["reasoning.encrypted_content", "message.input_image.image_url"],
            "stream_options": {"include_obfuscation": False},
        }
    ],
)
def test_kept_and_ignored_parameters_are_not_sent(body: dict[str, Any]) -> None:
    chat, _ = to_chat(body)
    assert set(chat) == {"model", "messages"}


def test_previous_items_come_first_and_instructions_are_not_carried() -> None:
    first, first_items = to_chat({"model": "m", "instructions": "old", "input": "one"}, ids=counter())
    answer = {
        "id": "msg_9",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "two", "annotations": []}],
    }
    chat, items = to_chat({"model": "m", "instructions": "new", "input": "three"}, [*first_items, answer])
    assert chat["messages"] == [
        {"role": "system", "content": "new"},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three"},
    ]
    assert first["messages"][0] == {"role": "system", "content": "old"}
    assert [i["content"][0]["text"] for i in items] == ["three"]


def test_input_items_are_stored_in_openais_form() -> None:
    _, items = to_chat(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "hi"},
                {"type": "function_call_output", "call_id": "c1", "output": "ok", "id": "fco_mine"},
            ],
        },
        ids=counter(),
    )
    assert items == [
        {
            "id": "msg_1",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_text", "text": "hi"}],
        },
        {
            "id": "fco_mine",
            "type": "function_call_output",
            "status": "completed",
            "call_id": "c1",
            "output": "ok",
        },
    ]
    assert items_to_messages(items)[1] == {"role": "tool", "tool_call_id": "c1", "content": "ok"}


ERRORS: list[tuple[dict[str, Any], str, str]] = [
    ({"input": "hi"}, "model", "Missing required parameter"),
    ({"model": "m"}, "input", "Missing required parameter"),
    ({"model": "m", "input": "hi", "frobnicate": 1}, "frobnicate", "Unknown parameter: 'frobnicate'"),
    ({"model": "m", "input": 5}, "input", "Invalid type"),
    ({"model": "m", "input": []}, "input", "at least one"),
    ({"model": "m", "input": [{"role": "tool", "content": "x"}]}, "input[0].role", "Supported values"),
    ({"model": "m", "input": [{"role": "user"}]}, "input[0].content", "Missing required parameter"),
    (
        {"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
        "input[0].call_id",
        "Missing",
    ),
    (
        {"model": "m", "input": [{"type": "function_call_output", "call_id": "c"}]},
        "input[0].output",
        "Missing",
    ),
    ({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type", "not supported"),
    (
        {"model": "m", "input": [{"type": "reasoning", "id": "rs_1", "summary": []}]},
        "input[0].type",
        "not supported",
    ),
    ({"model": "m", "input": [{"type": "web_search_call", "id": "ws"}]}, "input[0].type", "not supported"),
    (
        {
            "model": "m",
            "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}],
        },
        "input[0].content[0].file_id",
        "no Files API",
    ),
    (
        {"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]},
        "input[0].content[0].file_id",
        "no Files API",
    ),
    (
        {
            "model": "m",
            "input": [{"role": "user", "content": [{"type": "input_file", "file_url": "https://x/a.pdf"}]}],
        },
        "input[0].content[0].file_url",
        "no Files API",
    ),
    (
        {"model": "m", "input": [{"role": "user", "content": [{"type": "input_audio", "data": "x"}]}]},
        "input[0].content[0].type",
        "Supported values",
    ),
    (
        {"model": "m", "input": [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]},
        "input[0].content[0].type",
        "Supported values",
    ),
    (
        {
            "model": "m",
            "input": [{"role": "system", "content": [{"type": "input_image", "image_url": "https://x"}]}],
        },
        "input",
        "only hold text",
    ),
    (
        {
            "model": "m",
            "input": [
                {
                    "type": "function_call_output",
                    "call_id": "c",
                    "output": [{"type": "input_image", "image_url": "https://x"}],
                }
            ],
        },
        "input",
        "tool results are text",
    ),
    ({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type", "'web_search'"),
    (
        {"model": "m", "input": "hi", "tools": [{"type": "file_search", "vector_store_ids": []}]},
        "tools[0].type",
        "hosted",
    ),
    (
        {"model": "m", "input": "hi", "tools": [{"type": "mcp", "server_label": "x"}]},
        "tools[0].type",
        "'mcp'",
    ),
    (
        {"model": "m", "input": "hi", "tools": [{"type": "code_interpreter"}]},
        "tools[0].type",
        "'code_interpreter'",
    ),
    (
        {"model": "m", "input": "hi", "tools": [{"type": "image_generation"}]},
        "tools[0].type",
        "'image_generation'",
    ),
    ({"model": "m", "input": "hi", "tools": [{"type": "function"}]}, "tools[0].name", "Missing"),
    (
        {"model": "m", "input": "hi", "tools": [{**WEATHER, "defer_loading": True}]},
        "tools[0].defer_loading",
        "no such",
    ),
    (
        {"model": "m", "input": "hi", "tool_choice": {"type": "web_search_preview"}},
        "tool_choice",
        "not translated",
    ),
    ({"model": "m", "input": "hi", "tool_choice": "sometimes"}, "tool_choice", "Supported values"),
    (
        {"model": "m", "input": "hi", "text": {"format": {"type": "yaml"}}},
        "text.format.type",
        "Supported values",
    ),
    (
        {"model": "m", "input": "hi", "text": {"format": {"type": "json_schema", "schema": SCHEMA}}},
        "text.format.name",
        "Missing",
    ),
    (
        {"model": "m", "input": "hi", "text": {"format": {"type": "json_schema", "name": "n"}}},
        "text.format.schema",
        "Missing",
    ),
    ({"model": "m", "input": "hi", "max_output_tokens": 8}, "max_output_tokens", ">= 16"),
    ({"model": "m", "input": "hi", "max_output_tokens": "8"}, "max_output_tokens", "Invalid type"),
    ({"model": "m", "input": "hi", "temperature": True}, "temperature", "Invalid type"),
    ({"model": "m", "input": "hi", "truncation": "auto"}, "truncation", "context window"),
    ({"model": "m", "input": "hi", "truncation": "sometimes"}, "truncation", "Supported values"),
    ({"model": "m", "input": "hi", "include": ["everything"]}, "include[0]", "Supported values"),
    ({"model": "m", "input": "hi", "metadata": {"a": 1}}, "metadata.a", "Invalid type"),
    ({"model": "m", "input": "hi", "metadata": {str(i): "x" for i in range(17)}}, "metadata", "at most 16"),
    ({"model": "m", "input": "hi", "background": True}, "background", "not supported"),
    ({"model": "m", "input": "hi", "conversation": "conv_1"}, "conversation", "not supported"),
    ({"model": "m", "input": "hi", "prompt": {"id": "pmpt_1"}}, "prompt", "not supported"),
    ({"model": "m", "input": "hi", "stream": "yes"}, "stream", "Invalid type"),
    ({"model": "m", "input": "hi", "instructions": ["x"]}, "instructions", "Invalid type"),
]


@pytest.mark.parametrize(("extra", "param", "message"), ERRORS, ids=[e[1] + ":" + e[2] for e in ERRORS])
def test_request_errors(extra: dict[str, Any], param: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_chat(extra)
    assert caught.value.param == param
    assert message in caught.value.message
    assert caught.value.status == 400


# -- responses -------------------------------------------------------------------------------------------


def completion(message: dict[str, Any], finish: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-2024",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish, **extra}
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 4,
            "total_tokens": 14,
            "prompt_tokens_details": {"cached_tokens": 3},
            "completion_tokens_details": {"reasoning_tokens": 1},
            "hedge_cost_usd": 0.001,
        },
    }


RESPONSES: list[tuple[str, dict[str, Any], str, Any, list[dict[str, Any]]]] = [
    (
        "text",
        completion({"content": "hello"}),
        "completed",
        None,
        [
            {
                "id": "msg_1",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "hello", "annotations": [], "logprobs": []}],
            }
        ],
    ),
    (
        "cut by the token limit",
        completion({"content": "hel"}, "length"),
        "incomplete",
        {"reason": "max_output_tokens"},
        [
            {
                "id": "msg_1",
                "type": "message",
                "status": "incomplete",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "hel", "annotations": [], "logprobs": []}],
            }
        ],
    ),
    (
        "filtered",
        completion({"content": ""}, "content_filter"),
        "incomplete",
        {"reason": "content_filter"},
        [
            {
                "id": "msg_1",
                "type": "message",
                "status": "incomplete",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "", "annotations": [], "logprobs": []}],
            }
        ],
    ),
    (
        "tool calls",
        completion(
            {
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            "tool_calls",
        ),
        "completed",
        None,
        [
            {
                "id": "fc_1",
                "type": "function_call",
                "status": "completed",
                "call_id": "call_a",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {
                "id": "fc_2",
                "type": "function_call",
                "status": "completed",
                "call_id": "call_b",
                "name": "get_weather",
                "arguments": '{"city":"Rome"}',
            },
        ],
    ),
    (
        "text and a tool call",
        completion(
            {
                "content": "Checking.",
                "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            "tool_calls",
        ),
        "completed",
        None,
        [
            {
                "id": "msg_1",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []}],
            },
            {
                "id": "fc_2",
                "type": "function_call",
                "status": "completed",
                "call_id": "call_a",
                "name": "f",
                "arguments": "{}",
            },
        ],
    ),
    (
        "a refusal",
        completion({"content": None, "refusal": "I can't help with that."}),
        "completed",
        None,
        [
            {
                "id": "msg_1",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "refusal", "refusal": "I can't help with that."}],
            }
        ],
    ),
    (
        "logprobs",
        completion(
            {"content": "hi"},
            logprobs={"content": [{"token": "hi", "logprob": -0.1, "bytes": [104, 105], "top_logprobs": []}]},
        ),
        "completed",
        None,
        [
            {
                "id": "msg_1",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {
                        "type": "output_text",
                        "text": "hi",
                        "annotations": [],
                        "logprobs": [
                            {"token": "hi", "logprob": -0.1, "bytes": [104, 105], "top_logprobs": []}
                        ],
                    }
                ],
            }
        ],
    ),
]


@pytest.mark.parametrize(
    ("chat", "status", "incomplete", "output"), [r[1:] for r in RESPONSES], ids=[r[0] for r in RESPONSES]
)
def test_response_translation(
    chat: dict[str, Any], status: str, incomplete: Any, output: list[dict[str, Any]]
) -> None:
    body = {"model": "alias", "input": "hi", "tools": [WEATHER], "metadata": {"k": "v"}}
    out = to_response(chat, body, response_id="resp_1", created_at=100, completed_at=101, ids=counter())
    valid(Response, out)
    assert out["status"] == status
    assert out["incomplete_details"] == incomplete
    assert out["completed_at"] == (101 if status == "completed" else None)
    assert out["output"] == output
    assert out["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 3},
        "output_tokens": 4,
        "output_tokens_details": {"reasoning_tokens": 1},
        "total_tokens": 14,
        "hedge_cost_usd": 0.001,
    }
    assert (out["id"], out["object"], out["created_at"], out["model"]) == (
        "resp_1",
        "response",
        100,
        "gpt-4o-2024",
    )


def test_response_echoes_the_request() -> None:
    body = {
        "model": "alias",
        "input": "hi",
        "instructions": "Be brief.",
        "tools": [WEATHER],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "text": {"format": {"type": "json_schema", "name": "n", "schema": SCHEMA, "strict": True}},
        "reasoning": {"effort": "low"},
        "temperature": 0.3,
        "top_p": 0.8,
        "max_output_tokens": 100,
        "metadata": {"k": "v"},
        "previous_response_id": "resp_0",
        "store": False,
        "truncation": "disabled",
        "user": "u",
    }
    out = to_response(completion({"content": "{}"}), body, response_id="resp_1", created_at=1, completed_at=2)
    valid(Response, out)
    echoed = {k: out[k] for k in body if k not in ("model", "input")}
    assert echoed == {
        **{k: v for k, v in body.items() if k not in ("model", "input", "tools", "reasoning")},
        "instructions": "Be brief.",
        "tools": [{**WEATHER, "strict": None}],
        "reasoning": {"effort": "low", "summary": None},
        "text": {**body["text"], "verbosity": None},
    }
    defaults = to_response(
        completion({"content": "x"}),
        {"model": "a", "input": "hi"},
        response_id="r",
        created_at=1,
        completed_at=1,
    )
    assert {
        k: defaults[k]
        for k in ("tools", "tool_choice", "parallel_tool_calls", "store", "truncation", "metadata", "text")
    } == {
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "store": True,
        "truncation": "disabled",
        "metadata": {},
        "text": {"format": {"type": "text"}, "verbosity": None},
    }


# -- streaming -------------------------------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-2024",
        "choices": [choice],
    }


def decode(frames: list[bytes]) -> list[dict[str, Any]]:
    events = []
    for raw in frames:
        name = raw.split(b"\n", 1)[0].removeprefix(b"event: ").decode()
        data = orjson.loads(event_data(raw))
        assert data["type"] == name, "the SSE event name is the event's type"
        valid(EVENT_TYPES[data["type"]], data)
        events.append(data)
    return events


TEXT_CHUNKS = [chunk({"role": "assistant", "content": "Hel"}), chunk({"content": "lo"}), chunk(finish="stop")]
CALL_CHUNKS = [
    chunk({"role": "assistant", "content": "Checking."}),
    chunk(
        {
            "tool_calls": [
                {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}}
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
    chunk(
        {
            "tool_calls": [
                {"index": 1, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}}
            ]
        }
    ),
    chunk(finish="tool_calls"),
]
USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "hedge_cost_usd": 0.0}

STREAMS: list[tuple[str, list[dict[str, Any]], str | None, list[str]]] = [
    (
        "text",
        TEXT_CHUNKS,
        None,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ],
    ),
    (
        "text, then two tool calls",
        CALL_CHUNKS,
        None,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ],
    ),
    (
        "cut by the token limit",
        [chunk({"content": "Hel"}), chunk(finish="length")],
        None,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.incomplete",
        ],
    ),
    (
        "the upstream fails part-way",
        [chunk({"content": "Hel"})],
        "upstream went away",
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.failed",
        ],
    ),
]


@pytest.mark.parametrize(
    ("chunks", "failure", "kinds"), [s[1:] for s in STREAMS], ids=[s[0] for s in STREAMS]
)
def test_stream_events(chunks: list[dict[str, Any]], failure: str | None, kinds: list[str]) -> None:
    body = {"model": "alias", "input": "hi", "stream": True}
    translator = ResponsesEvents(body, response_id="resp_1", created_at=100, ids=counter())
    frames: list[bytes] = []
    for c in chunks:
        frames += translator.chunk(c)
    frames += translator.fail(failure) if failure else translator.finish(USAGE, 101)
    assert translator.finish(USAGE, 102) == [] and translator.fail("again") == [], "the end is sent once"
    events = decode(frames)
    assert [e["type"] for e in events] == kinds
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    assert events[0]["response"]["model"] == "gpt-4o-2024"
    last = events[-1]["response"]
    assert last == translator.response, "the final event carries the response a retrieve returns"
    valid(Response, last)
    assert last["id"] == "resp_1"


def test_stream_final_response_matches_the_whole_one() -> None:
    """Streamed or not, the same chat answer gives the same Response (ids and times aside)."""
    body = {"model": "alias", "input": "hi"}
    translator = ResponsesEvents(body, response_id="resp_1", created_at=100, ids=counter())
    for c in CALL_CHUNKS:
        translator.chunk(c)
    translator.finish(USAGE, 101)
    message = {
        "content": "Checking.",
        "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
            {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
        ],
    }
    whole = to_response(
        {**completion(message, "tool_calls"), "usage": USAGE},
        body,
        response_id="resp_1",
        created_at=100,
        completed_at=101,
        ids=counter(),
    )
    assert translator.response == whole


def test_stream_failure_event_carries_the_partial_output() -> None:
    translator = ResponsesEvents(
        {"model": "a", "input": "hi"}, response_id="resp_1", created_at=1, ids=counter()
    )
    translator.chunk(chunk({"content": "Hel"}))
    failed = decode(translator.fail("boom"))[0]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "server_error", "message": "boom"}
    assert failed["output"][0]["status"] == "incomplete"
    assert failed["output"][0]["content"][0]["text"] == "Hel"
    assert failed["usage"] is None


@pytest.mark.parametrize(
    ("value", "text"), [('{"a": 1}', '{"a": 1}'), ({"a": 1}, '{"a":1}'), (None, ""), ([1], "[1]")]
)
def test_tool_arguments_are_always_text(value: object, text: str) -> None:
    """An upstream that sends arguments as an object must not crash a Responses answer or stream."""
    from hedge.providers.responses_inbound import arguments_text

    assert arguments_text(value) == text


def test_a_stream_with_object_arguments_still_streams() -> None:
    from hedge.providers.responses_inbound import ResponsesEvents

    events = ResponsesEvents({"model": "m", "input": "x"}, response_id="resp_1", created_at=1)
    call = {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": {"a": 1}}}
    out = events.chunk({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    assert any(b"response.function_call_arguments.delta" in e for e in out)
    events.chunk(
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    )
    events.finish({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}, 2)
    assert events.response is not None
    (item,) = [i for i in events.response["output"] if i["type"] == "function_call"]
    assert item["arguments"] == '{"a":1}'
