"""``POST /v1/completions`` through a real gateway, driven by the official ``openai`` SDK's
``client.completions``, against OpenAI-, Anthropic- and Gemini-style upstreams.

Every mock answers ``<model> says: <last user message>`` (one word is one token), so what the
client reads tells whether the prompt went upstream as the user's message and came back as
the completion's text, whole and streamed, on every wire format.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import MASTER_KEY, Gateway, Mock, start_gateway

STYLES: dict[str, tuple[str, str]] = {
    "oa": ("openai", "gpt-4o"),
    "an": ("anthropic", "claude-sonnet-4"),
    "ge": ("gemini", "gemini-2.5-flash"),
}
"""alias -> (provider, upstream model); each provider is named after its wire format."""
ALIASES = list(STYLES)
PRICE = {"input": 2.0, "output": 8.0}
"""USD per million tokens, the same for every deployment."""
N_STYLES = {"oa", "ge"}
"""The styles with several choices per request (Anthropic's API has no ``n``)."""


@pytest.fixture(scope="module")
def gateway(style_mocks: dict[str, Mock], logs: Path) -> Iterator[Gateway]:
    providers = {
        name: {
            "style": name,
            "base_url": f"{m.url}/v1" if name == "openai" else m.url,
            "api_key": f"k-{name}",
        }
        for name, m in style_mocks.items()
    }
    models = {
        alias: {"deployments": [{"provider": provider, "model": model, "price": PRICE}]}
        for alias, (provider, model) in STYLES.items()
    }
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": providers,
        "models": models,
        "resilience": {"max_attempts": 1},
    }
    gw = start_gateway(config, logs)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)


def _cost(usage: Any) -> float:
    return float(usage.prompt_tokens * PRICE["input"] + usage.completion_tokens * PRICE["output"]) / 1_000_000


def _streamed(client: openai.OpenAI, **params: Any) -> tuple[list[Any], Any]:
    raw = client.completions.with_raw_response.create(stream=True, **params)
    assert raw.headers["content-type"].startswith("text/event-stream")
    return list(raw.parse()), raw.headers


def _texts(chunks: list[Any]) -> dict[int, str]:
    """Each choice's text, joined from the stream's chunks."""
    texts: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
    return texts


def _finishes(chunks: list[Any]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            if choice.finish_reason is not None:
                out.setdefault(choice.index, []).append(choice.finish_reason)
    return out


# -- whole and streamed ------------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ALIASES)
def test_whole(client: openai.OpenAI, alias: str) -> None:
    provider, model = STYLES[alias]
    raw = client.completions.with_raw_response.create(model=alias, prompt="Say hello to Paris")
    completion = raw.parse()
    assert completion.object == "text_completion"
    assert completion.id.startswith("cmpl-")
    assert completion.model == model
    assert isinstance(completion.created, int) and completion.created > 0
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert (choice.index, choice.text, choice.finish_reason) == (
        0,
        f"{model} says: Say hello to Paris",
        "stop",
    )
    assert choice.logprobs is None
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 6  # one word is one token
    assert completion.usage.prompt_tokens > 0
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert raw.headers["x-hedge-provider"] == provider
    assert raw.headers["x-hedge-model"] == model
    assert float(raw.headers["x-hedge-cost-usd"]) == pytest.approx(_cost(completion.usage), abs=1e-8)
    assert _cost(completion.usage) > 0
    assert completion._request_id == raw.headers["x-hedge-request-id"]


@pytest.mark.parametrize("alias", ALIASES)
def test_streamed_with_usage(client: openai.OpenAI, alias: str) -> None:
    provider, model = STYLES[alias]
    prompt = "Say hello to Paris"
    chunks, headers = _streamed(client, model=alias, prompt=prompt, stream_options={"include_usage": True})
    assert headers["x-hedge-provider"] == provider
    assert len(chunks) > 2, "the text arrives in pieces"
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("cmpl-")
    assert all(c.object == "text_completion" and c.model == model for c in chunks)
    *pieces, last = chunks
    assert all(c.usage is None and len(c.choices) == 1 for c in pieces), "usage comes in the last chunk only"
    assert _texts(pieces) == {0: f"{model} says: {prompt}"}
    assert _finishes(pieces) == {0: ["stop"]}
    assert pieces[-1].choices[0].finish_reason == "stop"
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == 6
    assert (last.usage.model_extra or {})["hedge_cost_usd"] == pytest.approx(_cost(last.usage), abs=1e-9)
    whole = client.completions.create(model=alias, prompt=prompt)
    assert whole.usage is not None
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (
        last.usage.prompt_tokens,
        last.usage.completion_tokens,
    )


@pytest.mark.parametrize("alias", ALIASES)
def test_streamed_without_usage(client: openai.OpenAI, alias: str) -> None:
    model = STYLES[alias][1]
    chunks, _ = _streamed(client, model=alias, prompt="no usage please")
    assert chunks and all(len(c.choices) == 1 and c.usage is None for c in chunks)
    assert _texts(chunks) == {0: f"{model} says: no usage please"}
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_the_stream_ends_with_done(gateway: Gateway) -> None:
    """On the wire: legacy chunks only, then ``data: [DONE]``."""
    body = {"model": "an", "prompt": "hi", "stream": True}
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    with httpx.stream("POST", f"{gateway.base_url}/completions", json=body, headers=headers, timeout=20) as r:
        assert r.status_code == 200
        events = [line for line in r.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith('data: {"id":"cmpl-') and '"object":"text_completion"' in e for e in events[:-1])


# -- parameters --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("alias", ALIASES)
def test_echo(client: openai.OpenAI, alias: str, stream: bool) -> None:
    model = STYLES[alias][1]
    prompt = "Repeat me"
    if stream:
        chunks, _ = _streamed(client, model=alias, prompt=prompt, echo=True)
        text = _texts(chunks)[0]
        assert chunks[0].choices[0].text.startswith(prompt), "the prompt comes first"
    else:
        text = client.completions.create(model=alias, prompt=prompt, echo=True).choices[0].text
    assert text == f"{prompt}{model} says: {prompt}"


@pytest.mark.parametrize("stop", ["STOP", ["STOP", "NEVER"]], ids=["string", "list"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("alias", ALIASES)
def test_stop(client: openai.OpenAI, alias: str, stream: bool, stop: str | list[str]) -> None:
    model = STYLES[alias][1]
    prompt = "alpha beta STOP gamma"
    if stream:
        chunks, _ = _streamed(client, model=alias, prompt=prompt, stop=stop)
        text, finish = _texts(chunks)[0], _finishes(chunks)[0]
    else:
        choice = client.completions.create(model=alias, prompt=prompt, stop=stop).choices[0]
        text, finish = choice.text, [choice.finish_reason]
    assert text == f"{model} says: alpha beta "
    assert finish == ["stop"]


@pytest.mark.parametrize("alias", ALIASES)
def test_max_tokens_defaults_to_the_legacy_16(
    client: openai.OpenAI, alias: str, style_mocks: dict[str, Mock]
) -> None:
    """No ``max_tokens``: 16 tokens, as the legacy API promises, not the upstream's default."""
    provider, model = STYLES[alias]
    words = [f"w{i}" for i in range(30)]
    completion = client.completions.create(model=alias, prompt=" ".join(words))
    choice = completion.choices[0]
    assert choice.finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 16
    assert choice.text == f"{model} says: " + " ".join(words[:14]) + " "  # "<model>", "says:", then 14 words
    sent = style_mocks[provider].stats()["last_body"]
    limit = sent["generationConfig"]["maxOutputTokens"] if provider == "gemini" else sent["max_tokens"]
    assert limit == 16

    explicit = client.completions.create(model=alias, prompt=" ".join(words), max_tokens=40)
    assert explicit.choices[0].finish_reason == "stop"
    assert explicit.choices[0].text == f"{model} says: " + " ".join(words)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("alias", ALIASES)
def test_n(client: openai.OpenAI, alias: str, stream: bool) -> None:
    model = STYLES[alias][1]
    params: dict[str, Any] = {"model": alias, "prompt": "twice please", "n": 2, "echo": True}
    if alias not in N_STYLES:
        with pytest.raises(openai.BadRequestError) as caught:
            client.completions.create(stream=stream, **params)
        assert caught.value.status_code == 400
        assert caught.value.param == "n"
        assert "cannot honour 'n'" in caught.value.message
        return
    expected = f"twice please{model} says: twice please"
    if stream:
        chunks, _ = _streamed(client, **params)
        assert _texts(chunks) == {0: expected, 1: expected}
        assert _finishes(chunks) == {0: ["stop"], 1: ["stop"]}
    else:
        choices = client.completions.create(**params).choices
        assert [(c.index, c.text, c.finish_reason) for c in choices] == [
            (0, expected, "stop"),
            (1, expected, "stop"),
        ]


def test_logprobs_are_asked_of_an_openai_upstream(
    client: openai.OpenAI, style_mocks: dict[str, Mock]
) -> None:
    """Legacy ``logprobs`` k is chat's ``logprobs`` with k alternatives; the mock gives none back,
    so the choice says null rather than something made up."""
    completion = client.completions.create(model="oa", prompt="weigh my words", logprobs=2)
    sent = style_mocks["openai"].stats()["last_body"]
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
    assert "prompt" not in sent and "echo" not in sent
    assert completion.choices[0].logprobs is None


@pytest.mark.parametrize("alias", ["an", "ge"])
def test_logprobs_are_refused_where_the_upstream_has_none(client: openai.OpenAI, alias: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model=alias, prompt="weigh my words", logprobs=1)
    assert caught.value.param == "logprobs"


# -- refusals and errors -----------------------------------------------------------------------------------

REFUSED: list[tuple[str, dict[str, Any], str, str]] = [
    # (case, parameters, param, words of the message)
    ("suffix", {"suffix": " the end."}, "suffix", "fill in the middle"),
    ("best_of", {"best_of": 3}, "best_of", "'best_of' 3"),
    ("several prompts", {"prompt": ["one", "two"]}, "prompt", "2 prompts"),
    ("token ids", {"prompt": [1, 2, 3]}, "prompt", "token ids"),
    (
        "an unknown parameter",
        {"extra_body": {"tools": []}},
        "tools",
        "Unrecognized request argument supplied: tools",
    ),
    ("echo with logprobs", {"echo": True, "logprobs": 1}, "logprobs", "not of the prompt"),
    ("max_tokens 0", {"max_tokens": 0}, "max_tokens", "at least 1"),
    ("a bad temperature", {"temperature": 3}, "temperature", "between 0 and 2"),
    (
        "stream_options without a stream",
        {"stream_options": {"include_usage": True}},
        "stream_options",
        "stream",
    ),
]


@pytest.mark.parametrize(("params", "param", "words"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
@pytest.mark.parametrize("alias", ALIASES)
def test_refused_parameters(
    client: openai.OpenAI,
    style_mocks: dict[str, Mock],
    alias: str,
    params: dict[str, Any],
    param: str,
    words: str,
) -> None:
    provider = STYLES[alias][0]
    before = style_mocks[provider].stats()["requests"]
    body = {"model": alias, "prompt": "hello", **params}
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(**body)
    error = caught.value
    assert error.status_code == 400
    assert error.type == "invalid_request_error"
    assert error.param == param
    assert words in error.message
    assert error.request_id == error.response.headers["x-hedge-request-id"]
    assert style_mocks[provider].stats()["requests"] == before, "refused before anything went upstream"


def test_unknown_model_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="no-such-alias", prompt="hi")
    assert caught.value.response.json()["error"]["code"] == "model_not_found"


def test_bad_key_is_a_401(gateway: Gateway) -> None:
    bad = openai.OpenAI(base_url=gateway.base_url, api_key="sk-wrong", max_retries=0, timeout=20)
    with pytest.raises(openai.AuthenticationError):
        bad.completions.create(model="oa", prompt="hi")


# -- routes and the record ---------------------------------------------------------------------------------


def test_the_route_without_v1(gateway: Gateway) -> None:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    r = httpx.post(
        f"{gateway.url}/completions", json={"model": "ge", "prompt": "hi"}, headers=headers, timeout=20
    )
    assert r.status_code == 200
    assert r.json()["object"] == "text_completion"
    assert r.json()["choices"][0]["text"] == "gemini-2.5-flash says: hi"


def test_recorded_as_completions(client: openai.OpenAI, gateway: Gateway) -> None:
    """The metrics (like the ledger) name the endpoint ``completions``, not ``chat``."""
    client.completions.create(model="an", prompt="count me")

    def counted() -> bool:
        text = httpx.get(f"{gateway.url}/metrics", timeout=10).text
        return any(
            line.startswith("hedge_requests_total{")
            and 'endpoint="completions"' in line
            and 'alias="an"' in line
            for line in text.splitlines()
        )

    deadline = time.monotonic() + 10
    while not counted():
        assert time.monotonic() < deadline, "no hedge_requests_total sample for endpoint completions"
        time.sleep(0.05)
