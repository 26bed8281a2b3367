"""The Responses API cases without a network: their case format, the event-stream check, and each
built-in case failing on a broken answer.

Good answers are made by the gateway's own translation (``to_response``, ``ResponsesEvents``) from
chat completions and chunks, exactly as ``hedge check`` makes them; broken ones are those, spoilt.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hedge.conformance import events
from hedge.conformance.checks import evaluate, evaluate_checks, output_text
from hedge.conformance.send import Exchange, final_response, parse_events, substitute
from hedge.conformance.suite import Case, CaseError, load_cases, parse_case
from hedge.providers.base import Usage
from hedge.providers.responses_inbound import ResponsesEvents, to_response
from hedge.wire.sse import frame_event

CASES = {c.id: c for c in load_cases() if c.api == "responses"}
USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}


def _ids() -> Any:
    counter = iter(range(1000))
    return lambda prefix: f"{prefix}_{next(counter)}"


def _completion(
    content: str | None = None, calls: list[tuple[str, Any]] | None = None, finish: str = "stop"
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": args}}
            for i, (name, args) in enumerate(calls)
        ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": USAGE,
    }


def whole(case: Case, completion: dict[str, Any], request: dict[str, Any] | None = None) -> Exchange:
    """What ``hedge check`` makes of a chat completion answering the case's Responses request."""
    body = {**(request or case.request), "model": "m"}
    response = to_response(completion, body, response_id="resp_1", created_at=1, completed_at=2, ids=_ids())
    usage = completion.get("usage") or {}
    return Exchange(
        request=body,
        body=response,
        api="responses",
        usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)) if usage else None,
    )


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [
        {"index": 0, "delta": delta, "finish_reason": finish}
    ]}  # fmt: skip


TEXT_CHUNKS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "po"}),
    chunk({"content": "ng"}),
    chunk({}, "stop"),
]


def stream_wire(chunks: list[dict[str, Any]], usage: dict[str, Any] | None = USAGE) -> bytes:
    translate = ResponsesEvents({"model": "m", "input": "x"}, response_id="resp_1", created_at=1, ids=_ids())
    out: list[bytes] = []
    for c in chunks:
        out += translate.chunk(c)
    out += translate.finish(usage, 2)
    return b"".join(out)


STREAM_USAGE = Usage(9, 4)


def streamed(wire: bytes, usage: Usage | None = STREAM_USAGE) -> Exchange:
    parsed = parse_events(wire)
    return Exchange(
        request={"model": "m", "input": "x", "stream": True},
        body=final_response(parsed),
        sse=wire,
        events=parsed,
        usage=usage,
        api="responses",
    )


def payloads(wire: bytes) -> list[dict[str, Any]]:
    return [e["data"] for e in parse_events(wire)]


def rewire(datas: list[dict[str, Any]]) -> bytes:
    return b"".join(frame_event(d["type"], d) for d in datas)


# -- the case format --------------------------------------------------------------------------------


def _raw(**fields: Any) -> dict[str, Any]:
    return {
        "id": "r",
        "api": "responses",
        "request": {"input": "hi"},
        "expect": [{"status": "completed"}],
        **fields,
    }


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (_raw(request={"messages": [{"role": "user", "content": "hi"}]}), "takes 'input', not 'messages'"),
        (_raw(request={"input": []}), "needs an 'input': a string or a non-empty list of items"),
        (_raw(request={"input": "hi", "stream": True}), "set 'stream' on the case"),
        (_raw(request={"input": "hi", "previous_response_id": "resp_1"}), "leave out previous_response_id"),
        (
            _raw(expect=[{"finish_reason": "stop"}]),
            "'finish_reason' is not for a responses case: use 'status'",
        ),
        (_raw(expect=[{"choices": 1}]), "a response has no choices"),
        (
            _raw(stream=True, expect=[{"stream": {"usage": True}}]),
            "expect[0].stream.usage: only for chat cases",
        ),
        (_raw(context_fill=0.5), "context_fill: only for chat cases"),
        (_raw(expect=[{"status": []}]), "expect[0].status: expected a status or a list of them"),
        (
            _raw(steps=[{"request": {"messages": []}, "expect": [{"status": "completed"}]}]),
            "steps[0].request: ",
        ),
        (
            _raw(steps=[{"request": {"input": "x"}, "expect": [{"finish_reason": "stop"}]}]),
            "steps[0].expect[0]",
        ),
        (
            _raw(steps=[{"request": {"input": "x"}, "expect": [{"color": 1}]}]),
            "steps[0].expect[0]: unknown check",
        ),
        (
            _raw(repeat=2, steps=[{"request": {"input": "x"}, "expect": [{"usage": True}]}]),
            "repeat: not with steps",
        ),
        (
            _raw(expect=[{"error": True}], steps=[{"request": {"input": "x"}, "expect": [{"usage": True}]}]),
            "expect: an 'error' check can only be in the last step",
        ),
        (
            _raw(
                repeat=2, expect=[{"same_content": True}], steps=[{"request": {"input": "x"}, "expect": []}]
            ),
            "steps.0.expect: List should have at least 1 item",
        ),
        (
            {
                "id": "c",
                "request": {"messages": [{"role": "user", "content": "hi"}]},
                "expect": [{"status": "x"}],
            },
            "'status' is not for a chat case: use 'finish_reason'",
        ),
        (
            {
                "id": "c",
                "stream": True,
                "request": {"messages": [{"role": "user", "content": "hi"}]},
                "expect": [{"stream": {"events": ["response.created"]}}],
            },
            "expect[0].stream.events: only for responses cases",
        ),
    ],
)
def test_responses_case_errors_name_the_field(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(CaseError) as exc:
        parse_case(raw, "mine.yaml", 0)
    assert problem in str(exc.value)


def test_builtin_responses_cases() -> None:
    assert set(CASES) == {
        "responses-basic",
        "responses-instructions",
        "responses-stream",
        "responses-function-call",
        "responses-json-schema",
    }
    assert all(c.required for c in CASES.values())
    assert CASES["responses-stream"].stream and len(CASES["responses-function-call"].steps) == 1


# -- each built-in case passes a good answer and fails a broken one --------------------------------


def test_basic_case() -> None:
    case = CASES["responses-basic"]
    assert evaluate(case, [whole(case, _completion("pong"))]) is None
    cut = whole(case, _completion("po", finish="length"))
    assert evaluate(case, [cut]) == "status 'incomplete' (max_output_tokens), expected completed"
    wrong = whole(case, _completion("ping"))
    assert evaluate(case, [wrong]) == "content 'ping' does not match /(?i)\\bpong\\b/"
    no_text = whole(case, _completion(None, [("f", "{}")], "tool_calls"))
    assert evaluate(case, [no_text]) == "no output_text in the response (output items: ['function_call'])"
    no_usage = whole(case, {**_completion("pong"), "usage": {"prompt_tokens": 3, "completion_tokens": 0}})
    assert evaluate(case, [no_usage]) == "usage.output_tokens is 0, expected a positive count"
    chat_shaped = Exchange(request={}, body=_completion("pong"), api="responses", usage=Usage(1, 1))
    assert evaluate(case, [chat_shaped]) == "object is 'chat.completion', expected 'response'"
    failed = whole(case, _completion("pong"))
    assert failed.body is not None
    failed.body.update(status="failed", error={"code": "server_error", "message": "boom"})
    assert evaluate(case, [failed]) == "the response failed: 'boom'"


def test_instructions_case() -> None:
    case = CASES["responses-instructions"]
    assert evaluate(case, [whole(case, _completion("HELLO WORLD"))]) is None
    assert "does not match /HELLO WORLD/" in (evaluate(case, [whole(case, _completion("hello world"))]) or "")


def test_stream_case() -> None:
    case = CASES["responses-stream"]
    good = stream_wire(TEXT_CHUNKS)
    assert evaluate(case, [streamed(good)]) is None
    # Without in_progress the events are well formed, but not the sequence the case names.
    datas = payloads(good)
    datas = [
        {**d, "sequence_number": i}
        for i, d in enumerate(d for d in datas if d["type"] != "response.in_progress")
    ]
    assert evaluate(case, [streamed(rewire(datas))]) == "no response.in_progress event in the stream"
    # The usage the provider never sent.
    assert evaluate(case, [streamed(good, usage=None)]) == (
        "the provider reported no usage in the stream (the gateway cannot price it)"
    )
    assert evaluate(
        case, [streamed(stream_wire([*TEXT_CHUNKS[:1], chunk({"content": "ping"}), chunk({}, "stop")]))]
    ) == ("content 'ping' does not match /(?i)\\bpong\\b/")


WEATHER_CALL = '{"city": "Paris"}'


def test_function_call_case_and_its_step() -> None:
    case = CASES["responses-function-call"]
    called = whole(case, _completion(None, [("get_weather", WEATHER_CALL)], "tool_calls"))
    assert evaluate(case, [called]) is None
    for calls, problem in [
        ([], "0 function calls, expected 1"),
        ([("get_weather", "{'city': 'Paris'}")], "arguments of 'get_weather' are not valid JSON"),
        (
            [("get_weather", '{"town": "Paris"}')],
            "do not match its schema: $: missing required property 'city'",
        ),
        ([("get_time", WEATHER_CALL)], "called ['get_time'], expected ['get_weather']"),
        ([("get_weather", WEATHER_CALL)] * 2, "2 function calls, expected 1"),
    ]:
        reason = evaluate(case, [whole(case, _completion(None, calls, "tool_calls"))])
        assert reason is not None and problem in reason, (calls, reason)
    # Arguments sent as an object are repaired by the translation (the face answers what the SDK
    # accepts); a deployment that passes the upstream's own output through is still caught
    # (tests/conformance/test_check.py, the tool-args-object quirk on a native deployment).
    as_object = whole(case, _completion(None, [("get_weather", {"city": "Paris"})], "tool_calls"))
    assert evaluate(case, [as_object]) is None

    (step,) = case.steps
    request = substitute(step.request, called.call_ids())
    assert called.call_ids() == ["call_0"]
    assert request["input"][0] == {
        "type": "function_call_output",
        "call_id": "call_0",
        "output": '{"temp_c":18,"sky":"sunny"}',
    }
    answered = whole(case, _completion("It is 18 degrees and sunny."), request)
    assert evaluate_checks(step.checks, [answered]) is None
    again = whole(case, _completion(None, [("get_weather", WEATHER_CALL)], "tool_calls"), request)
    assert evaluate_checks(step.checks, [again]) == "1 function calls, expected 0"
    ignored = whole(case, _completion("I cannot tell."), request)
    assert evaluate_checks(step.checks, [ignored]) == "content 'I cannot tell.' does not match /18/"


def test_json_schema_case() -> None:
    case = CASES["responses-json-schema"]
    good = '{"city": "Paris", "temperature_c": 18.5, "conditions": "sunny"}'
    assert evaluate(case, [whole(case, _completion(good))]) is None
    bad = '{"city": "Paris", "temperature_c": 18.5, "conditions": "foggy"}'
    assert evaluate(case, [whole(case, _completion(bad))]) == (
        "JSON does not match the schema: $.conditions: 'foggy' is not one of "
        "['sunny', 'cloudy', 'rain', 'snow']"
    )
    assert evaluate(case, [whole(case, _completion("Paris: sunny"))]) == "content is not JSON: 'Paris: sunny'"
    no_schema = whole(case, _completion(good), {"input": "x"})
    assert evaluate(case, [no_schema]) == (
        "the case asks for the request's schema, but the request has no text.format schema"
    )


# -- the event stream -------------------------------------------------------------------------------

TOOL_CHUNKS = [
    chunk({"role": "assistant", "content": None}),
    chunk(
        {
            "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
    chunk({}, "tool_calls"),
]


def test_the_gateways_own_streams_are_well_formed() -> None:
    for chunks in (TEXT_CHUNKS, TOOL_CHUNKS, TEXT_CHUNKS[:3] + TOOL_CHUNKS[1:]):
        wire = stream_wire(chunks)
        assert events.check(parse_events(wire)) is None, chunks
    response = final_response(parse_events(stream_wire(TEXT_CHUNKS)))
    assert response is not None and output_text(response) == "pong"


def _spoil(change: Any) -> str | None:
    datas = copy.deepcopy(payloads(stream_wire(TEXT_CHUNKS)))
    change(datas)
    return events.check(parse_events(rewire(datas)))


def _renumber(datas: list[dict[str, Any]], _changed: Any = None) -> None:
    for i, d in enumerate(datas):
        datas[i] = {**d, "sequence_number": i}


def _by_type(datas: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(d for d in datas if d["type"] == kind)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.__setitem__(3, {**d[3], "sequence_number": d[2]["sequence_number"]}), "not above 2"),
        (lambda d: d.__setitem__(4, {**d[4], "sequence_number": 0}), "has sequence_number 0, not above 3"),
        (lambda d: d[4].pop("sequence_number"), "has no sequence_number"),
        (lambda d: d.pop(0), "the first event is response.in_progress, not response.created"),
        (lambda d: d.pop(), "no response.completed (or .incomplete, .failed) at the end"),
        (
            lambda d: _renumber(d, d.insert(3, d[-1])),
            "response.completed is not the single last event",
        ),
        (
            lambda d: _by_type(d, "response.output_text.done").update(text="pang"),
            "but the deltas made 'pong'",
        ),
        (
            lambda d: _by_type(d, "response.content_part.done")["part"].update(text="pang"),
            "content_part.done has text",
        ),
        (
            lambda d: d[-1]["response"]["output"][0]["content"][0].update(text="pang"),
            "the final response has text",
        ),
        (
            lambda d: d[-1]["response"]["output"].clear(),
            "the final response has 0 output items, the stream added 1",
        ),
        (lambda d: d[-1]["response"].update(id="resp_other"), "the events carry different response ids"),
        (
            lambda d: d[-1]["response"].update(status="in_progress"),
            "carries a response with status 'in_progress'",
        ),
        (lambda d: _by_type(d, "response.output_item.added").update(output_index=1), "expected 0"),
        (lambda d: _by_type(d, "response.output_text.delta").update(item_id="msg_x"), "has item_id 'msg_x'"),
        (lambda d: _by_type(d, "response.output_text.delta").update(content_index=1), "content_index 1"),
        (lambda d: _by_type(d, "response.output_text.delta").update(delta=None), "whose delta is None"),
        (
            lambda d: d.remove(_by_type(d, "response.output_text.done")),
            "content_part.done before response.output_text.done",
        ),
        (
            lambda d: d.remove(_by_type(d, "response.content_part.done")),
            "before its content_part.done",
        ),
        (lambda d: d.remove(_by_type(d, "response.output_item.done")), "was never done"),
        (lambda d: d.remove(_by_type(d, "response.content_part.added")), "never added"),
    ],
)
def test_a_spoilt_stream_is_caught(change: Any, problem: str) -> None:
    reason = _spoil(change)
    assert reason is not None and problem in reason, reason


def test_framing_problems_are_caught() -> None:
    good = stream_wire(TEXT_CHUNKS)
    assert events.check(parse_events(good + b"data: [DONE]\n\n")) == (
        "'data: [DONE]' in a Responses stream (it ends with its final response event)"
    )
    unnamed = good.replace(b"event: response.in_progress\n", b"", 1)
    assert events.check(parse_events(unnamed)) == "event 2 ('response.in_progress') has no 'event:' name"
    misnamed = good.replace(b"event: response.in_progress\n", b"event: response.created\n", 1)
    assert events.check(parse_events(misnamed)) == (
        "event 2 is named 'response.created' but its type is 'response.in_progress'"
    )
    broken = good.replace(b'"type":"response.output_text.delta"', b'"type":"response.output_text.delta', 1)
    assert (events.check(parse_events(broken)) or "").startswith("malformed SSE event")
    error = frame_event(
        "error", {"type": "error", "code": "x", "message": "overloaded", "sequence_number": 9}
    )
    assert events.check(parse_events(good[: good.index(b"event: response.completed")] + error)) == (
        "stream ended with an error event: 'overloaded'"
    )
    assert events.check([]) == "empty stream"


def test_the_events_a_case_names_must_come_in_order() -> None:
    parsed = parse_events(stream_wire(TEXT_CHUNKS))
    assert (
        events.check(parsed, ["response.created", "response.output_text.delta", "response.completed"]) is None
    )
    assert events.check(parsed, ["response.output_text.done", "response.output_text.delta"]) == (
        "no response.output_text.delta after response.output_text.done"
    )
    assert events.check(parsed, ["response.refusal.delta"]) == "no response.refusal.delta event in the stream"


def test_other_events_may_come_between() -> None:
    """E.g. a reasoning model's reasoning item, before the message, with events of its own."""
    datas = payloads(stream_wire(TEXT_CHUNKS))
    reasoning = {"id": "rs_1", "type": "reasoning", "summary": []}
    extra = [
        {"type": "response.output_item.added", "output_index": 0, "item": reasoning},
        {"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "output_index": 0},
        {"type": "response.output_item.done", "output_index": 0, "item": reasoning},
    ]
    shifted = [{**d, "output_index": d["output_index"] + 1} if "output_index" in d else d for d in datas[2:]]
    final = copy.deepcopy(shifted[-1])
    final["response"]["output"].insert(0, reasoning)
    merged = [*datas[:2], *extra, *shifted[:-1], final]
    merged = [{**d, "sequence_number": i} for i, d in enumerate(merged)]
    case = CASES["responses-stream"]
    assert evaluate(case, [streamed(rewire(merged))]) is None


def test_parse_events() -> None:
    wire = b': comment\nevent: a\nid: 1\ndata: {"x":\ndata: 1}\n\n\r\ndata: [DONE]\n\nnonsense\n\n'
    assert parse_events(wire) == [
        {"event": "a", "data": {"x": 1}},
        {"event": None, "data": "[DONE]"},
        {"_malformed": "nonsense"},
    ]


def test_call_id_placeholders() -> None:
    ids = ["call_a", "call_b"]
    request = {"input": [{"call_id": "$call_id"}, {"call_id": "$call_id[1]"}, "$call_idx", {"n": 1}]}
    assert substitute(request, ids) == {
        "input": [{"call_id": "call_a"}, {"call_id": "call_b"}, "$call_idx", {"n": 1}]
    }
    with pytest.raises(LookupError, match=r"\$call_id\[2\]: the answer before has 2 function calls"):
        substitute({"x": "$call_id[2]"}, ids)
    chat = Exchange(request={}, body=_completion(None, [("f", "{}"), ("g", "{}")], "tool_calls"))
    assert chat.call_ids() == ["call_0", "call_1"]
    assert Exchange(request={}, body=None, api="responses").call_ids() == []


def test_same_content_compares_text_and_calls() -> None:
    case = Case.model_validate(_raw(repeat=2, expect=[{"same_content": True}]))
    a, b = whole(case, _completion("pong")), whole(case, _completion("pong"))
    assert evaluate(case, [a, b]) is None
    assert evaluate(case, [a, whole(case, _completion("ping"))]) == "answers differ: 'pong' vs 'ping'"


def test_an_error_case_on_the_responses_api() -> None:
    case = Case.model_validate(_raw(expect=[{"error": True}]))
    assert (
        evaluate(case, [whole(case, _completion("pong"))])
        == "expected an error, got a response (status 'completed')"
    )


def test_a_stream_without_its_final_event_is_not_an_answer() -> None:
    case = CASES["responses-stream"]
    wire = stream_wire(TEXT_CHUNKS)
    cut = wire[: wire.index(b"event: response.completed")]
    assert evaluate(case, [streamed(cut)]) == "no response.completed (or .incomplete, .failed) at the end"
