"""Legacy text completions <-> chat completions: the pure translation, case by case.

The answers are checked against the installed ``openai`` SDK's own ``Completion`` model (strict
validation, not the SDK's lenient parsing), so a field the legacy API does not have, or one of
the wrong type, fails here before a client meets it.
"""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest
from openai.types.completion_choice import CompletionChoice, Logprobs

from hedge.errors import InvalidRequest
from hedge.providers.completions_inbound import (
    LEGACY_DEFAULT_MAX_TOKENS,
    CompletionEvents,
    Legacy,
    to_chat,
    to_text_completion,
)

USER = [{"role": "user", "content": "Once upon a time"}]

# -- the request -----------------------------------------------------------------------------------------

TO_CHAT: list[tuple[str, dict[str, Any], dict[str, Any], Legacy]] = [
    (
        "a string prompt; max_tokens absent: the legacy default",
        {"model": "m", "prompt": "Once upon a time"},
        {"model": "m", "messages": USER, "max_tokens": 16},
        Legacy("Once upon a time"),
    ),
    (
        "a list of one string",
        {"model": "m", "prompt": ["Once upon a time"], "max_tokens": 5},
        {"model": "m", "messages": USER, "max_tokens": 5},
        Legacy("Once upon a time"),
    ),
    (
        "max_tokens null is the default too",
        {"model": "m", "prompt": "Once upon a time", "max_tokens": None},
        {"model": "m", "messages": USER, "max_tokens": 16},
        Legacy("Once upon a time"),
    ),
    (
        "the parameters chat shares, passed as they are",
        {
            "model": "m",
            "prompt": "Once upon a time",
            "temperature": 0.3,
            "top_p": 0.9,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.5,
            "seed": 7,
            "user": "u-1",
            "logit_bias": {"50256": -100},
            "n": 2,
            "stop": "\n",
            "hedge": {"order": ["cheap"]},
        },
        {
            "model": "m",
            "messages": USER,
            "max_tokens": 16,
            "temperature": 0.3,
            "top_p": 0.9,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.5,
            "seed": 7,
            "user": "u-1",
            "logit_bias": {"50256": -100},
            "n": 2,
            "stop": "\n",
            "hedge": {"order": ["cheap"]},
        },
        Legacy("Once upon a time"),
    ),
    (
        "stop as a list; nulls are left out",
        {"model": "m", "prompt": "Once upon a time", "stop": ["a", "b"], "temperature": None, "seed": None},
        {"model": "m", "messages": USER, "max_tokens": 16, "stop": ["a", "b"]},
        Legacy("Once upon a time"),
    ),
    (
        "a stream asking for usage",
        {
            "model": "m",
            "prompt": "Once upon a time",
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        {
            "model": "m",
            "messages": USER,
            "max_tokens": 16,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        Legacy("Once upon a time", include_usage=True),
    ),
    (
        "usage is a stream's option only",
        {
            "model": "m",
            "prompt": "Once upon a time",
            "stream": False,
            "stream_options": {"include_usage": True},
        },
        {
            "model": "m",
            "messages": USER,
            "max_tokens": 16,
            "stream": False,
            "stream_options": {"include_usage": True},  # chat validation refuses this, naming it
        },
        Legacy("Once upon a time"),
    ),
    (
        "echo is the face's own: not sent upstream",
        {"model": "m", "prompt": "Once upon a time", "echo": True},
        {"model": "m", "messages": USER, "max_tokens": 16},
        Legacy("Once upon a time", echo=True),
    ),
    (
        "logprobs: the chat logprobs with as many alternatives",
        {"model": "m", "prompt": "Once upon a time", "logprobs": 3},
        {"model": "m", "messages": USER, "max_tokens": 16, "logprobs": True, "top_logprobs": 3},
        Legacy("Once upon a time", logprobs=3),
    ),
    (
        "logprobs 0: the sampled tokens' only",
        {"model": "m", "prompt": "Once upon a time", "logprobs": 0, "echo": False},
        {"model": "m", "messages": USER, "max_tokens": 16, "logprobs": True, "top_logprobs": 0},
        Legacy("Once upon a time", logprobs=0),
    ),
    (
        "what changes nothing is accepted: best_of 1, an empty suffix, nulls",
        {
            "model": "m",
            "prompt": "Once upon a time",
            "best_of": 1,
            "suffix": "",
            "echo": None,
            "logprobs": None,
        },
        {"model": "m", "messages": USER, "max_tokens": 16},
        Legacy("Once upon a time"),
    ),
    (
        "no model: left for the chat validation to name",
        {"prompt": "Once upon a time"},
        {"messages": USER, "max_tokens": 16},
        Legacy("Once upon a time"),
    ),
]


@pytest.mark.parametrize(("body", "chat", "legacy"), [c[1:] for c in TO_CHAT], ids=[c[0] for c in TO_CHAT])
def test_to_chat(body: dict[str, Any], chat: dict[str, Any], legacy: Legacy) -> None:
    assert to_chat(body) == (chat, legacy)


def test_the_default_max_tokens_is_the_legacy_apis() -> None:
    assert LEGACY_DEFAULT_MAX_TOKENS == 16


REFUSED: list[tuple[str, dict[str, Any], str, str, str]] = [
    # (case, body, param, code, words the message must hold)
    ("an unknown parameter", {"prompt": "p", "foo": 1}, "foo", "unknown_parameter", "argument supplied: foo"),
    (
        "two unknown parameters, both named",
        {"prompt": "p", "foo": 1, "messages": []},
        "foo",
        "unknown_parameter",
        "arguments supplied: foo, messages",
    ),
    ("no prompt", {"model": "m"}, "prompt", "missing_required_parameter", "'prompt'"),
    ("a null prompt", {"prompt": None}, "prompt", "missing_required_parameter", "'prompt'"),
    ("several prompts", {"prompt": ["a", "b"]}, "prompt", "unsupported_parameter", "2 prompts"),
    ("a token-id prompt", {"prompt": [1, 2, 3]}, "prompt", "unsupported_parameter", "token ids"),
    ("token-id prompts", {"prompt": [[1, 2], [3]]}, "prompt", "unsupported_parameter", "token ids"),
    ("an empty prompt list", {"prompt": []}, "prompt", "empty_array", "empty array"),
    ("a number prompt", {"prompt": 5}, "prompt", "invalid_type", "expected a string or an array"),
    ("a mixed prompt list", {"prompt": ["a", 1]}, "prompt", "invalid_type", "but got an array"),
    ("a boolean list is no token ids", {"prompt": [True]}, "prompt", "invalid_type", "but got an array"),
    ("suffix", {"prompt": "p", "suffix": "end"}, "suffix", "unsupported_parameter", "fill in the middle"),
    ("suffix of the wrong type", {"prompt": "p", "suffix": 3}, "suffix", "invalid_type", "expected a string"),
    ("best_of above 1", {"prompt": "p", "best_of": 3}, "best_of", "unsupported_parameter", "'best_of' 3"),
    ("best_of below n", {"prompt": "p", "best_of": 1, "n": 2}, "best_of", "invalid_value", "at least 'n'"),
    ("best_of as a string", {"prompt": "p", "best_of": "2"}, "best_of", "invalid_type", "an integer"),
    ("logprobs above 5", {"prompt": "p", "logprobs": 6}, "logprobs", "invalid_value", "between 0 and 5"),
    ("negative logprobs", {"prompt": "p", "logprobs": -1}, "logprobs", "invalid_value", "between 0 and 5"),
    ("logprobs as a boolean", {"prompt": "p", "logprobs": True}, "logprobs", "invalid_type", "an integer"),
    (
        "logprobs with echo",
        {"prompt": "p", "logprobs": 1, "echo": True},
        "logprobs",
        "unsupported_parameter",
        "not of the prompt",
    ),
    ("echo as a string", {"prompt": "p", "echo": "yes"}, "echo", "invalid_type", "a boolean"),
]


@pytest.mark.parametrize(
    ("body", "param", "code", "words"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_refused(body: dict[str, Any], param: str, code: str, words: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_chat(body)
    error = caught.value
    assert (error.status, error.param, error.code) == (400, param, code)
    assert words in error.message


def assert_sdk_shape(obj: dict[str, Any], streamed: bool = False) -> None:
    """``obj`` is a valid ``openai.types.Completion`` (strictly: no coercion) with no field the SDK's
    model lacks. A streamed chunk's ``finish_reason`` is null until its choice ends, which the model
    (shared by both, and strict about the literal) does not say: such chunks are checked as if ended."""
    data = orjson.loads(orjson.dumps(obj))
    for choice in data["choices"]:
        assert set(choice) <= set(CompletionChoice.model_fields)
        if streamed and choice["finish_reason"] is None:
            choice["finish_reason"] = "stop"
        if choice["logprobs"] is not None:
            assert set(choice["logprobs"]) <= set(Logprobs.model_fields)
    assert set(data) <= set(openai.types.Completion.model_fields)
    openai.types.Completion.model_validate(data, strict=True)


# -- the answer ----------------------------------------------------------------------------------------

USAGE = {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}


def chat_completion(*choices: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": list(choices),
        "usage": USAGE,
        **extra,
    }


def chat_choice(
    text: str | None, finish: str | None = "stop", index: int = 0, **extra: Any
) -> dict[str, Any]:
    message = {"role": "assistant", "content": text, **extra.pop("message", {})}
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish, **extra}


def legacy_choice(text: str, finish: str = "stop", index: int = 0, logprobs: Any = None) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish}


def text_completion(*choices: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "cmpl-abc",
        "object": "text_completion",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": list(choices),
        **extra,
        "usage": USAGE,
    }


TOKENS = [
    # "é" split over two tokens of one byte each, then "x": offsets count characters, not token strings.
    {"token": "bytes:\\xc3", "logprob": -0.5, "bytes": [195], "top_logprobs": []},
    {"token": "bytes:\\xa9", "logprob": -0.25, "bytes": [169], "top_logprobs": []},
    {
        "token": " x",
        "logprob": -1.0,
        "bytes": [32, 120],
        "top_logprobs": [{"token": " y", "logprob": -0.75, "bytes": [32, 121]}],
    },
]
LEGACY_LOGPROBS: dict[str, Any] = {
    "tokens": ["bytes:\\xc3", "bytes:\\xa9", " x"],
    "token_logprobs": [-0.5, -0.25, -1.0],
    # the sampled token is always among them, as in the legacy API
    "top_logprobs": [{"bytes:\\xc3": -0.5}, {"bytes:\\xa9": -0.25}, {" y": -0.75, " x": -1.0}],
    "text_offset": [0, 0, 1],
}

TO_TEXT: list[tuple[str, dict[str, Any], Legacy, dict[str, Any]]] = [
    (
        "one choice",
        chat_completion(chat_choice("Hello there.")),
        Legacy("Say hi"),
        text_completion(legacy_choice("Hello there.")),
    ),
    (
        "the system fingerprint is kept",
        chat_completion(chat_choice("Hi"), system_fingerprint="fp_1"),
        Legacy("Say hi"),
        text_completion(legacy_choice("Hi"), system_fingerprint="fp_1"),
    ),
    (
        "echo prepends the prompt, as it was",
        chat_completion(chat_choice(" and on.")),
        Legacy("On", echo=True),
        text_completion(legacy_choice("On and on.")),
    ),
    (
        "n choices, by index, each echoed",
        chat_completion(chat_choice("b", index=1, finish="length"), chat_choice("a")),
        Legacy("p:", echo=True),
        text_completion(legacy_choice("p:a"), legacy_choice("p:b", "length", 1)),
    ),
    (
        "finish reasons the legacy API lacks read as stop",
        chat_completion(
            chat_choice("", "tool_calls"), chat_choice("x", None, 1), chat_choice("y", "content_filter", 2)
        ),
        Legacy("p"),
        text_completion(
            legacy_choice(""), legacy_choice("x", "stop", 1), legacy_choice("y", "content_filter", 2)
        ),
    ),
    (
        "no content: empty text",
        chat_completion(chat_choice(None)),
        Legacy("p"),
        text_completion(legacy_choice("")),
    ),
    (
        "a refusal is the reply's text",
        chat_completion(chat_choice(None, message={"refusal": "I can't help with that."})),
        Legacy("p"),
        text_completion(legacy_choice("I can't help with that.")),
    ),
    (
        "logprobs in the legacy shape",
        chat_completion(chat_choice("é x", logprobs={"content": TOKENS, "refusal": None})),
        Legacy("p", logprobs=1),
        text_completion(legacy_choice("é x", logprobs=LEGACY_LOGPROBS)),
    ),
    (
        "logprobs asked for, none given upstream: null",
        chat_completion(chat_choice("x")),
        Legacy("p", logprobs=2),
        text_completion(legacy_choice("x")),
    ),
    (
        "logprobs not asked for are not shown",
        chat_completion(chat_choice("é x", logprobs={"content": TOKENS})),
        Legacy("p"),
        text_completion(legacy_choice("é x")),
    ),
]


@pytest.mark.parametrize(
    ("completion", "legacy", "expected"), [c[1:] for c in TO_TEXT], ids=[c[0] for c in TO_TEXT]
)
def test_to_text_completion(completion: dict[str, Any], legacy: Legacy, expected: dict[str, Any]) -> None:
    out = to_text_completion(completion, legacy)
    assert out == expected
    assert_sdk_shape(out)


def test_usage_is_passed_whole() -> None:
    usage = {**USAGE, "prompt_tokens_details": {"cached_tokens": 2}, "completion_tokens_details": None}
    out = to_text_completion(chat_completion(chat_choice("x"), usage=usage), Legacy("p"))
    assert out["usage"] == usage
    assert_sdk_shape(out)


def test_the_id_is_a_completions_id() -> None:
    assert (
        to_text_completion(chat_completion(chat_choice("x"), id="msg_1"), Legacy("p"))["id"] == "cmpl-msg_1"
    )


# -- the stream ----------------------------------------------------------------------------------------


def chunk(*choices: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": list(choices),
        **extra,
    }


def delta(
    content: str | None = None, index: int = 0, finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    body = {} if content is None else {"content": content}
    return {"index": index, "delta": {**body, **extra.pop("delta", {})}, "finish_reason": finish, **extra}


def legacy_chunk(*choices: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "cmpl-abc",
        "object": "text_completion",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": list(choices),
        **extra,
    }


def piece(text: str, index: int = 0, finish: str | None = None, logprobs: Any = None) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish}


def events(frames: list[bytes]) -> list[Any]:
    out: list[Any] = []
    for event in frames:
        assert event.startswith(b"data: ") and event.endswith(b"\n\n")
        data = event[6:-2]
        out.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return out


ROLE = delta("", delta={"role": "assistant"})

STREAMS: list[tuple[str, Legacy, list[dict[str, Any]], dict[str, Any] | None, list[Any]]] = [
    (
        "text deltas, then the finish, then [DONE]",
        Legacy("p"),
        [chunk(ROLE), chunk(delta("Hel")), chunk(delta("lo")), chunk(delta(finish="stop"))],
        None,
        [
            legacy_chunk(piece("Hel")),
            legacy_chunk(piece("lo")),
            legacy_chunk(piece("", finish="stop")),
            "[DONE]",
        ],
    ),
    (
        "usage asked for: null on every chunk, then the usage chunk",
        Legacy("p", include_usage=True),
        [chunk(ROLE), chunk(delta("Hi")), chunk(delta(finish="length"))],
        {**USAGE, "hedge_cost_usd": 0.001},
        [
            legacy_chunk(piece("Hi"), usage=None),
            legacy_chunk(piece("", finish="length"), usage=None),
            legacy_chunk(usage={**USAGE, "hedge_cost_usd": 0.001}),
            "[DONE]",
        ],
    ),
    (
        "echo: the prompt once per choice, first",
        Legacy("p:", echo=True),
        [
            chunk(ROLE, delta("", index=1, delta={"role": "assistant"})),
            chunk(delta("a"), delta("b", index=1)),
            chunk(delta(finish="stop"), delta(finish="stop", index=1)),
        ],
        None,
        [
            legacy_chunk(piece("p:"), piece("p:", 1)),
            legacy_chunk(piece("a"), piece("b", 1)),
            legacy_chunk(piece("", finish="stop"), piece("", 1, "stop")),
            "[DONE]",
        ],
    ),
    (
        "chunks without text (tool call pieces, empty choices) are left out",
        Legacy("p"),
        [
            chunk(delta(delta={"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]})),
            chunk(),
            chunk(delta("x", finish="tool_calls")),
        ],
        None,
        [legacy_chunk(piece("x", finish="stop")), "[DONE]"],
    ),
    (
        "logprobs chunk by chunk, offsets running on through the choice",
        Legacy("p", logprobs=1),
        [
            chunk(ROLE),
            chunk(delta("é", logprobs={"content": TOKENS[:2]})),
            chunk(delta(" x", logprobs={"content": TOKENS[2:]})),
            chunk(delta(finish="stop")),
        ],
        None,
        [
            legacy_chunk(
                piece(
                    "é",
                    logprobs={
                        "tokens": LEGACY_LOGPROBS["tokens"][:2],
                        "token_logprobs": [-0.5, -0.25],
                        "top_logprobs": LEGACY_LOGPROBS["top_logprobs"][:2],
                        "text_offset": [0, 0],
                    },
                )
            ),
            legacy_chunk(
                piece(
                    " x",
                    logprobs={
                        "tokens": [" x"],
                        "token_logprobs": [-1.0],
                        "top_logprobs": LEGACY_LOGPROBS["top_logprobs"][2:],
                        "text_offset": [1],
                    },
                )
            ),
            legacy_chunk(piece("", finish="stop")),
            "[DONE]",
        ],
    ),
    (
        "the fingerprint and the first chunk's id stay",
        Legacy("p"),
        [chunk(delta("a"), system_fingerprint="fp_1"), chunk(delta(finish="stop"), id="chatcmpl-other")],
        None,
        [
            legacy_chunk(piece("a"), system_fingerprint="fp_1"),
            legacy_chunk(piece("", finish="stop"), system_fingerprint="fp_1"),
            "[DONE]",
        ],
    ),
]


@pytest.mark.parametrize(
    ("legacy", "chunks", "usage", "expected"), [c[1:] for c in STREAMS], ids=[c[0] for c in STREAMS]
)
def test_stream(
    legacy: Legacy, chunks: list[dict[str, Any]], usage: dict[str, Any] | None, expected: list[Any]
) -> None:
    translator = CompletionEvents(legacy)
    frames: list[bytes] = []
    for c in chunks:
        frames += translator.chunk(c)
    frames += translator.finish(usage)
    out = events(frames)
    assert out == expected
    for obj in out[:-1]:
        assert_sdk_shape(obj, streamed=True)
