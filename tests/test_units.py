"""Table-driven tests of pure pieces: SSE, routing strategies, pricing, retry-after, mock behaviour."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from hedge.config import Price, ProviderConfig, Timeouts
from hedge.cost.pricing import cost_usd
from hedge.mock.behaviour import Tool, Turn, example_from_schema, plan_reply
from hedge.providers.base import Usage
from hedge.providers.errors import parse_retry_after, upstream_error
from hedge.providers.openai import OpenAIAdapter, OpenAIStream
from hedge.providers.sse import SSEParser
from hedge.routing.context import RouteContext
from hedge.routing.deployment import Deployment
from hedge.routing.strategies import Ordered, Weighted

STREAM = (
    b'data: {"id":"1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}],"usage":null}\n\n'
    b'data: {"id":"1","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'
    b'data: {"id":"1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n'
    b'data: {"id":"1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\n'
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 50, len(STREAM)])
def test_sse_parser_is_split_independent(size: int) -> None:
    parser = SSEParser()
    events = []
    for i in range(0, len(STREAM), size):
        events.extend(parser.feed(STREAM[i : i + size]))
    events.extend(parser.close())
    assert [e.data[:8] for e in events] == [b'{"id":"1'] * 4 + [b"[DONE]"]
    assert b"".join(e.raw for e in events) == STREAM


def test_sse_parser_handles_crlf_named_events_and_comments() -> None:
    parser = SSEParser()
    events = parser.feed(b': ping\r\n\r\nevent: message_start\r\ndata: {"a":1}\r')
    events += parser.feed(b"\n\r\ndata: x\n")
    events += parser.close()
    assert [(e.event, e.data) for e in events] == [(b"message_start", b'{"a":1}'), (None, b"x")]


@pytest.mark.parametrize("want_usage", [True, False])
def test_openai_stream_captures_usage_and_hides_it_when_unasked(want_usage: bool) -> None:
    stream = OpenAIStream("p", want_usage)
    out = b"".join(stream.feed(STREAM[:100]) + stream.feed(STREAM[100:]) + stream.close())
    assert stream.finished
    assert stream.usage == Usage(prompt_tokens=3, completion_tokens=1)
    assert stream.usage_chunk is not None and stream.usage_chunk["choices"] == []
    assert b"[DONE]" not in out, "the gateway ends the stream itself"
    assert (b'"usage"' in out) is want_usage
    assert out.count(b"data: ") == 3


def test_openai_request_translation_does_not_mutate_body() -> None:
    adapter = OpenAIAdapter("p", ProviderConfig(style="openai", base_url="http://x/v1", api_key="k"))
    body = {
        "model": "alias",
        "messages": [],
        "stream": True,
        "stream_options": {"x": 1},
        "hedge": {},
        "top_k": 2,
    }
    snapshot = orjson.dumps(body)
    req = adapter.chat_request(body, "up-model", True, False)
    sent = orjson.loads(req.body)
    assert orjson.dumps(body) == snapshot
    assert sent["model"] == "up-model" and sent["top_k"] == 2 and "hedge" not in sent
    assert sent["stream_options"] == {"x": 1, "include_usage": True}
    assert req.headers["authorization"] == "Bearer k"
    assert req.url == "http://x/v1/chat/completions"


CTX = RouteContext({})


def _deps(weights: list[float]) -> list[Deployment]:
    cfg = ProviderConfig(style="openai", base_url="http://x")
    adapter = OpenAIAdapter("p", cfg)
    return [Deployment(f"p{i}", f"m{i}", adapter, Price(), w, Timeouts()) for i, w in enumerate(weights)]


@pytest.mark.parametrize(
    ("weights", "rounds", "expected"),
    [
        ([80, 20], 100, [80, 20]),
        ([1, 1, 1], 30, [10, 10, 10]),
        ([5, 0, 1], 60, [50, 0, 10]),
        ([0.7, 0.3], 10, [7, 3]),
    ],
)
def test_weighted_round_robin_is_exact(weights: list[float], rounds: int, expected: list[int]) -> None:
    deps = _deps(weights)
    strategy = Weighted(deps)
    firsts: Counter[str] = Counter(strategy.order(CTX)[0].provider for _ in range(rounds))
    assert [firsts[d.provider] for d in deps] == expected


def test_weighted_interleaves_and_lists_fallbacks() -> None:
    deps = _deps([80, 20])
    strategy = Weighted(deps)
    picks = [strategy.order(CTX) for _ in range(5)]
    assert [p[0].provider for p in picks].count("p1") == 1
    assert all({d.provider for d in p} == {"p0", "p1"} and len(p) == 2 for p in picks)
    assert [d.provider for d in Ordered(deps).order(CTX)] == ["p0", "p1"]


@pytest.mark.parametrize(
    ("usage", "price", "expected"),
    [
        (Usage(1_000_000, 0), Price(input=2.5, output=10), 2.5),
        (Usage(0, 1_000_000), Price(input=2.5, output=10), 10.0),
        (Usage(1000, 500), Price(input=0.35, output=0.40), (1000 * 0.35 + 500 * 0.40) / 1e6),
        (Usage(1000, 0, cached_tokens=400), Price(input=1, output=0, cached_input=0.1), (600 + 40) / 1e6),
        (Usage(1000, 0, cached_tokens=400), Price(input=1, output=0), 1000 / 1e6),
        (None, Price(input=1, output=1), 0.0),
    ],
)
def test_cost(usage: Usage | None, price: Price, expected: float) -> None:
    assert cost_usd(usage, price) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


@pytest.mark.parametrize(
    ("status", "client_status", "retryable"),
    [
        (400, 400, False),
        (413, 413, False),
        (401, 502, True),
        (429, 429, True),
        (500, 502, True),
        (503, 503, True),
        (529, 503, True),
        (504, 504, True),
        (404, 502, True),
    ],
)
def test_upstream_error_policy(status: int, client_status: int, retryable: bool) -> None:
    err = upstream_error("prov", status, {}, "boom")
    assert (err.status, err.retryable, err.upstream_status) == (client_status, retryable, status)


def test_mock_plan_echo_stop_length_and_tools() -> None:
    turns = [Turn("system", "be brief"), Turn("user", "alpha beta gamma")]
    assert plan_reply("m", turns).text == "m says: alpha beta gamma"
    cut = plan_reply("m", turns, stop=["gamma", "beta"])
    assert (cut.text, cut.finish, cut.matched_stop) == ("m says: alpha ", "stop", "beta")
    short = plan_reply("m", turns, max_tokens=2)
    assert (short.text, short.finish, short.completion_tokens) == ("m says: ", "length", 2)
    tools = [Tool("lookup", {"type": "object", "properties": {"q": {"type": "string"}}}), Tool("gamma", {})]
    called = plan_reply("m", turns, tools=tools)
    assert called.finish == "tool_calls" and [c.name for c in called.tool_calls] == ["gamma"]
    forced = plan_reply("m", turns, tools=tools, tool_choice="lookup")
    assert forced.tool_calls[0].arguments == {"q": "alpha beta gamma"}
    answered = plan_reply("m", [*turns, Turn("assistant", ""), Turn("tool", "42")], tools=tools)
    assert answered.text == "m says: the tool returned 42" and answered.finish == "stop"
    assert orjson.loads(plan_reply("m", turns, json_mode=True).text) == {
        "model": "m",
        "echo": "alpha beta gamma",
    }


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "integer", "minimum": 3}, 3),
        ({"type": "string", "enum": ["c", "f"]}, "c"),
        ({"type": "array", "items": {"type": "boolean"}}, [True]),
        ({"type": ["null", "number"]}, 1.5),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "string", "maxLength": 2}},
            },
            {"a": 1, "b": "te"},
        ),
    ],
)
def test_example_from_schema(schema: dict[str, object], expected: object) -> None:
    assert example_from_schema(schema, "text") == expected


@pytest.mark.parametrize(
    "payload",
    [
        b'{"id":"1","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}',
        b'{"id":"1","usage":null,"choices":[{"index":0,"delta":{"content":"hi"}}]}',
        b'{"usage":null,"id":"1","choices":[{"index":0,"delta":{"content":"hi"}}]}',
        b'{"id":"1", "choices":[{"index":0,"delta":{"content":"say \\"usage\\""}}], "usage": null}',
    ],
)
def test_unasked_usage_null_is_removed_exactly(payload: bytes) -> None:
    stream = OpenAIStream("p", want_usage=False)
    (out,) = stream.feed(b"data: " + payload + b"\n\n")
    expected = orjson.loads(payload)
    del expected["usage"]
    assert orjson.loads(out.removeprefix(b"data: ")) == expected
    kept = OpenAIStream("p", want_usage=True).feed(b"data: " + payload + b"\n\n")
    assert orjson.loads(kept[0].removeprefix(b"data: ")) == orjson.loads(payload)


def test_weighted_peek_leaves_the_split_exact() -> None:
    deps = _deps([1, 1])
    strategy = Weighted(deps)
    firsts = []
    for _ in range(6):
        strategy.peek(CTX)  # used as another alias's fallback: must not advance the round-robin
        firsts.append(strategy.order(CTX)[0].provider)
    assert firsts.count("p0") == firsts.count("p1") == 3


def test_cache_key_covers_answer_changing_options() -> None:
    from hedge.store.cache import cache_key

    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    plain = cache_key("a", "chat", body)
    assert cache_key("a", "chat", {**body, "hedge": {"cache": True}}) == plain
    assert cache_key("a", "chat", {**body, "stream": False}) == plain
    assert cache_key("a", "chat", {**body, "hedge": {"on_unsupported": "drop"}}) != plain
    assert cache_key("a", "chat", {**body, "hedge": {"only": ["cheap"]}}) != plain
    assert cache_key("b", "chat", body) != plain
