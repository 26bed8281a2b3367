"""Anthropic Message Batches envelopes (pure translation), on Anthropic's documented examples.

Sources: the batch processing guide (https://platform.claude.com/docs/en/build-with-claude/batch-processing)
for the in-progress batch and the results lines; the API reference's Message Batch object
(https://platform.claude.com/docs/en/api/creating-message-batches) for the ended batch; the
``anthropic`` SDK's ``MessageBatchErroredResult`` / ``ErrorResponse`` types for an errored line.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hedge.config import ProviderConfig
from hedge.errors import UpstreamError
from hedge.providers import batch_anthropic
from hedge.providers.anthropic import AnthropicAdapter
from hedge.providers.base import Translated, UpstreamRequest, Usage

ADAPTER = AnthropicAdapter("up", ProviderConfig(style="anthropic", base_url="http://up"))

DOC_IN_PROGRESS = {  # guide, "Tracking your batch"
    "id": "msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d",
    "type": "message_batch",
    "processing_status": "in_progress",
    "request_counts": {"processing": 2, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
    "ended_at": None,
    "created_at": "2024-09-24T18:37:24.100435Z",
    "expires_at": "2024-09-25T18:37:24.100435Z",
    "cancel_initiated_at": None,
    "results_url": None,
}

DOC_ENDED = {  # API reference, the Message Batch object (with the example's counts)
    "archived_at": None,
    "cancel_initiated_at": None,
    "created_at": "2024-08-20T18:37:24.100435Z",
    "ended_at": "2024-08-20T18:37:24.100435Z",
    "expires_at": "2024-08-20T18:37:24.100435Z",
    "id": "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF",
    "processing_status": "ended",
    "request_counts": {"canceled": 0, "errored": 30, "expired": 0, "processing": 0, "succeeded": 50},
    "results_url": "https://api.anthropic.com/v1/messages/batches/msgbatch_013Zva2CMHLNnXjNJJKqJ2EF/results",
    "type": "message_batch",
}

DOC_RESULTS = (  # guide, "Retrieving batch results"
    b'{"custom_id":"my-second-request","result":{"type":"succeeded","message":{"id":"msg_014VwiXbi91y3JMjcpyGBHX5",'
    b'"type":"message","role":"assistant","model":"claude-3-5-sonnet-20240620","content":[{"type":"text",'
    b'"text":"Hello again! It\'s nice to see you. How can I assist you today? Is there anything specific'
    b' you\'d like to chat about or any questions you have?"}],"stop_reason":"end_turn","stop_sequence":null,'
    b'"usage":{"input_tokens":11,"output_tokens":36}}}}\n'
    b'{"custom_id":"my-first-request","result":{"type":"succeeded","message":{"id":"msg_01FqfsLoHwgeFbguDgpz48m7",'
    b'"type":"message","role":"assistant","model":"claude-3-5-sonnet-20240620","content":[{"type":"text",'
    b'"text":"Hello! How can I assist you today? Feel free to ask me any questions or let me know if there\'s'
    b' anything you\'d like to chat about."}],"stop_reason":"end_turn","stop_sequence":null,'
    b'"usage":{"input_tokens":10,"output_tokens":34}}}}\n'
)


def test_create_body_carries_the_adapters_messages_request() -> None:
    body = {
        "model": "claude-3-5-sonnet-20240620",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, world"}],
        "max_tokens": 1024,
    }
    request = ADAPTER.chat_request(body, "claude-3-5-sonnet-20240620", stream=False, want_usage=False)
    raw = batch_anthropic.create_body(
        [("my-first-request", request.body), ("my-second-request", request.body)]
    )
    params = {
        "model": "claude-3-5-sonnet-20240620",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hello, world"}],
        "system": "Be brief.",
    }
    assert orjson.loads(raw) == {
        "requests": [
            {"custom_id": "my-first-request", "params": params},
            {"custom_id": "my-second-request", "params": params},
        ]
    }


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        (DOC_IN_PROGRESS, ("running", 0, 0, 2)),
        ({**DOC_IN_PROGRESS, "processing_status": "canceling"}, ("running", 0, 0, 2)),
        (DOC_ENDED, ("ended", 50, 30, 80)),
        (
            {**DOC_ENDED, "cancel_initiated_at": "2024-08-20T18:37:24.100435Z"},
            ("cancelled", 50, 30, 80),
        ),
        (
            {**DOC_ENDED, "request_counts": {**DOC_ENDED["request_counts"], "expired": 20}},  # type: ignore[dict-item]
            ("expired", 50, 30, 100),
        ),
    ],
)
def test_progress(batch: dict[str, Any], expected: tuple[str, int, int, int]) -> None:
    p = batch_anthropic.progress(orjson.dumps(batch), "up")
    assert (p.status, p.completed, p.failed, p.total) == expected


def test_results_url_only_once_ended() -> None:
    assert batch_anthropic.results_url(orjson.dumps(DOC_IN_PROGRESS), "up") is None
    assert batch_anthropic.results_url(orjson.dumps(DOC_ENDED), "up") == DOC_ENDED["results_url"]


@pytest.mark.parametrize("raw", [b"[]", orjson.dumps({**DOC_ENDED, "processing_status": "paused"})])
def test_a_batch_that_is_not_one_is_the_upstreams_fault(raw: bytes) -> None:
    with pytest.raises(UpstreamError) as caught:
        batch_anthropic.progress(raw, "up")
    assert caught.value.status == 502


def collect(raw: bytes) -> dict[str, Any]:
    def translate(body: bytes) -> Translated:
        return ADAPTER.chat_response(body, UpstreamRequest("http://up/v1/messages", b""))

    return {r.custom_id: r for r in batch_anthropic.results(raw, "up", translate, ADAPTER.error)}


def test_documented_results_become_chat_completions() -> None:
    found = collect(DOC_RESULTS)
    assert set(found) == {"my-first-request", "my-second-request"}
    first = found["my-first-request"]
    assert first.status == 200 and not first.retryable
    assert first.body["object"] == "chat.completion"
    assert first.body["choices"][0]["message"]["content"].startswith("Hello! How can I assist you today?")
    assert first.body["choices"][0]["finish_reason"] == "stop"
    assert first.usage == Usage(prompt_tokens=10, completion_tokens=34)
    assert found["my-second-request"].usage == Usage(prompt_tokens=11, completion_tokens=36)


def errored(etype: str, message: str = "bad") -> bytes:
    error = {"type": "error", "error": {"type": etype, "message": message}, "request_id": "req_1"}
    return orjson.dumps({"custom_id": "x", "result": {"type": "errored", "error": error}})


@pytest.mark.parametrize(
    ("line", "status", "code", "retryable"),
    [
        (errored("invalid_request_error", "max_tokens: Field required"), 400, None, False),
        # a model the deployment lacks: as interactively, another deployment may have it
        (errored("not_found_error"), 502, None, True),
        (errored("api_error"), 502, "upstream_error", True),
        (errored("overloaded_error"), 503, None, True),
        (errored("rate_limit_error"), 429, "rate_limit_exceeded", True),
        (  # the bare error object instead of its response wrapper
            b'{"custom_id": "x", "result": {"type": "errored", "error": {"type": "invalid_request_error",'
            b' "message": "bad"}}}',
            400,
            None,
            False,
        ),
        (b'{"custom_id": "x", "result": {"type": "canceled"}}', None, "batch_cancelled", True),
        (b'{"custom_id": "x", "result": {"type": "expired"}}', None, "batch_expired", True),
    ],
)
def test_unsucceeded_results(line: bytes, status: int | None, code: str | None, retryable: bool) -> None:
    [result] = collect(line).values()
    assert (result.status, result.retryable, result.usage) == (status, retryable, None)
    if code is not None:
        assert result.body["error"]["code"] == code
    if status == 400:
        assert "bad" in result.body["error"]["message"] or "max_tokens" in result.body["error"]["message"]


@pytest.mark.parametrize(
    "raw",
    [b"nope\n", b'{"custom_id": "x"}\n', b'{"custom_id": "x", "result": {"type": "mystery"}}\n'],
)
def test_a_results_file_that_is_not_one_is_the_upstreams_fault(raw: bytes) -> None:
    with pytest.raises(UpstreamError):
        collect(raw)
