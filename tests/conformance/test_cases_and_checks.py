"""Conformance pieces without a network: the schema subset, case files, stream checks, the result store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from hedge.config import parse_config
from hedge.conformance import schema
from hedge.conformance.checks import evaluate
from hedge.conformance.runner import build_body, context_window, select_targets, skip_reason
from hedge.conformance.send import Exchange, assemble, parse_sse
from hedge.conformance.suite import Case, CaseError, load_cases, parse_case, select, status_matches
from hedge.providers.base import Usage
from hedge.providers.sse import frame
from hedge.store.conformance import ConformanceRecord, JsonlResultStore

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "maxItems": 2},
    },
    "required": ["city"],
    "additionalProperties": False,
    "$defs": {"tag": {"type": "string", "pattern": "^[a-z]+$"}},
}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"city": "Paris"}, None),
        ({"city": "Paris", "unit": "celsius", "days": 3, "tags": ["a", "b"]}, None),
        ({"city": "Paris", "days": 3.0}, None),
        ({}, "$: missing required property 'city'"),
        ({"city": 5}, "$.city: expected string, got integer"),
        ({"city": "P"}, "$.city: shorter than 2 characters"),
        ({"city": "Paris", "unit": "kelvin"}, "$.unit: 'kelvin' is not one of ['celsius', 'fahrenheit']"),
        ({"city": "Paris", "days": 9}, "$.days: 9 > maximum 7"),
        ({"city": "Paris", "days": True}, "$.days: expected integer, got boolean"),
        ({"city": "Paris", "tags": ["A"]}, "$.tags[0]: does not match pattern '^[a-z]+$'"),
        ({"city": "Paris", "tags": ["a", "b", "c"]}, "$.tags: 3 items, more than 2"),
        ({"city": "Paris", "extra": 1}, "$: unexpected property 'extra'"),
        ("Paris", "$: expected object, got string"),
    ],
)
def test_schema_subset(value: Any, problem: str | None) -> None:
    found = schema.errors(value, WEATHER)
    assert found == ([] if problem is None else [problem])


def test_schema_combinators() -> None:
    either = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert schema.errors(None, either) == []
    assert schema.errors(1, either) == ["$: matches none of the schemas in anyOf"]
    one = {"oneOf": [{"type": "number"}, {"type": "integer"}]}
    assert schema.errors(1, one) == ["$: matches 2 of the schemas in oneOf (expected exactly 1)"]
    assert schema.errors(1.5, one) == []


def test_status_patterns() -> None:
    assert status_matches("4xx", 404) and status_matches([400, "5xx"], 503) and status_matches(404, 404)
    assert not status_matches("4xx", 502) and not status_matches("4xx", None) and not status_matches(400, 404)


def test_builtin_cases_are_valid_and_cover_the_issue() -> None:
    ids = [c.id for c in load_cases()]
    assert len(ids) == len(set(ids))
    for wanted in ["plain", "system", "multi-turn", "stop", "max-tokens", "n", "temperature-0", "json-mode",
                   "json-schema", "tool-call", "parallel-tools", "tool-result", "stream", "stream-usage",
                   "usage", "unicode", "long-context", "error-param", "error-model", "reasoning-effort",
                   "prompt-cache"]:  # fmt: skip
        assert wanted in ids
    assert all(c.required for c in load_cases())


def _case(**fields: Any) -> dict[str, Any]:
    return {"id": "c", "request": {"messages": [{"role": "user", "content": "hi"}]}, **fields}


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (_case(expect=[]), "case 'c': expect: List should have at least 1 item"),
        (
            _case(expect=[{"finish_reason": "stop", "choices": 1}]),
            "expect[0]: each check is a mapping with one key",
        ),
        (_case(expect=[{"content": {"regexp": "x"}}]), "expect[0].content.regexp: unknown key"),
        (_case(expect=[{"content": {"regex": "("}}]), "expect[0].content.regex: invalid regular expression"),
        (_case(expect=[{"error": {"status": "4x"}}]), "status '4x' must be a number like 404"),
        (_case(expect=[{"error": True}, {"usage": True}]), "an 'error' check must be the case's only check"),
        (_case(expect=[{"stream": True}]), "a 'stream' check needs 'stream: true'"),
        (_case(expect=[{"same_content": True}]), "'same_content' needs 'repeat: 2'"),
        (_case(requires=["teleport"], expect=[{"usage": True}]), "requires: unknown capability 'teleport'"),
        (_case(expect=[{"usage": {"min_prompt_tokens": "half"}}]), "must be a number or a share"),
        ({"id": "c", "expect": [{"usage": True}]}, "case 'c': request: missing required key"),
        (_case(color="red", expect=[{"usage": True}]), "case 'c': color: unknown key"),
    ],
)
def test_case_errors_name_the_case_and_field(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(CaseError) as exc:
        parse_case(raw, "mine.yaml", 0)
    assert str(exc.value).startswith("mine.yaml: ")
    assert problem in str(exc.value)


def test_case_files_merge_by_id(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        yaml.safe_dump(
            {"cases": [{"id": "long-context", "params": {"context_window": 100}, "required": False}]}
        )
    )
    (tmp_path / "b.yml").write_text(yaml.safe_dump(_case(id="mine", expect=[{"usage": True}])))
    (tmp_path / "notes.txt").write_text("ignored")
    cases = load_cases([tmp_path])
    by_id = {c.id: c for c in cases}
    merged = by_id["long-context"]
    assert merged.params == {"context_window": 100} and not merged.required
    assert merged.context_fill == 0.75 and merged.request["max_tokens"] == 16  # the rest is the built-in's
    assert [c.id for c in cases][-1] == "mine"
    assert [c.id for c in select(cases, ["mine,plain"])] == ["plain", "mine"]
    with pytest.raises(CaseError, match="invalid YAML"):
        (tmp_path / "c.yaml").write_text("- id: [unclosed")
        load_cases([tmp_path / "c.yaml"])


CONFIG = {
    "server": {"master_key": "k"},
    "providers": {
        "oa": {"style": "openai", "base_url": "http://127.0.0.1:9/v1"},
        "an": {"style": "anthropic", "base_url": "http://127.0.0.1:9"},
    },
    "models": {
        "chat": {"deployments": [{"provider": "oa", "model": "m1"}, {"provider": "an", "model": "c1"}]},
        "big": {"deployments": [{"provider": "oa", "model": "m1"}], "fallbacks": ["chat"]},
    },
}


def test_targets_and_skips() -> None:
    config = parse_config(CONFIG)
    assert [t.id for t in select_targets(config, every=True)] == ["oa/m1", "an/c1"]
    assert [t.id for t in select_targets(config, alias="big")] == ["oa/m1"]
    (anthropic,) = select_targets(config, deployment="an/c1")
    n_case = next(c for c in load_cases() if c.id == "n")
    assert skip_reason(n_case, anthropic, build_body(n_case, None), None) == (
        "anthropic adapter declares no 'n' capability"
    )
    # A user case that uses n without declaring it is skipped by the capability table too.
    sneaky = Case.model_validate(_case(request={**n_case.request}, expect=[{"choices": 2}]))
    assert (
        skip_reason(sneaky, anthropic, build_body(sneaky, None), None) == "anthropic adapter cannot honour n"
    )

    long = next(c for c in load_cases() if c.id == "long-context")
    assert context_window(long, anthropic) is None
    sized = long.model_copy(update={"params": {"context_window": {"c1": 1000}}})
    assert context_window(sized, anthropic) == 1000
    body = build_body(sized, 1000)
    text = body["messages"][-1]["content"]
    assert len(text.split()) == 750 + len(long.request["messages"][-1]["content"].split())
    assert long.request["messages"][-1]["content"] in text  # the built-in case itself is not modified
    assert (
        "stream" not in body and build_body(next(c for c in load_cases() if c.stream), None)["stream"] is True
    )


def _chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0, **extra: Any) -> bytes:
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return frame({"id": "x", "object": "chat.completion.chunk", "choices": [choice], **extra})


def _stream_exchange(*events: bytes) -> Exchange:
    sse = b"".join(events)
    parsed = parse_sse(sse)
    return Exchange(request={}, sse=sse, events=parsed, body=assemble(parsed), usage=Usage(3, 2))


STREAM_CASE = Case.model_validate(_case(stream=True, expect=[{"stream": True}]))
GOOD = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "po"}),
    _chunk({"content": "ng"}),
    _chunk({}, "stop"),
    b"data: [DONE]\n\n",
]


@pytest.mark.parametrize(
    ("events", "problem"),
    [
        (GOOD, None),
        (GOOD[:-1], "no 'data: [DONE]' at the end"),
        ([*GOOD, b"data: [DONE]\n\n"], "'data: [DONE]' is not the single last event"),
        ([_chunk({"content": ""}), *GOOD[1:]], "the first chunk of choice 0 has no role 'assistant'"),
        ([*GOOD[:3], _chunk({}, "stop"), *GOOD[3:]], "finish_reason sent 2 times for choice 0"),
        ([*GOOD[:3], GOOD[4]], "finish_reason sent 0 times for choice 0"),
        ([*GOOD[:4], _chunk({"content": "!"}), GOOD[4]], "content after finish_reason"),
        (
            [
                *GOOD[:4],
                frame({"id": "x", "object": "chat.completion.chunk", "choices": [], "usage": {}}),
                GOOD[4],
            ],
            "a chunk carries usage although the client did not ask for it",
        ),
        ([GOOD[0], b"data: {oops\n\n", *GOOD[1:]], "malformed SSE event"),
        ([GOOD[0], frame({"error": {"message": "boom"}})], "stream ended with an error event: 'boom'"),
    ],
)
def test_stream_shape(events: list[bytes], problem: str | None) -> None:
    reason = evaluate(STREAM_CASE, [_stream_exchange(*events)])
    if problem is None:
        assert reason is None
    else:
        assert reason is not None and problem in reason


def test_assembled_stream_is_a_completion() -> None:
    calls = [
        _chunk({"role": "assistant", "content": None}),
        _chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
                ]
            }
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        _chunk({}, "tool_calls"),
        b"data: [DONE]\n\n",
    ]
    body = assemble(parse_sse(b"".join(calls)))
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["role"] == "assistant"
    assert choice["message"]["tool_calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    ]


def test_repeat_and_same_content() -> None:
    case = Case.model_validate(_case(repeat=2, expect=[{"same_content": True}]))

    def answer(text: str) -> Exchange:
        body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
        return Exchange(request={}, body=body, usage=Usage(1, 1))

    assert evaluate(case, [answer("a"), answer("a")]) is None
    assert evaluate(case, [answer("a"), answer("b")]) == "answers differ: 'a' vs 'b'"


@pytest.mark.parametrize(
    ("spec", "usage", "reason"),
    [
        ({"min_reasoning_tokens": 1}, {"completion_tokens_details": {"reasoning_tokens": 4}}, None),
        (
            {"min_reasoning_tokens": 1},
            {"completion_tokens_details": {"reasoning_tokens": 0}},
            "reasoning_tokens is 0",
        ),
        ({"min_reasoning_tokens": 1}, {}, "was reasoning_effort dropped?"),
        (
            {"min_cache_tokens": 1},
            {"prompt_tokens_details": {"cache_write_tokens": 5, "cached_tokens": 0}},
            None,
        ),
        ({"min_cache_tokens": 1}, {"prompt_tokens_details": {"cached_tokens": 5}}, None),
        ({"min_cache_tokens": 1}, {"prompt_tokens_details": {"cached_tokens": 0}}, "cache_control markers"),
    ],
)
def test_reasoning_and_cache_counts(spec: dict[str, Any], usage: dict[str, Any], reason: str | None) -> None:
    case = Case.model_validate(_case(expect=[{"usage": spec}]))
    body = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, **usage},
    }
    found = evaluate(case, [Exchange(request={}, body=body, usage=Usage(3, 2))])
    assert found is None if reason is None else reason in (found or "")


def test_reasoning_and_cache_cases_skip_where_they_cannot_apply() -> None:
    config = parse_config(
        {
            "server": {"master_key": "k"},
            "providers": {
                "oa": {"style": "openai", "base_url": "http://o/v1"},
                "an": {"style": "anthropic", "base_url": "http://a"},
            },
            "models": {
                "m": {
                    "deployments": [
                        {"provider": "oa", "model": "gpt-4o"},
                        {"provider": "oa", "model": "o3"},
                        {"provider": "an", "model": "claude-3-5-haiku-latest"},
                        {"provider": "an", "model": "claude-sonnet-4-5"},
                    ]
                }
            },
        }
    )
    cases = {c.id: c for c in load_cases()}
    skipped: dict[str, list[str]] = {}
    for target in select_targets(config, alias="m"):
        for name in ("reasoning-effort", "prompt-cache"):
            case = cases[name]
            if skip_reason(case, target, build_body(case, None), None) is not None:
                skipped.setdefault(name, []).append(target.deployment.model)
    assert skipped == {
        "reasoning-effort": ["gpt-4o", "claude-3-5-haiku-latest"],
        "prompt-cache": ["gpt-4o", "o3"],
    }


def test_result_store_latest(tmp_path: Path) -> None:
    store = JsonlResultStore(tmp_path / "deep" / "results.jsonl")
    assert store.latest("p/m") == {}
    t0 = datetime(2025, 1, 1, tzinfo=UTC)

    def record(at: datetime, dep: str, case: str, status: str) -> ConformanceRecord:
        return ConformanceRecord(at, "0.1.0", dep, case, status, "", 1.0)

    store.append([record(t0, "p/m", "plain", "fail"), record(t0, "p/m", "stop", "pass")])
    with store.path.open("ab") as f:
        f.write(b'{"truncated": \n')
    store.append(
        [record(t0 + timedelta(hours=1), "p/m", "plain", "pass"), record(t0, "q/m", "plain", "fail")]
    )
    latest = store.latest("p/m")
    assert {k: v.status for k, v in latest.items()} == {"plain": "pass", "stop": "pass"}
    assert latest["plain"].checked_at == t0 + timedelta(hours=1)
    assert store.latest("q/m")["plain"] == ("fail", t0)
    line = orjson.loads(store.path.read_bytes().splitlines()[0])
    assert line["checked_at"] == "2025-01-01T00:00:00+00:00"
