"""Request translations checked against the providers' documented examples (issue 14, part B).

Each fixture notes where its expected upstream body comes from. Table-driven: a chat body in, the
body the provider documents out (only the fields under test are compared).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from hedge.config import ProviderConfig
from hedge.errors import InvalidRequest
from hedge.providers import families, make_adapter
from hedge.providers.anthropic_inbound import to_openai
from hedge.providers.base import Capabilities, UpstreamRequest
from hedge.providers.capabilities import PARAMETERS, TABLE, drop, emulated, ignorable, unsupported

ANTHROPIC = ProviderConfig(style="anthropic", base_url="https://api.anthropic.com", api_key="k")
GEMINI = ProviderConfig(style="gemini", base_url="https://generativelanguage.googleapis.com", api_key="k")
OPENAI = ProviderConfig(style="openai", base_url="https://api.openai.com/v1", api_key="k")
COMPATIBLE = ProviderConfig(style="openai", base_url="http://vllm.internal:8000/v1", api_key="k")


def send(config: ProviderConfig, body: dict[str, Any], model: str) -> dict[str, Any]:
    original = copy.deepcopy(body)
    request = make_adapter("p", config).chat_request(body, model, False, False)
    assert body == original, "translation mutated the client's body"
    out: dict[str, Any] = orjson.loads(request.body)
    return out


USER = [{"role": "user", "content": "Are there an infinite number of prime numbers such that n mod 4 == 3?"}]


# -- point 4: reasoning controls ----------------------------------------------------------------------
# Anthropic: docs.anthropic.com/en/docs/build-with-claude/extended-thinking ("thinking": {"type":
# "enabled", "budget_tokens": 10000} with "max_tokens": 16000) and .../adaptive-thinking
# ("thinking": {"type": "adaptive"}, "output_config": {"effort": "medium"}).
# Gemini: ai.google.dev/gemini-api/docs/thinking ("thinkingConfig": {"thinkingBudget": 1024},
# {"thinkingBudget": 0} to turn thinking off on 2.5 Flash, {"thinkingLevel": "low"} on Gemini 3,
# "includeThoughts": true for thought summaries, shown to the client as reasoning_content).


@pytest.mark.parametrize(
    ("config", "model", "extra", "expected"),
    [
        (
            ANTHROPIC,
            "claude-sonnet-4-5",
            {"reasoning_effort": "medium", "max_completion_tokens": 16000},
            {"thinking": {"type": "enabled", "budget_tokens": 8192}, "max_tokens": 16000},
        ),
        (
            ANTHROPIC,
            "claude-sonnet-4-5",
            {"reasoning_effort": "low"},
            {"thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 4096 + 2048},
        ),
        (
            ANTHROPIC,
            "claude-sonnet-4-5",
            {"reasoning_effort": "high", "max_completion_tokens": 4000},
            {"thinking": {"type": "enabled", "budget_tokens": 3999}, "max_tokens": 4000},
        ),
        (
            ANTHROPIC,
            "claude-opus-4-6",
            {"reasoning_effort": "medium", "max_completion_tokens": 16000},
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "medium"}, "max_tokens": 16000},
        ),
        (ANTHROPIC, "claude-sonnet-4-5", {"reasoning_effort": "none"}, {"thinking": None}),
        (
            ANTHROPIC,
            "claude-sonnet-4-5",
            {"thinking": {"type": "enabled", "budget_tokens": 10000}, "max_tokens": 16000},
            {"thinking": {"type": "enabled", "budget_tokens": 10000}, "max_tokens": 16000},
        ),
        (
            GEMINI,
            "gemini-2.5-flash",
            {"reasoning_effort": "low"},
            {"generationConfig": {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}}},
        ),
        (
            GEMINI,
            "gemini-2.5-flash",
            {"reasoning_effort": "none"},
            {"generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}},
        ),
        (
            GEMINI,
            "gemini-2.5-pro",
            {"reasoning_effort": "xhigh"},
            {"generationConfig": {"thinkingConfig": {"thinkingBudget": 32768, "includeThoughts": True}}},
        ),
        (
            GEMINI,
            "gemini-3-pro-preview",
            {"reasoning_effort": "low"},
            {"generationConfig": {"thinkingConfig": {"thinkingLevel": "low", "includeThoughts": True}}},
        ),
        (
            GEMINI,
            "gemini-3-pro-preview",
            {"reasoning_effort": "medium"},
            {"generationConfig": {"thinkingConfig": {"thinkingLevel": "high", "includeThoughts": True}}},
        ),
        (
            GEMINI,
            "gemini-2.5-flash",
            {"thinking": {"type": "enabled", "budget_tokens": 2000}},
            {"generationConfig": {"thinkingConfig": {"thinkingBudget": 2000, "includeThoughts": True}}},
        ),
        (
            OPENAI,
            "gpt-5",
            {"thinking": {"type": "enabled", "budget_tokens": 6000}, "max_tokens": 8000},
            {
                "reasoning_effort": "medium",
                "max_completion_tokens": 8000,
                "max_tokens": None,
                "thinking": None,
            },
        ),
    ],
)
def test_reasoning_translation(
    config: ProviderConfig, model: str, extra: dict[str, Any], expected: dict[str, Any]
) -> None:
    out = send(config, {"model": "alias", "messages": USER, **extra}, model)
    for key, value in expected.items():
        if key == "generationConfig":
            assert out[key]["thinkingConfig"] == value["thinkingConfig"]
        else:
            assert out.get(key) == value, key


def test_thinking_budget_needs_room_under_the_client_limit() -> None:
    body = {"model": "a", "messages": USER, "reasoning_effort": "low", "max_completion_tokens": 800}
    with pytest.raises(InvalidRequest, match="above 1024"):
        send(ANTHROPIC, body, "claude-sonnet-4-5")


# -- point 5: Claude's sampling rules, per model family -----------------------------------------------
# docs.anthropic.com/en/api/messages ("You should either alter temperature or top_p, but not both"),
# and the 400 Claude 4.1+ answers: "`temperature` and `top_p` cannot both be specified for this model."


@pytest.mark.parametrize(
    ("model", "extra", "bad"),
    [
        ("claude-sonnet-4-5-20250929", {"temperature": 0.2, "top_p": 0.9}, ["top_p"]),
        ("claude-opus-4-1", {"temperature": 0.2, "top_p": 0.9}, ["top_p"]),
        ("claude-sonnet-4-20250514", {"temperature": 0.2, "top_p": 0.9}, []),
        ("claude-3-5-haiku-latest", {"temperature": 0.2, "top_p": 0.9}, []),
        ("claude-sonnet-4-5", {"temperature": 1.5}, ["temperature"]),
        ("claude-sonnet-4-5", {"temperature": 0.3}, []),
        ("claude-sonnet-4-5", {"reasoning_effort": "low", "temperature": 0.3}, ["temperature"]),
        ("claude-sonnet-4-5", {"reasoning_effort": "low", "top_k": 5}, ["top_k"]),
        ("claude-3-5-haiku-latest", {"reasoning_effort": "low"}, ["reasoning_effort"]),
        ("claude-3-5-haiku-latest", {"reasoning_effort": "none"}, []),
    ],
)
def test_claude_rules(model: str, extra: dict[str, Any], bad: list[str]) -> None:
    caps = make_adapter("c", ANTHROPIC).capabilities
    assert unsupported({"messages": USER, **extra}, caps, "anthropic", model) == bad


def test_claude_rules_under_drop_keep_what_can_be_kept() -> None:
    caps = make_adapter("c", ANTHROPIC).capabilities
    body = {"messages": USER, "temperature": 1.7, "top_p": 0.9}
    bad = unsupported(body, caps, "anthropic", "claude-sonnet-4-5")
    assert bad == ["temperature", "top_p"]
    assert drop(body, bad, caps, "anthropic") == {"messages": USER, "temperature": 1.0}


# -- point 3: the capability table ---------------------------------------------------------------------


def test_every_openai_chat_parameter_has_a_row() -> None:
    """The parameters of platform.openai.com/docs/api-reference/chat/create (as of the openai SDK's
    ``CompletionCreateParamsBase``), plus the extra-body extensions clients send."""
    from openai.types.chat import completion_create_params

    documented = set(completion_create_params.CompletionCreateParamsBase.__annotations__)
    assert documented - set(TABLE) == set()
    assert {"top_k", "thinking", "hedge"} <= set(TABLE)
    assert len({p.name for p in PARAMETERS}) == len(PARAMETERS)


@pytest.mark.parametrize(
    ("style", "extra", "ignored", "bad"),
    [
        ("anthropic", {"reasoning_effort": "low"}, [], []),
        ("anthropic", {"verbosity": "low"}, [], ["verbosity"]),
        ("anthropic", {"web_search_options": {}}, [], ["web_search_options"]),
        (
            "anthropic",
            {"modalities": ["text", "audio"], "audio": {"voice": "alloy"}},
            [],
            ["modalities", "audio"],
        ),
        ("anthropic", {"modalities": ["text"]}, [], []),
        (
            "anthropic",
            {"service_tier": "flex", "prompt_cache_key": "k", "store": True},
            ["prompt_cache_key", "store"],
            ["service_tier"],  # priced per tier, so never dropped in silence: Anthropic has no flex
        ),
        ("anthropic", {"service_tier": "priority"}, [], []),  # sent as "auto"
        ("gemini", {"service_tier": "default"}, [], []),
        ("anthropic", {"seed": 1, "presence_penalty": 0.5}, ["seed", "presence_penalty"], []),
        ("anthropic", {"logprobs": True}, [], ["logprobs"]),
        ("anthropic", {"brand_new_parameter": 1}, [], ["brand_new_parameter"]),
        ("gemini", {"brand_new_parameter": 1}, [], ["brand_new_parameter"]),
        ("openai", {"brand_new_parameter": 1}, [], []),
        ("gemini", {"top_k": 3, "seed": 1}, [], []),
        ("gemini", {"verbosity": "high", "metadata": {"a": "b"}}, ["metadata"], ["verbosity"]),
    ],
)
def test_policy_per_wire_format(
    style: str, extra: dict[str, Any], ignored: list[str], bad: list[str]
) -> None:
    body = {"model": "m", "messages": USER, **extra}
    caps = (
        Capabilities()
        if style == "openai"
        else make_adapter("p", {"anthropic": ANTHROPIC, "gemini": GEMINI}[style]).capabilities
    )
    assert ignorable(body, style) == ignored
    assert (
        unsupported(body, caps, style, "claude-sonnet-4-5" if style == "anthropic" else "gemini-2.5-flash")
        == bad
    )


def test_top_k_is_passed_to_compatible_servers_but_not_to_openai() -> None:
    body = {"model": "m", "messages": USER, "top_k": 5}
    assert unsupported(body, make_adapter("o", OPENAI).capabilities, "openai", "gpt-4o") == ["top_k"]
    assert unsupported(body, make_adapter("v", COMPATIBLE).capabilities, "openai", "llama") == []


def test_reasoning_parameters_on_openai_models_that_do_not_reason() -> None:
    platform, compatible = make_adapter("o", OPENAI).capabilities, make_adapter("v", COMPATIBLE).capabilities
    effort = {"model": "m", "messages": USER, "reasoning_effort": "low"}
    assert unsupported(effort, platform, "openai", "gpt-4o") == ["reasoning_effort"]
    assert unsupported(effort, platform, "openai", "o3") == []
    assert unsupported(effort, compatible, "openai", "deepseek-r1") == [], "another server judges it"
    thinking = {"model": "m", "messages": USER, "thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert unsupported(thinking, platform, "openai", "gpt-4o") == ["thinking"]
    assert unsupported(thinking, platform, "openai", "gpt-5") == []


def test_gemini_models_that_cannot_stop_thinking() -> None:
    caps = make_adapter("g", GEMINI).capabilities
    off = {"messages": USER, "reasoning_effort": "none"}
    assert unsupported(off, caps, "gemini", "gemini-2.5-pro") == ["reasoning_effort"]
    assert unsupported(off, caps, "gemini", "gemini-3-pro-preview") == ["reasoning_effort"]
    assert unsupported(off, caps, "gemini", "gemini-2.5-flash") == []
    on = {"messages": USER, "reasoning_effort": "high"}
    assert unsupported(on, caps, "gemini", "gemini-2.0-flash") == ["reasoning_effort"]


# -- point 6: structured output and parallel tool calls ------------------------------------------------
# docs.anthropic.com/en/docs/build-with-claude/structured-outputs: "output_config": {"format":
# {"type": "json_schema", "schema": {...}}}.

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
    "required": ["name", "email"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("model", "strict", "native"),
    [
        ("claude-sonnet-4-5", True, True),
        ("claude-sonnet-4-5", False, False),
        ("claude-3-7-sonnet-latest", True, False),
    ],
)
def test_strict_json_schema_is_native_on_claude_4_5(model: str, strict: bool, native: bool) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "contact", "schema": SCHEMA, "strict": strict}}
    out = send(ANTHROPIC, {"model": "a", "messages": USER, "response_format": fmt}, model)
    if native:
        assert out["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
        assert "system" not in out
    else:
        assert "output_config" not in out
        assert "JSON schema" in out["system"]


def test_parallel_tool_calls_false_is_emulated_on_gemini() -> None:
    adapter = make_adapter("g", GEMINI)
    body = {"model": "g", "messages": USER, "tools": [{"type": "function", "function": {"name": "f"}}]}
    body["parallel_tool_calls"] = False
    assert unsupported(body, adapter.capabilities, "gemini", "gemini-2.5-flash") == []
    assert emulated(body, "gemini") == ["parallel_tool_calls"]
    request = adapter.chat_request(body, "gemini-2.5-flash", False, False)
    two_calls = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"functionCall": {"name": "f", "args": {"a": 1}}},
                        {"functionCall": {"name": "f", "args": {"a": 2}}},
                    ],
                },
                "finishReason": "STOP",
            }
        ]
    }
    answer = orjson.loads(adapter.chat_response(orjson.dumps(two_calls), request).body)
    assert len(answer["choices"][0]["message"]["tool_calls"]) == 1
    stream = adapter.stream_translator("gemini-2.5-flash", False, request)
    events = stream.feed(b"data: " + orjson.dumps(two_calls) + b"\r\n\r\n")
    calls = [c for e in events for c in orjson.loads(e[6:])["choices"][0]["delta"].get("tool_calls", [])]
    assert len(calls) == 1
    plain = adapter.chat_request({**body, "parallel_tool_calls": True}, "gemini-2.5-flash", False, False)
    answer = orjson.loads(adapter.chat_response(orjson.dumps(two_calls), plain).body)
    assert len(answer["choices"][0]["message"]["tool_calls"]) == 2


# -- point 7: prompt-cache markers ---------------------------------------------------------------------
# docs.anthropic.com/en/docs/build-with-claude/prompt-caching: "system": [{"type": "text", "text":
# "You are an AI assistant tasked with analyzing literary works...", "cache_control": {"type": "ephemeral"}}].

LONG = (
    "You are an AI assistant tasked with analyzing literary works. "
    "Here is the full text of Pride and Prejudice: ..."
)
EPHEMERAL = {"type": "ephemeral"}


def test_cache_markers_reach_anthropic_from_chat_completions() -> None:
    body = {
        "model": "a",
        "messages": [
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "Be brief."},
                    {"type": "text", "text": LONG, "cache_control": EPHEMERAL},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Analyze the major themes.", "cache_control": EPHEMERAL}
                ],
            },
        ],
    }
    out = send(ANTHROPIC, body, "claude-sonnet-4-5")
    assert out["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": LONG, "cache_control": EPHEMERAL},
    ]
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "Analyze the major themes.", "cache_control": EPHEMERAL}
    ]


def test_cache_markers_survive_anthropic_to_hedge_to_anthropic() -> None:
    inbound = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [
            {"type": "text", "text": "You are an AI assistant tasked with analyzing literary works."},
            {"type": "text", "text": LONG, "cache_control": EPHEMERAL},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Analyze the major themes.", "cache_control": EPHEMERAL}
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": "boom",
                        "is_error": True,
                        "cache_control": EPHEMERAL,
                    }
                ],
            },
        ],
    }
    inbound["tools"] = [{"name": "f", "input_schema": {"type": "object"}, "cache_control": EPHEMERAL}]
    picture = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    inbound["messages"][0]["content"].insert(0, {**picture, "cache_control": EPHEMERAL})
    chat = to_openai(inbound)
    out = send(ANTHROPIC, chat, "claude-sonnet-4-5")
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object"}, "cache_control": EPHEMERAL}]
    platform = send(OPENAI, chat, "gpt-4o")
    assert "cache_control" not in platform["tools"][0]
    assert all(
        "cache_control" not in p
        for m in platform["messages"]
        for p in m["content"] or ()
        if isinstance(p, dict)
    )
    assert out["system"] == inbound["system"]
    assert out["messages"][0]["content"] == inbound["messages"][0]["content"]
    assert out["messages"][2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1",
            "content": "boom",
            "is_error": True,
            "cache_control": EPHEMERAL,
        }
    ]


def test_cache_markers_and_is_error_elsewhere() -> None:
    inbound = {
        "model": "m",
        "max_tokens": 64,
        "system": [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}],
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "boom", "is_error": True}
                ],
            },
        ],
    }
    chat = to_openai(inbound)
    out = send(OPENAI, chat, "gpt-4o")
    assert out["messages"][0]["content"] == [{"type": "text", "text": LONG}], "OpenAI caches by itself"
    assert out["messages"][-1] == {"role": "tool", "tool_call_id": "toolu_1", "content": "Error: boom"}
    gemini = send(GEMINI, chat, "gemini-2.5-flash")
    assert gemini["contents"][-1]["parts"][0]["functionResponse"]["response"] == {"error": "boom"}


# -- points 10 and 11: the /v1/messages path -----------------------------------------------------------


def test_messages_to_openai_reasoning_models_send_max_completion_tokens() -> None:
    chat = to_openai({"model": "gpt-5", "max_tokens": 512, "messages": [{"role": "user", "content": "hi"}]})
    out = send(OPENAI, chat, "gpt-5")
    assert out["max_completion_tokens"] == 512 and "max_tokens" not in out
    assert send(OPENAI, chat, "gpt-4o")["max_tokens"] == 512


def test_anthropic_only_parameters_translate_inbound() -> None:
    inbound = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 16000,
        "messages": [{"role": "user", "content": "hi"}],
        "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 10000},
        "output_config": {"effort": "max", "format": {"type": "json_schema", "schema": SCHEMA}},
        "metadata": {"user_id": "u-1"},
    }
    chat = to_openai(inbound)
    assert chat["top_k"] == 5 and chat["user"] == "u-1" and chat["reasoning_effort"] == "xhigh"
    assert chat["thinking"] == inbound["thinking"]
    assert chat["response_format"]["json_schema"]["schema"] == SCHEMA
    out = send(ANTHROPIC, chat, "claude-sonnet-4-5")
    assert out["thinking"] == inbound["thinking"] and out["top_k"] == 5
    assert out["output_config"] == inbound["output_config"], "an Anthropic client's own, as it sent it"
    assert out["metadata"] == {"user_id": "u-1"} and "system" not in out
    assert "output_config" not in send(OPENAI, chat, "gpt-5"), "translated there, not passed on"
    effort_only = to_openai({**inbound, "thinking": None, "output_config": {"effort": "low"}})
    out = send(ANTHROPIC, effort_only, "claude-opus-4-5")
    assert out["output_config"] == {"effort": "low"} and "thinking" not in out, (
        "no thinking it did not ask for"
    )


def test_family_names() -> None:
    assert families.claude_version("claude-3-7-sonnet-20250219") == (3, 7)
    assert families.claude_version("anthropic/claude-haiku-4-5") == (4, 5)
    assert families.claude_version("gpt-4o") is None
    assert families.openai_reasoning("o4-mini") and families.openai_reasoning("gpt-5.1")
    assert not families.openai_reasoning("gpt-4.1") and not families.openai_reasoning("gpt-5-chat-latest")
    assert families.gemini_thinking("gemini-2.5-flash-lite") == "budget"


def test_reasoning_tokens_from_anthropic_thinking() -> None:
    adapter = make_adapter("c", ANTHROPIC)
    raw = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "x" * 400, "signature": "sig"},
            {"type": "text", "text": "Yes."},
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 120},
    }
    answer = orjson.loads(adapter.chat_response(orjson.dumps(raw), UpstreamRequest("u", b"")).body)
    assert answer["usage"]["completion_tokens_details"] == {"reasoning_tokens": 100}
    assert answer["choices"][0]["message"]["content"] == "Yes."


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"thinking": "on"}, "thinking: Input should be a valid dictionary"),
        ({"thinking": {"type": "sometimes"}}, "thinking.type: Input should be"),
        ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "greater than or equal to 1024"),
        ({"thinking": {"type": "enabled"}}, "thinking.enabled.budget_tokens: Field required"),
        ({"output_config": {"effort": "huge"}}, "output_config.effort: Input should be"),
        (
            {"output_config": {"format": {"type": "json_schema"}}},
            "output_config.format.schema: Field required",
        ),
    ],
)
def test_messages_thinking_and_output_config_are_type_checked(extra: dict[str, Any], problem: str) -> None:
    body = {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(InvalidRequest, match=problem.replace("(", r"\(")):
        to_openai(body)


def test_readme_parameter_table_is_the_capability_table() -> None:
    from pathlib import Path

    from hedge.providers.capabilities import README_END, README_START, markdown_table

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    between = readme.split(README_START, 1)[1].split(README_END, 1)[0]
    assert between.strip() == markdown_table()


def test_system_parts_without_markers_stay_one_string() -> None:
    parts = [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}]
    body = {
        "model": "a",
        "messages": [{"role": "system", "content": parts}, {"role": "system", "content": "Be kind."}, *USER],
    }
    assert send(ANTHROPIC, body, "claude-sonnet-4-5")["system"] == "Be brief.\n\nBe kind."


def test_streamed_thinking_counts_as_reasoning_tokens() -> None:
    """The event sequence of docs.anthropic.com/en/docs/build-with-claude/extended-thinking
    ("Streaming thinking"): a thinking block (thinking_delta, signature_delta), then the text."""
    from hedge.providers.sse import frame_event

    def ev(kind: str, **fields: Any) -> bytes:
        return frame_event(kind, {"type": kind, **fields})

    start = {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
             "content": [], "usage": {"input_tokens": 20, "output_tokens": 1}}  # fmt: skip
    events = [
        ev("message_start", message=start),
        ev("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
        ev("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "y" * 80}),
        ev("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "EqQB"}),
        ev("content_block_stop", index=0),
        ev("content_block_start", index=1, content_block={"type": "text", "text": ""}),
        ev("content_block_delta", index=1, delta={"type": "text_delta", "text": "Yes."}),
        ev("content_block_stop", index=1),
        ev("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 40}),
        ev("message_stop"),
    ]
    stream = make_adapter("c", ANTHROPIC).stream_translator("claude-sonnet-4-5", True)
    out = b"".join(chunk for e in events for chunk in stream.feed(e))
    assert b"yyyy" not in out, "thinking text is not shown as content"
    assert stream.usage_chunk is not None
    assert stream.usage_chunk["usage"]["completion_tokens_details"] == {"reasoning_tokens": 20}
