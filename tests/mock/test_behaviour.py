"""The mocks' shared behaviour: the reply plan (echo, stop, length, tools, JSON) and schema examples."""

from __future__ import annotations

import orjson
import pytest

from hedge.mock.behaviour import Tool, Turn, example_from_schema, plan_reply


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
