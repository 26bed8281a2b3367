"""Gemini batch mode envelopes (pure translation).

Sources: the batch mode guide (https://ai.google.dev/gemini-api/docs/batch-mode) for the inlined
request example ("Describe the process of photosynthesis.", metadata key ``request-1``) and the
states; the ``google-genai`` SDK's converters (``batches.py`` in
https://github.com/googleapis/python-genai: ``_InlinedRequest_to_mldev``, ``_BatchJob_from_mldev``,
``_BatchJobDestination_from_mldev``) for the camelCase field names and where the output sits.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hedge.config import ProviderConfig
from hedge.errors import UpstreamError
from hedge.providers import batch_gemini
from hedge.providers.base import Translated, UpstreamRequest, Usage
from hedge.providers.gemini import GeminiAdapter

ADAPTER = GeminiAdapter("up", ProviderConfig(style="gemini", base_url="http://up"))


def operation(state: str, output: list[dict[str, Any]] | None = None, **stats: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch",
        "model": "models/gemini-2.5-flash",
        "displayName": "my-batch-requests",
        "name": "batches/123456",
        "state": state,
        "batchStats": stats,
    }
    out: dict[str, Any] = {"name": "batches/123456", "metadata": metadata}
    if output is not None:
        metadata["output"] = {"inlinedResponses": {"inlinedResponses": output}}
        out["done"] = True
    return out


ANSWER = {
    "candidates": [
        {
            "content": {"parts": [{"text": "Plants turn light into sugar."}], "role": "model"},
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 6, "totalTokenCount": 13},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "abc",
}


def test_create_body_inlines_the_adapters_request_with_its_key() -> None:
    body = {
        "model": "gemini-2.5-flash",
        "messages": [{"role": "user", "content": "Describe the process of photosynthesis."}],
    }
    request = ADAPTER.chat_request(body, "gemini-2.5-flash", stream=False, want_usage=False)
    raw = batch_gemini.create_body([("request-1", request.body)], "my-batch-requests")
    data = orjson.loads(raw)
    assert data["batch"]["displayName"] == "my-batch-requests"
    [item] = data["batch"]["inputConfig"]["requests"]["requests"]
    assert item["metadata"] == {"key": "request-1"}
    assert item["request"]["contents"] == [
        {"role": "user", "parts": [{"text": "Describe the process of photosynthesis."}]}
    ]


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("BATCH_STATE_PENDING", "running"),
        ("BATCH_STATE_RUNNING", "running"),
        ("BATCH_STATE_SUCCEEDED", "ended"),
        ("BATCH_STATE_FAILED", "failed"),
        ("BATCH_STATE_CANCELLED", "cancelled"),
        ("BATCH_STATE_EXPIRED", "expired"),
    ],
)
def test_progress(state: str, status: str) -> None:
    raw = orjson.dumps(
        operation(
            state,
            requestCount="10",
            successfulRequestCount="6",
            failedRequestCount="1",
            pendingRequestCount="3",
        )
    )
    p = batch_gemini.progress(raw, "up")
    assert (p.status, p.completed, p.failed, p.total) == (status, 6, 1, 10)


@pytest.mark.parametrize(
    "data", [{"name": "batches/1"}, operation("JOB_STATE_RUNNING"), {"name": "operations/1", "metadata": {}}]
)
def test_an_operation_that_is_not_a_batch_is_the_upstreams_fault(data: dict[str, Any]) -> None:
    with pytest.raises(UpstreamError):
        batch_gemini.progress(orjson.dumps(data), "up")


def test_batch_name() -> None:
    assert batch_gemini.batch_name(orjson.dumps(operation("BATCH_STATE_PENDING")), "up") == "batches/123456"
    with pytest.raises(UpstreamError):
        batch_gemini.batch_name(b'{"name": "operations/1"}', "up")


def collect(data: dict[str, Any]) -> dict[str, Any]:
    def translate(body: bytes) -> Translated:
        return ADAPTER.chat_response(body, UpstreamRequest("http://up/v1beta/models/m:generateContent", b""))

    return {r.custom_id: r for r in batch_gemini.results(orjson.dumps(data), "up", translate, ADAPTER.error)}


def test_inlined_responses_become_chat_completions_keyed_by_metadata() -> None:
    found = collect(
        operation("BATCH_STATE_SUCCEEDED", [{"response": ANSWER, "metadata": {"key": "request-1"}}])
    )
    result = found["request-1"]
    assert result.status == 200
    assert result.body["object"] == "chat.completion"
    assert result.body["choices"][0]["message"]["content"] == "Plants turn light into sugar."
    assert result.usage == Usage(prompt_tokens=7, completion_tokens=6)


def test_the_output_may_come_as_the_operations_response() -> None:
    data = operation("BATCH_STATE_SUCCEEDED")
    data["response"] = {
        "inlinedResponses": {"inlinedResponses": [{"response": ANSWER, "metadata": {"key": "a"}}]}
    }
    assert set(collect(data)) == {"a"}


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [(3, 400, False), (5, 502, True), (8, 429, True), (13, 502, True), (14, 503, True), (None, 502, True)],
)
def test_inlined_errors_carry_grpc_codes(code: int | None, status: int, retryable: bool) -> None:
    entry = {"error": {"code": code, "message": "nope", "details": []}, "metadata": {"key": "x"}}
    result = collect(operation("BATCH_STATE_SUCCEEDED", [entry]))["x"]
    assert (result.status, result.retryable, result.usage) == (status, retryable, None)
    assert "error" in result.body


def test_a_cancelled_batch_lists_only_what_ran() -> None:
    assert collect(operation("BATCH_STATE_CANCELLED", [])) == {}


@pytest.mark.parametrize(
    "output",
    [[{"response": ANSWER}], [{"response": ANSWER, "metadata": {"key": 7}}]],
)
def test_a_response_without_its_key_is_the_upstreams_fault(output: list[dict[str, Any]]) -> None:
    with pytest.raises(UpstreamError):
        collect(operation("BATCH_STATE_SUCCEEDED", output))


def test_results_in_a_file_are_refused() -> None:
    data = operation("BATCH_STATE_SUCCEEDED")
    data["metadata"]["output"] = {"responsesFile": "files/abc"}
    with pytest.raises(UpstreamError, match="file"):
        collect(data)
