"""OpenAI Batch API envelopes (pure translation), on OpenAI's documented examples.

Sources: the Batch guide (https://platform.openai.com/docs/guides/batch) for the input line, the
validating batch, the output lines and the expired line; the API reference's Batch object
(https://platform.openai.com/docs/api-reference/batch/object) for the completed batch.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hedge.config import ProviderConfig
from hedge.errors import UpstreamError
from hedge.providers import batch_openai
from hedge.providers.base import Translated, UpstreamRequest, Usage
from hedge.providers.openai import OpenAIAdapter

ADAPTER = OpenAIAdapter("up", ProviderConfig(style="openai", base_url="http://up/v1"))

DOC_INPUT_LINE = {  # guide, "Preparing your batch file"
    "custom_id": "request-1",
    "method": "POST",
    "url": "/v1/chat/completions",
    "body": {
        "model": "gpt-3.5-turbo-0125",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Hello world!"},
        ],
        "max_tokens": 1000,
    },
}

DOC_VALIDATING = {  # guide, "Creating the batch"
    "id": "batch_abc123",
    "object": "batch",
    "endpoint": "/v1/chat/completions",
    "errors": None,
    "input_file_id": "file-abc123",
    "completion_window": "24h",
    "status": "validating",
    "output_file_id": None,
    "error_file_id": None,
    "created_at": 1714508499,
    "in_progress_at": None,
    "expires_at": 1714536634,
    "completed_at": None,
    "failed_at": None,
    "expired_at": None,
    "request_counts": {"total": 0, "completed": 0, "failed": 0},
    "metadata": None,
}

DOC_COMPLETED = {  # API reference, the Batch object
    "id": "batch_abc123",
    "object": "batch",
    "endpoint": "/v1/completions",
    "errors": None,
    "input_file_id": "file-abc123",
    "completion_window": "24h",
    "status": "completed",
    "output_file_id": "file-cvaTdG",
    "error_file_id": "file-HOWS94",
    "created_at": 1711471533,
    "in_progress_at": 1711471538,
    "expires_at": 1711557933,
    "finalizing_at": 1711493133,
    "completed_at": 1711493163,
    "failed_at": None,
    "expired_at": None,
    "cancelling_at": None,
    "cancelled_at": None,
    "request_counts": {"total": 100, "completed": 95, "failed": 5},
    "metadata": {"customer_id": "user_123456789", "batch_description": "Nightly eval job"},
}

DOC_OUTPUT = (  # guide, "Retrieving the results"
    b'{"id": "batch_req_123", "custom_id": "request-2", "response": {"status_code": 200, "request_id":'
    b' "req_123", "body": {"id": "chatcmpl-123", "object": "chat.completion", "created": 1711652795,'
    b' "model": "gpt-3.5-turbo-0125", "choices": [{"index": 0, "message": {"role": "assistant",'
    b' "content": "Hello."}, "logprobs": null, "finish_reason": "stop"}], "usage": {"prompt_tokens": 22,'
    b' "completion_tokens": 2, "total_tokens": 24}, "system_fingerprint": "fp_123"}}, "error": null}\n'
    b'{"id": "batch_req_456", "custom_id": "request-1", "response": {"status_code": 200, "request_id":'
    b' "req_789", "body": {"id": "chatcmpl-abc", "object": "chat.completion", "created": 1711652789,'
    b' "model": "gpt-3.5-turbo-0125", "choices": [{"index": 0, "message": {"role": "assistant",'
    b' "content": "Hello! How can I assist you today?"}, "logprobs": null, "finish_reason": "stop"}],'
    b' "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}, "system_fingerprint":'
    b' "fp_3ba"}}, "error": null}\n'
)

DOC_EXPIRED_LINE = (  # guide, "Batch expiration"
    b'{"id": "batch_req_123", "custom_id": "request-3", "response": null, "error": {"code": "batch_expired",'
    b' "message": "This request could not be executed before the completion window expired."}}\n'
)

REFUSED_LINE = (  # a line the API refused: its 4xx and error object where the completion would be
    b'{"id": "batch_req_789", "custom_id": "request-4", "response": {"status_code": 400, "request_id":'
    b' "req_4", "body": {"error": {"message": "Invalid \'max_tokens\': integer below minimum value.",'
    b' "type": "invalid_request_error", "param": "max_tokens", "code": "integer_below_min_value"}}},'
    b' "error": null}\n'
)


def test_the_input_file_is_openais_documented_line() -> None:
    request = ADAPTER.chat_request(
        DOC_INPUT_LINE["body"], "gpt-3.5-turbo-0125", stream=False, want_usage=False
    )
    content = batch_openai.input_file([("request-1", request.body)])
    assert content.endswith(b"\n") and content.count(b"\n") == 1
    assert orjson.loads(content) == DOC_INPUT_LINE


def test_multipart_carries_purpose_and_file() -> None:
    body, content_type = batch_openai.multipart(b'{"a":1}\n', "XyZ")
    assert content_type == "multipart/form-data; boundary=XyZ"
    assert body == (
        b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="batch.jsonl"\r\n'
        b'Content-Type: application/jsonl\r\n\r\n{"a":1}\n\r\n--XyZ--\r\n'
    )


def test_create_body() -> None:
    assert orjson.loads(batch_openai.create_body("file-abc123", {"job": "nightly"})) == {
        "input_file_id": "file-abc123",
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        "metadata": {"job": "nightly"},
    }


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        (DOC_VALIDATING, ("running", 0, 0, 0)),
        ({**DOC_COMPLETED, "status": "in_progress"}, ("running", 95, 5, 100)),
        ({**DOC_COMPLETED, "status": "finalizing"}, ("running", 95, 5, 100)),
        ({**DOC_COMPLETED, "status": "cancelling"}, ("running", 95, 5, 100)),
        (DOC_COMPLETED, ("ended", 95, 5, 100)),
        ({**DOC_COMPLETED, "status": "failed"}, ("failed", 95, 5, 100)),
        ({**DOC_COMPLETED, "status": "expired"}, ("expired", 95, 5, 100)),
        ({**DOC_COMPLETED, "status": "cancelled"}, ("cancelled", 95, 5, 100)),
        ({**DOC_COMPLETED, "request_counts": None}, ("ended", 0, 0, 0)),
    ],
)
def test_progress(batch: dict[str, Any], expected: tuple[str, int, int, int]) -> None:
    p = batch_openai.progress(orjson.dumps(batch), "up")
    assert (p.status, p.completed, p.failed, p.total) == expected


@pytest.mark.parametrize("raw", [b"[]", b"nope", orjson.dumps({**DOC_COMPLETED, "status": "paused"})])
def test_a_batch_object_that_is_not_one_is_the_upstreams_fault(raw: bytes) -> None:
    with pytest.raises(UpstreamError) as caught:
        batch_openai.progress(raw, "up")
    assert caught.value.status == 502 and caught.value.code == "upstream_bad_response"


def test_result_files() -> None:
    assert batch_openai.result_files(orjson.dumps(DOC_COMPLETED), "up") == ["file-cvaTdG", "file-HOWS94"]
    assert batch_openai.result_files(orjson.dumps(DOC_VALIDATING), "up") == []


def collect(raw: bytes) -> dict[str, Any]:
    def translate(body: bytes) -> Translated:
        return ADAPTER.chat_response(body, UpstreamRequest("http://up/v1/chat/completions", b""))

    return {r.custom_id: r for r in batch_openai.results(raw, "up", translate, ADAPTER.error)}


def test_documented_output_lines_are_keyed_by_custom_id() -> None:
    found = collect(DOC_OUTPUT)
    assert list(found) == ["request-2", "request-1"]
    first = found["request-1"]
    assert first.status == 200 and not first.retryable
    assert first.body["choices"][0]["message"]["content"] == "Hello! How can I assist you today?"
    assert first.usage == Usage(prompt_tokens=20, completion_tokens=9)
    assert found["request-2"].usage == Usage(prompt_tokens=22, completion_tokens=2)


@pytest.mark.parametrize(
    ("line", "status", "code", "retryable"),
    [
        (DOC_EXPIRED_LINE, None, "batch_expired", True),
        (DOC_EXPIRED_LINE.replace(b"batch_expired", b"batch_cancelled"), None, "batch_cancelled", True),
        (REFUSED_LINE, 400, "integer_below_min_value", False),
        (
            b'{"custom_id": "x", "response": {"status_code": 500, "body": {"error": {"message": "boom",'
            b' "type": "server_error"}}}, "error": null}',
            502,
            "upstream_error",
            True,
        ),
        (
            b'{"custom_id": "x", "response": {"status_code": 429, "body": {"error": {"message": "slow",'
            b' "type": "requests"}}}, "error": null}',
            429,
            "rate_limit_exceeded",
            True,
        ),
        (
            b'{"custom_id": "x", "response": null, "error": {"code": "weird", "message": "?"}}',
            502,
            "weird",
            True,
        ),
        (  # a 200 whose body is no completion: the adapter's check holds in a batch too
            b'{"custom_id": "x", "response": {"status_code": 200, "body": {"error": "no"}}, "error": null}',
            502,
            "upstream_bad_response",
            True,
        ),
    ],
)
def test_failed_lines(line: bytes, status: int | None, code: str | None, retryable: bool) -> None:
    [result] = collect(line).values()
    assert result.status == status
    assert result.body["error"]["code"] == code
    assert result.retryable is retryable
    assert result.usage is None


@pytest.mark.parametrize(
    "raw",
    [b"not json\n", b'{"response": null}\n', b'{"custom_id": "x", "response": {"status_code": "200"}}\n'],
)
def test_a_results_file_that_is_not_one_is_the_upstreams_fault(raw: bytes) -> None:
    with pytest.raises(UpstreamError):
        collect(raw)
