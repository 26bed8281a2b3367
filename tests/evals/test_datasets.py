"""Dataset lines: the chat-request shape and OpenAI's batch-input shape, and clear errors otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from hedge.evals.datasets import DatasetError, expected_from_response, load, parse_line

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("line", "item_id", "body", "expected", "metadata"),
    [
        ({"messages": MESSAGES}, "line-1", {"messages": MESSAGES}, None, {}),
        (
            {"messages": MESSAGES, "expected": "yo", "metadata": {"k": 1}, "temperature": 0, "model": "x"},
            "line-1",
            {"messages": MESSAGES, "temperature": 0},
            "yo",
            {"k": 1},
        ),
        ({"id": "q7", "messages": MESSAGES, "stream": True}, "q7", {"messages": MESSAGES}, None, {}),
        (
            # the example line of https://platform.openai.com/docs/guides/batch
            {
                "custom_id": "request-1",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "gpt-3.5-turbo-0125", "messages": MESSAGES, "max_tokens": 1000},
            },
            "request-1",
            {"messages": MESSAGES, "max_tokens": 1000},
            None,
            {},
        ),
        (
            {"custom_id": "r2", "body": {"messages": MESSAGES}, "expected": ["a", "b"]},
            "r2",
            {"messages": MESSAGES},
            ["a", "b"],
            {},
        ),
    ],
)
def test_line_shapes(
    line: dict[str, Any], item_id: str, body: dict[str, Any], expected: Any, metadata: dict[str, Any]
) -> None:
    item = parse_line(line, "line-1")
    assert (item.id, item.request, item.expected, item.metadata) == (item_id, body, expected, metadata)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"messages": []}', "line 2: 'messages' must be a non-empty list"),
        (b'{"messages": ["hi"]}', "line 2: each message must be an object"),
        (b'{"body": "x"}', "line 2: 'body' must be an object"),
        (b'{"messages": [{"role": "user"}], "metadata": 3}', "line 2: 'metadata' must be an object"),
        (b"[1, 2]", "line 2: a line must be a JSON object"),
        (b"{nope", "line 2: not JSON"),
    ],
)
def test_bad_lines_name_their_line(tmp_path: Path, raw: bytes, problem: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(orjson.dumps({"messages": MESSAGES}) + b"\n" + raw + b"\n")
    with pytest.raises(DatasetError, match=problem.replace("[", r"\[")):
        load(path)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DatasetError, match="no items"):
        load(tmp_path / "empty.jsonl")
    with pytest.raises(DatasetError, match="cannot read"):
        load(tmp_path / "missing.jsonl")


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ({"choices": [{"message": {"role": "assistant", "content": "Paris"}}]}, "Paris"),
        (
            {
                "choices": [
                    {
                        "message": {
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": "c1",
                                    "type": "function",
                                    "function": {"name": "f", "arguments": '{"a":1}'},
                                }
                            ],
                        }
                    }
                ]
            },
            [{"name": "f", "arguments": {"a": 1}}],
        ),
        ({"choices": []}, None),
        ({"error": {"message": "x"}}, None),
        ("text", None),
    ],
)
def test_the_logged_answer_becomes_the_reference(response: Any, expected: Any) -> None:
    assert expected_from_response(response) == expected
