"""Tool call ids made portable between providers, and thought signatures kept out of them."""

from __future__ import annotations

import copy
import re
from typing import Any

import orjson
import pytest

from hedge.config import ProviderConfig
from hedge.providers.anthropic import AnthropicAdapter
from hedge.providers.ids import portable_call_id, portable_messages
from hedge.providers.openai import OpenAIAdapter
from hedge.providers.signatures import Signatures

# A Gemini 3 signature is 126 to 5,500+ characters of base64 (``+ / =``); ids once carried it.
SIGNATURE = "CpcHAdHtim9" + "+/Zx" * 60 + "=="
LEGACY = "call_0123456789abcdef01234567~" + SIGNATURE
ANTHROPIC_ID = re.compile(r"[a-zA-Z0-9_-]+")


@pytest.mark.parametrize(
    ("call_id", "strict", "kept"),
    [
        ("call_abc123", True, True),
        ("toolu_01A09q90qw90lq917835lq9", True, True),
        ("call_abc.123", False, True),  # OpenAI takes any character
        ("call_abc.123", True, False),  # Anthropic does not
        ("x" * 40, True, True),
        ("x" * 41, False, False),
        ("", False, False),
    ],
)
def test_portable_call_id(call_id: str, strict: bool, kept: bool) -> None:
    out = portable_call_id(call_id, strict=strict)
    assert (out == call_id) is kept
    assert 0 < len(out) <= 40 and (not strict or ANTHROPIC_ID.fullmatch(out))
    assert portable_call_id(call_id, strict=strict) == out, "stable: a call and its result still match"


def test_legacy_ids_lose_their_signature() -> None:
    assert portable_call_id(LEGACY, strict=True) == "call_0123456789abcdef01234567"
    assert portable_call_id(LEGACY, strict=False) == "call_0123456789abcdef01234567"


def conversation() -> list[dict[str, Any]]:
    """A tool turn made on Gemini (signature in extra_content), and a legacy id, as a client sends them."""
    call = {
        "id": "call_0123456789abcdef01234567",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
        "extra_content": {"google": {"thought_signature": SIGNATURE}},
    }
    old = {"id": LEGACY, "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    return [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call, old]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
        {"role": "tool", "tool_call_id": LEGACY, "content": "rain"},
    ]


def test_portable_messages_leaves_the_body_alone() -> None:
    messages = conversation()
    before = copy.deepcopy(messages)
    out = portable_messages(messages, strict=False)
    assert messages == before
    assert "extra_content" not in out[1]["tool_calls"][0]
    assert out[1]["tool_calls"][1]["id"] == out[3]["tool_call_id"] == "call_0123456789abcdef01234567"
    plain = [{"role": "user", "content": "hi"}]
    assert portable_messages(plain, strict=True) is plain, "nothing to change: no copy"
    kept = portable_messages(messages, strict=False, keep_extra=True)
    assert kept[1]["tool_calls"][0]["extra_content"] == {"google": {"thought_signature": SIGNATURE}}


def test_openai_upstream_gets_no_signature_and_short_ids() -> None:
    adapter = OpenAIAdapter("oa", ProviderConfig(style="openai", base_url="https://oa.example/v1"))
    sent = orjson.loads(adapter.chat_request({"messages": conversation()}, "gpt-4o", False, False).body)
    calls = sent["messages"][1]["tool_calls"]
    assert all("extra_content" not in c and len(c["id"]) <= 40 for c in calls)
    assert SIGNATURE not in orjson.dumps(sent).decode()
    google = OpenAIAdapter(
        "g",
        ProviderConfig(style="openai", base_url="https://generativelanguage.googleapis.com/v1beta/openai"),
    )
    sent = orjson.loads(google.chat_request({"messages": conversation()}, "gemini-3", False, False).body)
    assert sent["messages"][1]["tool_calls"][0]["extra_content"]["google"]["thought_signature"] == SIGNATURE


def test_anthropic_upstream_gets_valid_ids_and_no_signature() -> None:
    adapter = AnthropicAdapter("an", ProviderConfig(style="anthropic", base_url="https://an.example"))
    sent = orjson.loads(adapter.chat_request({"messages": conversation()}, "claude", False, False).body)
    uses = [b for b in sent["messages"][1]["content"] if b["type"] == "tool_use"]
    results = [b for b in sent["messages"][2]["content"] if b["type"] == "tool_result"]
    assert [u["id"] for u in uses] == [r["tool_use_id"] for r in results]
    assert all(ANTHROPIC_ID.fullmatch(u["id"]) for u in uses)
    assert SIGNATURE not in orjson.dumps(sent).decode()


def test_signature_memory_is_bounded_and_forgets() -> None:
    memory = Signatures(ttl_s=10, max_entries=2, max_chars=10)
    memory.remember("a", "1234", now=0)
    memory.remember("b", "5678", now=1)
    assert (memory.recall("a", now=5), memory.recall("b", now=5)) == ("1234", "5678")
    memory.remember("c", "90", now=2)
    assert memory.recall("a", now=5) is None, "over max_entries: the oldest goes"
    memory.remember("d", "abcdef", now=3)
    assert len(memory) == 2 and memory.recall("b", now=5) is None, "over max_chars: the oldest goes"
    assert memory.recall("d", now=12) == "abcdef"
    assert memory.recall("d", now=13) is None, "past its TTL"
    memory.remember("e", "x" * 11, now=3)
    assert memory.recall("e", now=3) is None, "a signature larger than the memory is not kept"


def test_issued_signatures_are_kept_for_publishing_only_when_published() -> None:
    memory = Signatures()
    memory.issued("a", "sig-a")
    assert memory.fresh() == [] and memory.recall("a") == "sig-a", "nobody publishes: nothing piles up"
    woken: list[int] = []
    memory.publish(lambda: woken.append(1))
    memory.issued("b", "sig-b")
    memory.remember("c", "sig-c")  # fetched from another replica: not published again
    assert memory.fresh() == [("b", "sig-b")] and woken == [1]
    assert memory.fresh() == []
    memory.publish(None)
    memory.issued("d", "sig-d")
    assert memory.fresh() == []
