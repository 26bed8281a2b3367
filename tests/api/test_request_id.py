"""Every answer carries ``x-request-id`` (equal to ``x-hedge-request-id``), which the OpenAI SDK
exposes as ``_request_id`` and on its errors as ``request_id``."""

from __future__ import annotations

from typing import Any

import openai
import pytest

MESSAGES = [{"role": "user", "content": "hi"}]


def test_a_completion_carries_the_request_id(client: Any) -> None:
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
    completion = raw.parse()
    assert completion._request_id == raw.headers["x-hedge-request-id"]
    assert completion._request_id.startswith("req_")


def test_a_stream_carries_the_request_id(client: Any) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="chat", messages=MESSAGES, stream=True
    ) as raw:
        assert raw.headers["x-request-id"] == raw.headers["x-hedge-request-id"]
        assert list(raw.iter_lines())


def test_an_error_carries_the_request_id(client: Any) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-alias", messages=MESSAGES)
    assert caught.value.request_id == caught.value.response.headers["x-hedge-request-id"]
    assert caught.value.request_id
