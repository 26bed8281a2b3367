"""``hedge mock`` cannot be made to exhaust the machine, in any style.

Real ``hedge mock`` processes get hostile values: counts and sizes up to 2**63-1,
huge echoes, schemas asking for 10**12 items or nested hundreds of levels deep,
the largest embeddings request OpenAI accepts. Where the real API rejects the
value, the mock must answer the real API's status, error shape and message;
otherwise it answers a clamped reply. Either way the mock process stays small:
its peak resident memory (``VmHWM`` in ``/proc/<pid>/status``) is checked after
the requests against a generous bound. Each mock also runs under an address-space
limit, so a regression fails these tests with a ``MemoryError`` instead of
taking the machine down.
"""

from __future__ import annotations

import json
import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from conftest import Mock, start_mock

RSS_BOUND_MB = 300
"""Generous: an idle mock holds about 60 MB; the hostile requests below would need gigabytes unbounded."""
ADDRESS_SPACE_LIMIT = 2 << 30
ECHO_CHARS = 8192
"""The most of the user's message a reply echoes (README: the mock upstream)."""
ARGUMENT_CHARS = 16384
"""About the most JSON a reply builds from schemas, all its tool calls together."""
TIMEOUT = httpx.Timeout(60.0)
"""Only proves a request did not hang: each answers in well under a second."""
OPENAI_HEADERS = {"authorization": "Bearer sk-test"}
ANTHROPIC_HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
GEMINI_HEADERS = {"x-goog-api-key": "g"}
HUGE = 2**63 - 1


def _start(style: str, logs: Path) -> Mock:
    mock = start_mock(style, logs)
    resource.prlimit(mock.proc.pid, resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    return mock


@pytest.fixture(scope="module")
def openai_mock(logs: Path) -> Iterator[Mock]:
    mock = _start("openai", logs)
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def anthropic_mock(logs: Path) -> Iterator[Mock]:
    mock = _start("anthropic", logs)
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def gemini_mock(logs: Path) -> Iterator[Mock]:
    mock = _start("gemini", logs)
    yield mock
    mock.stop()


def memory_mb(mock: Mock) -> dict[str, float]:
    """The mock's current (VmRSS) and peak (VmHWM) resident memory, in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{mock.proc.pid}/status").read_text().splitlines()
    )
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


def assert_small(mock: Mock) -> None:
    assert mock.proc.poll() is None, "the mock died"
    used = memory_mb(mock)
    assert used["VmHWM"] < RSS_BOUND_MB, used
    assert used["VmRSS"] < RSS_BOUND_MB, used


def post(mock: Mock, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    content_type = {"content-type": "application/json"}
    return httpx.post(f"{mock.url}{path}", content=raw, headers={**headers, **content_type}, timeout=TIMEOUT)


def mismatches(cases: list[tuple[str, httpx.Response, int, dict[str, Any]]]) -> list[str]:
    """Each case whose status or error fields differ from what the real API answers."""
    wrong = []
    for label, resp, status, expected in cases:
        try:
            error = resp.json()["error"]
        except (ValueError, KeyError, TypeError):
            wrong.append(f"{label}: {resp.status_code} {resp.text[:200]}")
            continue
        got = {key: error.get(key) for key in expected}
        if resp.status_code != status or got != expected:
            wrong.append(f"{label}: {resp.status_code} {got}, expected {status} {expected}")
    return wrong


# -- hostile schemas ----------------------------------------------------------------------------------


def nested_schema(depth: int) -> dict[str, Any]:
    """An object schema nested ``depth`` levels deep (two JSON levels each)."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    return schema


ENDLESS_ARRAY = {
    "type": "object",
    "properties": {"xs": {"type": "array", "minItems": 10**12, "items": {"type": "string"}}},
}
WIDE = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(5000)}}
HOSTILE_SCHEMAS = {"endless": ENDLESS_ARRAY, "deep": nested_schema(400), "wide": WIDE}
LONG_TEXT = "word " * 200_000
"""A million characters: every echo of it must be cut."""


def check_arguments(args: Any) -> None:
    assert isinstance(args, dict)
    assert len(json.dumps(args)) < 2 * ARGUMENT_CHARS, len(json.dumps(args))


# -- OpenAI -------------------------------------------------------------------------------------------


def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **extra}


def _embed(**extra: Any) -> dict[str, Any]:
    return {"model": "text-embedding-3-small", "input": "hello", **extra}


def _invalid(param: str | None, code: str | None, message: str | None = None) -> dict[str, Any]:
    out = {"type": "invalid_request_error", "param": param, "code": code}
    return out if message is None else {**out, "message": message}


def _above(param: str, high: int, got: int) -> dict[str, Any]:
    message = (
        f"Invalid '{param}': integer above maximum value. Expected a value <= {high}, but got {got} instead."
    )
    return _invalid(param, "integer_above_max_value", message)


def _below(param: str, low: int, got: int) -> dict[str, Any]:
    message = (
        f"Invalid '{param}': integer below minimum value. Expected a value >= {low}, but got {got} instead."
    )
    return _invalid(param, "integer_below_min_value", message)


def _too_long(param: str, high: int, got: int) -> dict[str, Any]:
    message = (
        f"Invalid '{param}': array too long. Expected an array with maximum length {high}, "
        f"but got an array with length {got} instead."
    )
    return _invalid(param, "array_above_max_length", message)


INVALID_INPUT = (
    "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
)
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

OPENAI_REJECTS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("n huge", "chat", _chat(n=HUGE), _above("n", 128, HUGE)),
    ("n 129", "chat", _chat(n=129), _above("n", 128, 129)),
    ("n 0", "chat", _chat(n=0), _below("n", 1, 0)),
    ("n decimal", "chat", _chat(n=1.5), _invalid("n", "invalid_type")),
    ("max_tokens 0", "chat", _chat(max_tokens=0), _below("max_tokens", 1, 0)),
    ("max_tokens decimal", "chat", _chat(max_tokens=1.5), _invalid("max_tokens", "invalid_type")),
    ("max_tokens string", "chat", _chat(max_tokens="9"), _invalid("max_tokens", "invalid_type")),
    ("max_completion_tokens bool", "chat", _chat(max_completion_tokens=True),
     _invalid("max_completion_tokens", "invalid_type")),
    ("5 stops", "chat", _chat(stop=list("abcde")), _too_long("stop", 4, 5)),
    ("129 tools", "chat", _chat(tools=[TOOL] * 129), _too_long("tools", 128, 129)),
    ("long function name", "chat", _chat(tools=[{"type": "function", "function": {"name": "f" * 65}}]),
     _invalid("tools[0].function.name", "string_above_max_length")),
    ("message not an object", "chat", _chat(messages=["hi"]), _invalid("messages[0]", "invalid_type")),
    ("content over 10 MiB", "chat", _chat(messages=[{"role": "user", "content": "x" * 10_485_761}]),
     _invalid("messages[0].content", "string_above_max_length")),
    ("dimensions huge", "embed", _embed(dimensions=HUGE), _above("dimensions", 1536, HUGE)),
    ("dimensions 0", "embed", _embed(dimensions=0), _below("dimensions", 1, 0)),
    ("dimensions past small", "embed", _embed(dimensions=1537), _above("dimensions", 1536, 1537)),
    ("dimensions past large", "embed", _embed(model="text-embedding-3-large", dimensions=3073),
     _above("dimensions", 3072, 3073)),
    ("dimensions past any model", "embed", _embed(model="my-embedder", dimensions=3073),
     _above("dimensions", 3072, 3073)),
    ("dimensions on ada", "embed", _embed(model="text-embedding-ada-002", dimensions=8),
     _invalid(None, None, "This model does not support specifying dimensions.")),
    ("dimensions decimal", "embed", _embed(dimensions=8.5), _invalid("dimensions", "invalid_type")),
    ("dimensions string", "embed", _embed(dimensions="8"), _invalid("dimensions", "invalid_type")),
    ("2049 inputs", "embed", _embed(input=["a"] * 2049), _too_long("input", 2048, 2049)),
    ("no inputs", "embed", _embed(input=[]), _invalid(None, None, INVALID_INPUT)),
    ("empty input", "embed", _embed(input=""), _invalid(None, None, INVALID_INPUT)),
    ("input an object", "embed", _embed(input={"a": 1}), _invalid(None, None, INVALID_INPUT)),
    ("input over 8192 tokens", "embed", _embed(input=["ok", "w " * 8193]),
     _invalid("input", None, "Invalid 'input[1]': maximum input length is 8192 tokens.")),
    ("token array over 8192", "embed", _embed(input=[1] * 8193),
     _invalid("input", None, "Invalid 'input[0]': maximum input length is 8192 tokens.")),
    ("over 300,000 tokens", "embed", _embed(input=["w " * 8000] * 38), {
        "message": "Requested 304000 tokens, max 300000 tokens per request",
        "type": "max_tokens_per_request", "param": None, "code": "max_tokens_per_request",
    }),
]  # fmt: skip


def test_openai_rejects_what_openai_rejects(openai_mock: Mock) -> None:
    paths = {"chat": "/v1/chat/completions", "embed": "/v1/embeddings"}
    cases = [
        (label, post(openai_mock, paths[kind], body, OPENAI_HEADERS), 400, expected)
        for label, kind, body, expected in OPENAI_REJECTS
    ]
    assert mismatches(cases) == []
    assert_small(openai_mock)


def test_openai_clamps_what_openai_accepts(openai_mock: Mock) -> None:
    # A million-character message asked for 128 times, no output limit: each choice echoes a bounded part.
    echo = post(
        openai_mock,
        "/v1/chat/completions",
        _chat(messages=[{"role": "user", "content": LONG_TEXT}], n=128, max_tokens=HUGE),
        OPENAI_HEADERS,
    )
    assert echo.status_code == 200, echo.text[:500]
    choices = echo.json()["choices"]
    assert len(choices) == 128
    assert all(len(c["message"]["content"]) <= ECHO_CHARS + 100 for c in choices)
    assert choices[0]["message"]["content"].startswith("gpt-4o says: word word")

    streamed = post(
        openai_mock,
        "/v1/chat/completions",
        _chat(messages=[{"role": "user", "content": LONG_TEXT}], n=8, stream=True),
        OPENAI_HEADERS,
    )
    assert streamed.status_code == 200
    assert streamed.text.endswith("data: [DONE]\n\n")
    assert len(streamed.content) < 8 * 2 * ECHO_CHARS * 200  # a bounded number of small chunks

    for name, schema in HOSTILE_SCHEMAS.items():
        tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
        resp = post(
            openai_mock,
            "/v1/chat/completions",
            _chat(messages=[{"role": "user", "content": LONG_TEXT}], tools=tools, n=128),
            OPENAI_HEADERS,
        )
        assert resp.status_code == 200, (name, resp.text[:500])
        call = resp.json()["choices"][0]["message"]["tool_calls"][0]
        check_arguments(json.loads(call["function"]["arguments"]))
        fmt = {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}
        structured = post(openai_mock, "/v1/chat/completions", _chat(response_format=fmt), OPENAI_HEADERS)
        assert structured.status_code == 200, (name, structured.text[:500])
        check_arguments(json.loads(structured.json()["choices"][0]["message"]["content"]))

    # A body nested past what orjson writes back (it reads 1024 levels, writes 255) is still answered.
    deep = (
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"metadata":' + b"[" * 600 + b"]" * 600
    )
    resp = post(openai_mock, "/v1/chat/completions", deep + b"}", OPENAI_HEADERS)
    assert resp.status_code == 200, resp.text[:500]
    assert httpx.get(f"{openai_mock.url}/_mock/stats", timeout=TIMEOUT).status_code == 200
    assert_small(openai_mock)


def test_openai_largest_embeddings_request_stays_small(openai_mock: Mock) -> None:
    """2048 inputs of 3072 dimensions, what OpenAI accepts at most, come back whole as floats."""
    body = {
        "model": "text-embedding-3-large",
        "input": [f"text {i}" for i in range(2048)],
        "dimensions": 3072,
    }
    resp = post(openai_mock, "/v1/embeddings", body, OPENAI_HEADERS)
    assert resp.status_code == 200, resp.text[:500]
    data = orjson.loads(resp.content)
    assert [d["index"] for d in data["data"]] == list(range(2048))
    assert {len(d["embedding"]) for d in data["data"]} == {3072}
    assert data["usage"] == {"prompt_tokens": 4096, "total_tokens": 4096}
    assert data["data"][0]["embedding"] != data["data"][1]["embedding"]
    del data, resp
    assert_small(openai_mock)


# -- Anthropic ----------------------------------------------------------------------------------------


def _message(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-test",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def _anthropic_invalid(message: str) -> dict[str, Any]:
    return {"type": "invalid_request_error", "message": message}


NAME_RULE = "String should match pattern '^[a-zA-Z0-9_-]{1,128}$'"
NOT_AN_INTEGER = "max_tokens: Input should be a valid integer"
ANTHROPIC_REJECTS: list[tuple[str, dict[str, Any], int, dict[str, Any]]] = [
    ("max_tokens missing", {k: v for k, v in _message().items() if k != "max_tokens"}, 400,
     _anthropic_invalid("max_tokens: Field required")),
    ("max_tokens 0", _message(max_tokens=0), 400,
     _anthropic_invalid("max_tokens: Input should be greater than or equal to 1")),
    ("max_tokens decimal", _message(max_tokens=1.5), 400, _anthropic_invalid(NOT_AN_INTEGER)),
    ("max_tokens string", _message(max_tokens="9"), 400, _anthropic_invalid(NOT_AN_INTEGER)),
    ("long tool name", _message(tools=[{"name": "t" * 129, "input_schema": {"type": "object"}}]), 400,
     _anthropic_invalid(f"tools.0.custom.name: {NAME_RULE}")),
    ("empty tool name", _message(tools=[{"name": "", "input_schema": {"type": "object"}}]), 400,
     _anthropic_invalid(f"tools.0.custom.name: {NAME_RULE}")),
    ("model name past any model", _message(model="claude-" + "x" * 10_000), 404, {"type": "not_found_error"}),
]  # fmt: skip


def test_anthropic_rejects_what_anthropic_rejects(anthropic_mock: Mock) -> None:
    cases = [
        (label, post(anthropic_mock, "/v1/messages", body, ANTHROPIC_HEADERS), status, expected)
        for label, body, status, expected in ANTHROPIC_REJECTS
    ]
    assert mismatches(cases) == []
    assert_small(anthropic_mock)


def test_anthropic_clamps_what_anthropic_accepts(anthropic_mock: Mock) -> None:
    long = _message(max_tokens=HUGE, messages=[{"role": "user", "content": LONG_TEXT}])
    resp = post(anthropic_mock, "/v1/messages", long, ANTHROPIC_HEADERS)
    assert resp.status_code == 200, resp.text[:500]
    text = resp.json()["content"][0]["text"]
    assert text.startswith("claude-test says: word word") and len(text) <= ECHO_CHARS + 100
    streamed = post(anthropic_mock, "/v1/messages", {**long, "stream": True}, ANTHROPIC_HEADERS)
    assert streamed.status_code == 200 and "event: message_stop" in streamed.text
    assert len(streamed.content) < 200 * ECHO_CHARS

    for name, schema in HOSTILE_SCHEMAS.items():
        body = _message(
            max_tokens=HUGE,
            tools=[{"name": "f", "input_schema": schema}],
            messages=[{"role": "user", "content": LONG_TEXT}],
        )
        resp = post(anthropic_mock, "/v1/messages", body, ANTHROPIC_HEADERS)
        assert resp.status_code == 200, (name, resp.text[:500])
        (block,) = resp.json()["content"]
        assert block["type"] == "tool_use"
        check_arguments(block["input"])
        streamed = post(anthropic_mock, "/v1/messages", {**body, "stream": True}, ANTHROPIC_HEADERS)
        assert streamed.status_code == 200 and "event: message_stop" in streamed.text, name

    deep = json.dumps(_message()).encode()[:-1] + b',"metadata":' + b"[" * 600 + b"]" * 600 + b"}"
    resp = post(anthropic_mock, "/v1/messages", deep, ANTHROPIC_HEADERS)
    assert resp.status_code == 200, resp.text[:500]
    assert httpx.get(f"{anthropic_mock.url}/_mock/stats", timeout=TIMEOUT).status_code == 200
    assert_small(anthropic_mock)


# -- Gemini -------------------------------------------------------------------------------------------


def _generate(**config: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": config}


def _gemini_invalid(message: str) -> dict[str, Any]:
    return {"code": 400, "status": "INVALID_ARGUMENT", "message": message}


def _int32(path: str, shown: str) -> dict[str, Any]:
    return _gemini_invalid(f"Invalid value at '{path}' (TYPE_INT32), {shown}")


GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
BATCH = "/v1beta/models/text-embedding-004:batchEmbedContents"
EMBED = "/v1beta/models/{model}:embedContent"


def _embed_request(dims: Any, model: str = "text-embedding-004") -> dict[str, Any]:
    return {"model": f"models/{model}", "content": {"parts": [{"text": "hi"}]}, "outputDimensionality": dims}


FUNCTION_NAME_RULE = (
    "Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), "
    "underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64."
)
LONG_NAMED = {"name": "f" * 65}
FIRST_FUNCTION = "GenerateContentRequest.tools[0].function_declarations[0]"
GEMINI_REJECTS: list[tuple[str, str, dict[str, Any], int, dict[str, Any]]] = [
    ("candidateCount 9", GENERATE, _generate(candidateCount=9), 400,
     _gemini_invalid("* GenerateContentRequest.generation_config.candidate_count: 9 is out of range\n")),
    ("candidateCount huge", GENERATE, _generate(candidateCount=HUGE), 400,
     _int32("generation_config.candidate_count", str(HUGE))),
    ("candidateCount decimal", GENERATE, _generate(candidateCount=1.5), 400,
     _int32("generation_config.candidate_count", "1.5")),
    ("maxOutputTokens 0", GENERATE, _generate(maxOutputTokens=0), 400,
     _gemini_invalid("* GenerateContentRequest.generation_config.max_output_tokens: 0 is out of range\n")),
    ("maxOutputTokens decimal", GENERATE, _generate(maxOutputTokens=2.5), 400,
     _int32("generation_config.max_output_tokens", "2.5")),
    ("maxOutputTokens past int32", GENERATE, _generate(maxOutputTokens=2**31), 400,
     _int32("generation_config.max_output_tokens", str(2**31))),
    ("maxOutputTokens word", GENERATE, _generate(max_output_tokens="many"), 400,
     _int32("generation_config.max_output_tokens", '"many"')),
    ("long function name", GENERATE, {**_generate(), "tools": [{"functionDeclarations": [LONG_NAMED]}]}, 400,
     _gemini_invalid(f"* {FIRST_FUNCTION}.name: {FUNCTION_NAME_RULE}\n")),
    ("101 embeddings", BATCH, {"requests": [_embed_request(8)] * 101}, 400,
     _gemini_invalid("* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n")),
    ("dimensions huge", EMBED.format(model="text-embedding-004"), _embed_request(HUGE), 400,
     _int32("output_dimensionality", str(HUGE))),
    ("dimensions past the model", EMBED.format(model="text-embedding-004"), _embed_request(769), 400,
     _gemini_invalid("* EmbedContentRequest.output_dimensionality: 769 is out of range\n")),
    ("dimensions past any model", EMBED.format(model="my-embedder"), _embed_request(3073, "my-embedder"), 400,
     _gemini_invalid("* EmbedContentRequest.output_dimensionality: 3073 is out of range\n")),
    ("dimensions 0 in a batch", BATCH, {"requests": [_embed_request(8), _embed_request(0)]}, 400,
     _gemini_invalid("* BatchEmbedContentsRequest.requests[1].output_dimensionality: 0 is out of range\n")),
    ("model name past any model", "/v1beta/models/" + "g" * 2000 + ":generateContent", _generate(), 404,
     {"code": 404, "status": "NOT_FOUND"}),
]  # fmt: skip


def test_gemini_rejects_what_gemini_rejects(gemini_mock: Mock) -> None:
    cases = [
        (label, post(gemini_mock, path, body, GEMINI_HEADERS), status, expected)
        for label, path, body, status, expected in GEMINI_REJECTS
    ]
    assert mismatches(cases) == []
    assert_small(gemini_mock)


def test_gemini_clamps_what_gemini_accepts(gemini_mock: Mock) -> None:
    long = {
        "contents": [{"role": "user", "parts": [{"text": LONG_TEXT}]}],
        "generationConfig": {"candidateCount": 8, "maxOutputTokens": 2**31 - 1},
    }
    resp = post(gemini_mock, GENERATE, long, GEMINI_HEADERS)
    assert resp.status_code == 200, resp.text[:500]
    candidates = resp.json()["candidates"]
    assert len(candidates) == 8
    text = candidates[0]["content"]["parts"][0]["text"]
    assert text.startswith("gemini-2.5-flash says: word word") and len(text) <= ECHO_CHARS + 100
    streamed = post(
        gemini_mock,
        GENERATE.replace("generateContent", "streamGenerateContent?alt=sse"),
        long,
        GEMINI_HEADERS,
    )
    assert streamed.status_code == 200 and len(streamed.content) < 8 * 300 * ECHO_CHARS

    for name, schema in HOSTILE_SCHEMAS.items():
        body = {
            "contents": [{"role": "user", "parts": [{"text": LONG_TEXT}]}],
            "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": schema}]}],
            "generationConfig": {"candidateCount": 8},
        }
        resp = post(gemini_mock, GENERATE, body, GEMINI_HEADERS)
        assert resp.status_code == 200, (name, resp.text[:500])
        check_arguments(resp.json()["candidates"][0]["content"]["parts"][0]["functionCall"]["args"])
        structured = post(
            gemini_mock,
            GENERATE,
            _generate(responseMimeType="application/json", responseJsonSchema=schema),
            GEMINI_HEADERS,
        )
        assert structured.status_code == 200, (name, structured.text[:500])
        check_arguments(json.loads(structured.json()["candidates"][0]["content"]["parts"][0]["text"]))

    batch = {"requests": [_embed_request(768) for _ in range(100)]}
    resp = post(gemini_mock, BATCH, batch, GEMINI_HEADERS)
    assert resp.status_code == 200 and {len(e["values"]) for e in resp.json()["embeddings"]} == {768}
    assert_small(gemini_mock)


# -- every style --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "path", "headers", "status", "expected"),
    [
        ("openai", "/v1/chat/completions", OPENAI_HEADERS, 413, {"type": "invalid_request_error"}),
        ("anthropic", "/v1/messages", ANTHROPIC_HEADERS, 413, {"type": "request_too_large"}),
        ("gemini", GENERATE, GEMINI_HEADERS, 400,
         _gemini_invalid("Request payload size exceeds the limit: 100000 bytes.")),
    ],
)  # fmt: skip
def test_a_body_over_the_limit_is_refused(
    style: str,
    path: str,
    headers: dict[str, str],
    status: int,
    expected: dict[str, Any],
    request: pytest.FixtureRequest,
) -> None:
    mock: Mock = request.getfixturevalue(f"{style}_mock")
    changed = mock.configure(max_body_bytes=100_000)
    try:
        before = mock.stats()["requests"]
        big = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 150_000}]}
        assert mismatches([(style, post(mock, path, big, headers), status, expected)]) == []
        small = {**big, "messages": [{"role": "user", "content": "hi"}], "contents": _generate()["contents"]}
        assert post(mock, path, small, headers).status_code == 200
        assert mock.stats()["requests"] == before + 2  # the refused request is counted too
    finally:
        mock.configure(max_body_bytes=32 * 1024 * 1024)
    assert changed["knobs"]["max_body_bytes"] == 100_000
    assert_small(mock)


WRONG_TYPES: list[Any] = [None, True, 1.5, "x", [1], {"a": 1}]
"""Put in place of each value of a valid body in turn: a wrong type is a 4xx (or ignored), never a 5xx."""
STREAM = GENERATE.replace("generateContent", "streamGenerateContent?alt=sse")
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
VALID: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "openai": [
        ("/v1/chat/completions", _chat(
            tools=[{"type": "function", "function": {"name": "f", "parameters": SCHEMA}}],
            tool_choice={"type": "function", "function": {"name": "f"}},
            stop=["x"], n=2, max_tokens=5, stream_options={"include_usage": True},
            response_format={"type": "json_schema", "json_schema": {"name": "o", "schema": SCHEMA}},
        )),
        ("/v1/embeddings", _embed(input=["a", "b"], dimensions=8, encoding_format="float")),
    ],
    "anthropic": [
        ("/v1/messages", _message(
            messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            system=[{"type": "text", "text": "Be brief."}],
            tools=[{"name": "f", "input_schema": SCHEMA}],
            tool_choice={"type": "tool", "name": "f"},
            stop_sequences=["x"],
        )),
        ("/v1/messages/count_tokens", {
            k: v for k, v in _message(system="s", tools=[{"name": "f", "input_schema": SCHEMA}]).items()
            if k != "max_tokens"  # refused by the token counting API
        }),
    ],
    "gemini": [
        (GENERATE, {
            **_generate(stopSequences=["x"], candidateCount=2, responseMimeType="application/json",
                        responseSchema={"type": "OBJECT"}),
            "systemInstruction": {"parts": [{"text": "s"}]},
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
        }),
        (STREAM, _generate(maxOutputTokens=3)),
        (BATCH, {"requests": [_embed_request(8)]}),
    ],
}  # fmt: skip
HEADERS = {"openai": OPENAI_HEADERS, "anthropic": ANTHROPIC_HEADERS, "gemini": GEMINI_HEADERS}


def positions(value: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """The path of every value inside ``value`` (not the root)."""
    children = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    )
    for key, child in children:
        yield (*prefix, key)
        yield from positions(child, (*prefix, key))


def replaced(body: dict[str, Any], path: tuple[str | int, ...], new: Any) -> dict[str, Any]:
    out: Any = json.loads(json.dumps(body))
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = new
    result: dict[str, Any] = out
    return result


@pytest.mark.parametrize("style", list(VALID))
def test_a_wrong_typed_value_is_never_a_5xx(style: str, request: pytest.FixtureRequest) -> None:
    mock: Mock = request.getfixturevalue(f"{style}_mock")
    failures = []
    headers = {**HEADERS[style], "content-type": "application/json"}
    with httpx.Client(base_url=mock.url, headers=headers, timeout=TIMEOUT) as client:
        for path, body in VALID[style]:
            assert client.post(path, content=json.dumps(body).encode()).status_code == 200, path
            for where in positions(body):
                for value in WRONG_TYPES:
                    try:
                        resp = client.post(path, content=json.dumps(replaced(body, where, value)).encode())
                    except httpx.TransportError as exc:  # an exception in the mock can cut the connection
                        failures.append(f"{path} {where}={value!r}: {exc!r}")
                        continue
                    if resp.status_code >= 500:
                        failures.append(f"{path} {where}={value!r}: {resp.status_code}")
    assert failures == []
    assert_small(mock)
