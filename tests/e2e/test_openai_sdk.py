"""The gateway through the official ``openai`` SDK: a drop-in ``base_url`` swap."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import openai
import pytest

from conftest import MASTER_KEY, Gateway, Mock

MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello there, gateway"},
]


def _expected_cost(prompt: int, completion: int, price_in: float, price_out: float) -> float:
    return (prompt * price_in + completion * price_out) / 1_000_000


def test_plain_completion_names_model_and_prices_usage(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="premium", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == "gpt-4o says: Hello there, gateway"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 5
    assert raw.headers["x-hedge-provider"] == "premium"
    assert raw.headers["x-hedge-model"] == "gpt-4o"
    assert raw.headers["x-hedge-request-id"].startswith("req_")
    cost = _expected_cost(completion.usage.prompt_tokens, completion.usage.completion_tokens, 2.5, 10.0)
    assert float(raw.headers["x-hedge-cost-usd"]) == pytest.approx(cost, abs=1e-8)


def test_streaming_matches_plain_and_reports_cost_in_usage_chunk(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="premium", messages=MESSAGES)
    raw = client.chat.completions.with_raw_response.create(
        model="premium", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers["x-hedge-provider"] == "premium"
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    assert plain.usage is not None and usage.prompt_tokens == plain.usage.prompt_tokens
    cost = _expected_cost(usage.prompt_tokens, usage.completion_tokens, 2.5, 10.0)
    assert (usage.model_extra or {})["hedge_cost_usd"] == pytest.approx(cost, abs=1e-9)


def test_stream_without_include_usage_hides_forced_usage(gateway: Gateway) -> None:
    body = {"model": "premium", "messages": MESSAGES, "stream": True}
    with httpx.stream(
        "POST",
        f"{gateway.base_url}/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {MASTER_KEY}"},
    ) as resp:
        text = resp.read().decode()
    events = [line for line in text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert all('"usage"' not in e for e in events), "client did not ask for usage"
    assert len(events) > 3


def test_stream_honours_max_tokens_and_stop(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="premium",
        messages=[{"role": "user", "content": "one two three four five six"}],
        max_tokens=3,
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "gpt-4o says: one "
    assert chunks[-1].choices[0].finish_reason == "length"
    stopped = client.chat.completions.create(
        model="premium", messages=[{"role": "user", "content": "alpha beta STOP gamma"}], stop=["STOP"]
    )
    assert stopped.choices[0].message.content == "gpt-4o says: alpha beta "
    assert stopped.choices[0].finish_reason == "stop"


def test_embeddings_through_sdk(client: openai.OpenAI, cheap: Mock) -> None:
    raw = client.embeddings.with_raw_response.create(model="embed", input=["first text", "second"])
    result = raw.parse()
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in result.data)
    assert result.data[0].embedding != result.data[1].embedding
    assert raw.headers["x-hedge-model"] == "text-embedding-3-small"
    assert float(raw.headers["x-hedge-cost-usd"]) == pytest.approx(3 * 0.02 / 1_000_000)
    assert cheap.stats()["last_body"]["model"] == "text-embedding-3-small"


def test_models_lists_aliases(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert ids == {"chat", "premium", "embed", "slow", "limited"}
    assert client.models.retrieve("chat").id == "chat"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_unknown_parameters_pass_through_with_provider_key(client: openai.OpenAI, premium: Mock) -> None:
    client.chat.completions.create(
        model="premium",
        messages=MESSAGES,
        seed=7,
        # Not top_k: the mock refuses it as OpenAI does ("Unrecognized request argument supplied").
        extra_body={"custom_flag": {"nested": [1, 2]}, "hedge": {"order": ["x"]}},
    )
    stats = premium.stats()
    body = stats["last_body"]
    assert body["model"] == "gpt-4o"
    assert body["custom_flag"] == {"nested": [1, 2]} and body["seed"] == 7
    assert "hedge" not in body, "the gateway's own extension is not sent upstream"
    assert body["messages"] == MESSAGES
    assert stats["last_headers"]["authorization"] == "Bearer sk-b"
    assert MASTER_KEY not in str(stats["last_headers"])


def test_weighted_split_is_80_20(client: openai.OpenAI) -> None:
    seen: Counter[str] = Counter()
    for _ in range(300):
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=1
        )
        seen[raw.headers["x-hedge-provider"]] += 1
    assert seen["cheap"] + seen["premium"] == 300
    assert 0.77 <= seen["cheap"] / 300 <= 0.83, seen


def test_missing_or_wrong_key_is_401(gateway: Gateway) -> None:
    bad = openai.OpenAI(base_url=gateway.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.chat.completions.create(model="chat", messages=MESSAGES)
    assert exc.value.code == "invalid_api_key"
    resp = httpx.post(f"{gateway.base_url}/chat/completions", json={"model": "chat", "messages": MESSAGES})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "missing_api_key"
    assert "x-hedge-request-id" in resp.headers


def test_unknown_alias_is_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="gpt-5-ultra", messages=MESSAGES)
    assert exc.value.code == "model_not_found"
    assert exc.value.param == "model"
    assert "chat" in exc.value.message


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": "chat"}, "messages", "missing_required_parameter"),
        ({"messages": MESSAGES}, "model", "missing_required_parameter"),
        ({"model": "chat", "messages": []}, "messages", "empty_array"),
        ({"model": "chat", "messages": "hi"}, "messages", "invalid_type"),
        ({"model": "chat", "messages": [{"content": "x"}]}, "messages[0].role", "missing_required_parameter"),
        (
            {"model": "chat", "messages": [{"role": "wizard", "content": "x"}]},
            "messages[0].role",
            "invalid_value",
        ),
        ({"model": "chat", "messages": MESSAGES, "temperature": "hot"}, "temperature", "invalid_type"),
        ({"model": "chat", "messages": MESSAGES, "temperature": 3}, "temperature", "invalid_value"),
        ({"model": "chat", "messages": MESSAGES, "max_tokens": True}, "max_tokens", "invalid_type"),
        ({"model": "chat", "messages": MESSAGES, "stream": "yes"}, "stream", "invalid_type"),
        (
            {"model": "chat", "messages": MESSAGES, "stop": ["a", "b", "c", "d", "e"]},
            "stop",
            "array_above_max_length",
        ),
        (
            {"model": "chat", "messages": MESSAGES, "stream_options": {"include_usage": True}},
            "stream_options",
            None,
        ),
        ({"model": 42, "messages": MESSAGES}, "model", "invalid_type"),
    ],
)
def test_bad_input_is_400_naming_the_parameter(
    client: openai.OpenAI, body: dict[str, Any], param: str, code: str | None
) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.post("/chat/completions", body=body, cast_to=object)
    assert exc.value.status_code == 400
    assert exc.value.param == param
    if code is not None:
        assert exc.value.code == code


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"text"'])
def test_malformed_json_is_400(gateway: Gateway, raw: bytes) -> None:
    resp = httpx.post(
        f"{gateway.base_url}/chat/completions",
        content=raw,
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"},
    )
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["code"] == "invalid_json"


def test_body_over_limit_is_413(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x" * 100_000}])
    assert exc.value.status_code == 413
    assert exc.value.code == "request_too_large"


@pytest.mark.parametrize(
    ("upstream", "status", "exc_type"),
    [
        (500, 502, openai.InternalServerError),
        (503, 503, openai.InternalServerError),
        (429, 429, openai.RateLimitError),
    ],
)
def test_upstream_failure_maps_to_clear_status(
    client: openai.OpenAI, premium: Mock, upstream: int, status: int, exc_type: type[Exception]
) -> None:
    premium.configure(fail_rate=1.0, fail_status=upstream, retry_after=7)
    # 'limited' has a provider of its own: the 7 s cool-down after a 429 must not touch other tests.
    with pytest.raises(exc_type) as exc:
        client.chat.completions.create(model="limited", messages=MESSAGES)
    err = exc.value
    assert isinstance(err, openai.APIStatusError)
    assert err.status_code == status
    assert "limited" in err.message, "the message names the provider that failed"
    if upstream == 429:
        assert err.response.headers["retry-after"] == "7"


def test_upstream_timeout_is_504(client: openai.OpenAI, premium: Mock) -> None:
    premium.configure(
        fail_rate=1.0, fail_mode="hang"
    )  # the mock never answers: only the timeout can end this
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(model="slow", messages=MESSAGES)
    assert exc.value.status_code == 504
    assert exc.value.code == "upstream_timeout"


def test_upstream_unreachable_is_502(logs: Any, cheap: Mock) -> None:
    from conftest import free_port, start_gateway

    dead = free_port()
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {"gone": {"style": "openai", "base_url": f"http://127.0.0.1:{dead}/v1"}},
        "models": {"m": {"deployments": [{"provider": "gone", "model": "x"}]}},
    }
    gw = start_gateway(config, logs)
    try:
        client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0)
        with pytest.raises(openai.InternalServerError) as exc:
            client.chat.completions.create(model="m", messages=MESSAGES)
        assert exc.value.status_code == 502
        assert exc.value.code == "upstream_unreachable"
        assert "Traceback" not in gw.log.read_text()
    finally:
        gw.stop()


def test_stream_cut_by_upstream_ends_with_error_event(client: openai.OpenAI, premium: Mock) -> None:
    premium.configure(fail_rate=1.0, fail_mode="disconnect")
    stream = client.chat.completions.create(
        model="premium",
        messages=[{"role": "user", "content": "a long answer with many words to cut in half"}],
        stream=True,
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "premium" in exc.value.message
    assert "".join(received), "content before the cut was forwarded"


def test_client_disconnect_cancels_upstream(gateway: Gateway, premium: Mock) -> None:
    premium.configure(latency_ms=4000)
    before = premium.stats()["streams_cancelled"]
    body = {"model": "premium", "messages": [{"role": "user", "content": "w " * 40}], "stream": True}
    with httpx.stream(
        "POST",
        f"{gateway.base_url}/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {MASTER_KEY}"},
    ) as resp:
        first = next(resp.iter_raw())
        assert first.startswith(b"data: ")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and premium.stats()["streams_cancelled"] == before:
        time.sleep(0.05)
    stats = premium.stats()
    assert stats["streams_cancelled"] == before + 1
    assert stats["streams_completed"] == 0
    deadline = time.monotonic() + 2
    line = ""
    while time.monotonic() < deadline and not line:
        lines = gateway.log.read_text().splitlines()
        line = next((ln for ln in lines if " 499 " in ln and "stream" in ln and "usage estimated" in ln), "")
        time.sleep(0.05)
    assert line and "tokens=0+0" not in line, "a stream cut short is still booked (estimated)"


def test_health_unknown_route_and_method(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.url}/health").json()["status"] == "ok"
    resp = httpx.get(f"{gateway.url}/v1/nothing-here")
    assert resp.status_code == 404 and resp.json()["error"]["type"] == "invalid_request_error"
    resp = httpx.get(f"{gateway.base_url}/chat/completions")
    assert resp.status_code == 405 and "error" in resp.json()


def test_request_ids_are_unique(client: openai.OpenAI) -> None:
    ids = {
        client.chat.completions.with_raw_response.create(model="premium", messages=MESSAGES).headers[
            "x-hedge-request-id"
        ]
        for _ in range(5)
    }
    assert len(ids) == 5


def test_stream_without_upstream_usage_is_flagged(
    client: openai.OpenAI, premium: Mock, gateway: Gateway
) -> None:
    premium.configure(quirks=["no-stream-usage"])
    chunks = list(
        client.chat.completions.create(
            model="premium", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 0
    assert (usage.model_extra or {})["hedge_usage_missing"] is True
    assert "premium/gpt-4o sent no usage in its stream" in gateway.log.read_text()


def test_client_disconnect_before_the_answer_cancels_the_wait(gateway: Gateway, premium: Mock) -> None:
    premium.configure(latency_ms=3000)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gateway.base_url}/chat/completions",
            json={"model": "premium", "messages": MESSAGES},
            headers={"authorization": f"Bearer {MASTER_KEY}"},
            timeout=0.3,
        )
    deadline = time.monotonic() + 2
    line = ""
    while time.monotonic() < deadline and not line:
        line = next(
            (ln for ln in gateway.log.read_text().splitlines() if " 499 " in ln and "premium" in ln), ""
        )
        time.sleep(0.05)
    assert line, "the abandoned request is recorded as 499 well before the upstream's 3 s answer"
