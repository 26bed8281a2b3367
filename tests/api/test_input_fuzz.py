"""Property: no client body, however malformed, makes the gateway answer 5xx.

A real ``hedge serve`` with an OpenAI-, an Anthropic- and a Gemini-style ``hedge mock``
behind it (one alias each) is sent valid requests that ``hypothesis`` mutates: any value
replaced by arbitrary JSON, a wrong-typed value nested anywhere, keys added and removed,
deep nesting, huge numbers, NUL characters. Bad input must be a 4xx in the endpoint's own
error shape, never a 5xx; and a body the OpenAI-style upstream served reached it with every
parameter untouched. The aliases also route by tags and prompt size, escalate and cache, so
everything that reads a body is exercised. The examples are derandomized and the database
is off, so a run is reproducible and takes seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import MASTER_KEY, Gateway, Mock, start_gateway

STYLES = {
    "oa": ("openai", "gpt-4o"),
    "an": ("anthropic", "claude-sonnet-4"),
    "ge": ("gemini", "gemini-2.5-flash"),
}
EMBED = {"oa": "text-embedding-3-small", "ge": "text-embedding-004"}
ENDPOINTS = {"chat": "/v1/chat/completions", "embeddings": "/v1/embeddings", "messages": "/v1/messages"}

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Stack:
    gateway: Gateway
    mocks: dict[str, Mock]


@pytest.fixture(scope="module")
def stack(style_mocks: dict[str, Mock], logs: Path) -> Iterator[Stack]:
    mocks = {style: style_mocks[style] for style, _ in STYLES.values()}
    providers = {
        style: {
            "style": style,
            "base_url": f"{mock.url}/v1" if style == "openai" else mock.url,
            "api_key": f"key-{style}",
            # A request the mock cannot answer fails the test quickly, as a 504, not by hanging.
            "timeout": {"connect": 2, "read": 10, "total": 15},
        }
        for style, mock in mocks.items()
    }
    models: dict[str, Any] = {
        alias: {"deployments": [{"provider": style, "model": model}]}
        for alias, (style, model) in STYLES.items()
    }
    for alias, model in EMBED.items():
        models[f"{alias}-embed"] = {"deployments": [{"provider": STYLES[alias][0], "model": model}]}
    # Everything else that reads the body: rules on tags and prompt size, the cost-aware strategy,
    # escalation's checks of the answer against the request, the response cache's key.
    models["oa"] |= {"escalate": {"to": "an"}, "rules": [{"when": {"tags": ["to-gemini"]}, "use": "ge"}]}
    models["an"] |= {"cache_ttl_s": 60, "strategy": "cheapest"}
    models["ge"] |= {"rules": [{"when": {"min_prompt_tokens": 10_000_000}, "use": "oa"}]}
    models["oa-embed"] |= {"rules": [{"when": {"min_prompt_tokens": 10_000_000}, "use": "ge-embed"}]}
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": providers,
        "models": models,
        # One attempt, and no breaker memory: every example is judged on its own.
        "resilience": {"max_attempts": 1, "breaker": {"failures": 1_000_000}},
    }
    gw = start_gateway(config, logs)
    yield Stack(gw, mocks)
    gw.stop()


@pytest.fixture(scope="module")
def http(stack: Stack) -> Iterator[httpx.Client]:
    """A client of the gateway, which has served every unmutated seed: the properties below then
    exercise the whole path to each style of upstream, not only the validators' 400s."""
    headers = {"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"}
    with httpx.Client(base_url=stack.gateway.url, headers=headers, timeout=30) as client:
        for endpoint, seeds in SEEDS.items():
            for seed in seeds:
                resp = client.post(ENDPOINTS[endpoint], content=json.dumps(seed).encode())
                assert resp.status_code == 200, (seed, resp.text)
        yield client


# -- valid seeds ---------------------------------------------------------------------------------------

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PNG = "data:image/png;base64,iVBORw0KGgo="


def chat_seeds(alias: str) -> list[dict[str, Any]]:
    return [
        {"model": alias, "messages": [{"role": "user", "content": "hi"}]},
        {
            "model": alias,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "what is this?"}]},
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG}}]},
            ],
            "max_tokens": 20,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": ["END"],
            "user": "u-1",
            "metadata": {"tags": ["batch", "to-gemini"]},
            "hedge": {"cache": False, "on_unsupported": "drop", "allow_fallbacks": True},
        },
        {
            "model": alias,
            "messages": [
                {"role": "user", "content": "weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
            "tools": [TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
            # Gemini cannot turn parallel calls off: it drops that, and says so.
            "hedge": {"on_unsupported": "drop"},
        },
        {
            "model": alias,
            "messages": [{"role": "user", "content": "a JSON object please"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "out", "schema": {"type": "object", "properties": {}}},
            },
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ]


def embeddings_seeds(alias: str) -> list[dict[str, Any]]:
    return [
        {"model": alias, "input": "hello world"},
        {"model": alias, "input": ["one", "two"], "dimensions": 8, "encoding_format": "base64"},
        {"model": alias, "input": [[1, 2, 3]] if alias == "oa-embed" else ["x"], "user": "u-1"},
    ]


def messages_seeds(alias: str) -> list[dict[str, Any]]:
    return [
        {"model": alias, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
        {
            "model": alias,
            "max_tokens": 20,
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                    ],
                }
            ],
            "stop_sequences": ["END"],
            "temperature": 0.5,
            "metadata": {"user_id": "u-1"},
            "stream": True,
        },
        {
            "model": alias,
            "max_tokens": 20,
            "system": "Use the tool.",
            "tools": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                }
            ],
            # Gemini cannot turn parallel calls off.
            "tool_choice": {
                "type": "tool",
                "name": "get_weather",
                "disable_parallel_tool_use": alias != "ge",
            },
            "messages": [
                {"role": "user", "content": "weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Checking."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "content": [{"type": "text", "text": "sunny"}],
                        }
                    ],
                },
            ],
        },
    ]


SEEDS = {
    "chat": [s for alias in STYLES for s in chat_seeds(alias)],
    "embeddings": [s for alias in EMBED for s in embeddings_seeds(f"{alias}-embed")],
    "messages": [s for alias in STYLES for s in messages_seeds(alias)],
}

# -- mutations -----------------------------------------------------------------------------------------

HUGE_NUMBERS = [
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63),
    -(2**63) - 1,
    10**30,
    -(10**30),
    1e308,
    -1e308,
    5e-324,
]
"""Past what fits in an int64 or a float; sent as JSON text exactly (the stdlib writes big ints)."""

KEYWORDS = [
    *("system", "developer", "user", "assistant", "tool", "function"),
    *("text", "image_url", "input_audio", "file", "refusal", "image", "tool_use", "tool_result"),
    *("json_object", "json_schema", "auto", "none", "required", "any", "base64", "url", "float"),
]
"""Values the gateway branches on: swapping one for another makes bodies that are wrong in depth."""
TEXT = st.one_of(
    st.sampled_from(["", "\x00", "a\x00b", "\ufeff", "\U0001f600", *KEYWORDS]),
    st.text(max_size=8),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=200),
    st.sampled_from(HUGE_NUMBERS),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(TEXT, st.sampled_from(["type", "text", "url", "name", "role"])), inner, max_size=3
        ),
    ),
    max_leaves=6,
)

Path_ = tuple[str | int, ...]


def paths(value: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every position in ``value`` (not the root itself)."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            yield from paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield (*prefix, i)
            yield from paths(child, (*prefix, i))


def containers(value: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every dict in ``value``, root included."""
    if isinstance(value, dict):
        yield prefix
        for key, child in value.items():
            yield from containers(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from containers(child, (*prefix, i))


def get(value: Any, path: Path_) -> Any:
    for step in path:
        value = value[step]
    return value


def replace(body: Any, path: Path_, new: Any) -> None:
    get(body, path[:-1])[path[-1]] = new


DEEP = "\u0001deep\u0001"
"""Stands for a deeply nested value until the body is written, so the stdlib never recurses into it."""


DEPTHS = [100, 200, 255, 300, 500, 1100, 5000]
"""Around orjson's limits: 254 levels when writing JSON, 1024 when reading it."""


def nested(depth: int, as_list: bool) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth if as_list else b'{"a":' * depth + b"1" + b"}" * depth


KNOWN_FIELDS = {
    "chat": {
        "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "n",
        "temperature", "top_p", "stop", "tools", "tool_choice", "parallel_tool_calls", "response_format",
        "user", "seed", "metadata", "hedge", "logprobs", "top_logprobs", "logit_bias", "presence_penalty",
        "frequency_penalty", "safety_identifier",
    },
    "embeddings": {"model", "input", "dimensions", "encoding_format", "user", "hedge", "metadata"},
    "messages": {
        "model", "messages", "max_tokens", "system", "stream", "stop_sequences", "temperature", "top_p",
        "top_k", "metadata", "tools", "tool_choice",
    },
}  # fmt: skip
"""Field names worth adding where they do not belong, besides random ones."""


MUTATIONS = ["replace"] * 4 + ["add", "retext", "deep"] * 2 + ["delete", "huge", "nul"]


@st.composite
def mutated(draw: st.DrawFn, endpoint: str) -> bytes:
    body = json.loads(json.dumps(draw(st.sampled_from(SEEDS[endpoint]))))
    deep = b"1"
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        kind = draw(st.sampled_from(MUTATIONS))
        spots = list(paths(body))
        if kind == "add" or not spots or (kind == "deep" and draw(st.booleans())):
            # A new key, known or not, at any level: unknown parameters are passed through upstream.
            where = draw(st.sampled_from(list(containers(body))))
            key = draw(st.one_of(st.sampled_from(sorted(KNOWN_FIELDS[endpoint])), TEXT))
            get(body, where)[key] = DEEP if kind == "deep" else draw(JSON_VALUES)
            if kind == "deep":
                deep = nested(draw(st.sampled_from(DEPTHS)), draw(st.booleans()))
            continue
        strings = [p for p in spots if isinstance(get(body, p), str)]
        numbers = [
            p for p in spots if isinstance(get(body, p), int | float) and not isinstance(get(body, p), bool)
        ]
        if kind in ("retext", "nul") and strings:
            spot = draw(st.sampled_from(strings))
        elif kind == "huge" and numbers:
            spot = draw(st.sampled_from(numbers))
        else:
            spot = draw(st.sampled_from(spots))
        if kind == "replace":
            replace(body, spot, draw(JSON_VALUES))
        elif kind == "retext":
            replace(body, spot, draw(TEXT))
        elif kind == "delete":
            parent = get(body, spot[:-1])
            del parent[spot[-1]]
        elif kind == "deep":
            replace(body, spot, DEEP)
            deep = nested(draw(st.sampled_from(DEPTHS)), draw(st.booleans()))
        elif kind == "huge":
            replace(body, spot, draw(st.sampled_from(HUGE_NUMBERS)))
        else:
            value = get(body, spot)
            at = draw(st.integers(min_value=0, max_value=len(value))) if isinstance(value, str) else 0
            replace(body, spot, value[:at] + "\x00" + value[at:] if isinstance(value, str) else "\x00")
    raw = json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass")
    return raw.replace(json.dumps(DEEP).encode(), deep)


REWRITTEN = {"model", "hedge", "stream_options"}
"""What the gateway changes in a body for an OpenAI-style upstream: the model, its own extension, and
``stream_options.include_usage`` (forced on so a stream can be priced)."""


def check(http: httpx.Client, endpoint: str, raw: bytes, openai: Mock | None = None) -> None:
    resp = http.post(ENDPOINTS[endpoint], content=raw)
    assert resp.status_code < 500, f"{resp.status_code} for {raw[:2000]!r}:\n{resp.text[:1000]}"
    if resp.status_code >= 400:
        error = resp.json()
        if endpoint == "messages":
            assert error["type"] == "error" and isinstance(error["error"]["message"], str), error
        else:
            assert set(error["error"]) == {"message", "type", "param", "code"}, error
    elif openai is not None and resp.headers.get("x-hedge-provider") == "openai":
        # Served by the OpenAI-style upstream: every parameter, known or not, arrived as it was sent.
        body, sent = orjson.loads(raw), openai.stats()["last_body"]
        assert {k: v for k, v in sent.items() if k not in REWRITTEN} == {
            k: v for k, v in body.items() if k not in REWRITTEN
        }


@SETTINGS
@given(raw=mutated("chat"))
def test_chat_completions_never_5xx(http: httpx.Client, stack: Stack, raw: bytes) -> None:
    check(http, "chat", raw, stack.mocks["openai"])


@SETTINGS
@given(raw=mutated("embeddings"))
def test_embeddings_never_5xx(http: httpx.Client, stack: Stack, raw: bytes) -> None:
    check(http, "embeddings", raw, stack.mocks["openai"])


@SETTINGS
@given(raw=mutated("messages"))
def test_messages_never_5xx(http: httpx.Client, raw: bytes) -> None:
    check(http, "messages", raw)
