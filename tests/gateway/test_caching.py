"""The exact-match response cache: hits are free, flagged, and shared through Redis."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from conftest import MASTER_KEY, REDIS_URL, Gateway, Mock, start_gateway, start_mock


def _config(mock: Mock, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {"p": {"style": "openai", "base_url": f"{mock.url}/v1", "api_key": "sk-x"}},
        "models": {
            "cached": {
                "cache_ttl_s": 60,
                "baseline": "plain",
                "deployments": [{"provider": "p", "model": "m", "price": {"input": 1, "output": 1}}],
            },
            "plain": {"deployments": [{"provider": "p", "model": "m", "price": {"input": 5, "output": 5}}]},
        },
        "state": state,
    }


@pytest.fixture(scope="module")
def setup(logs: Path) -> Iterator[tuple[Mock, Gateway, Gateway]]:
    mock = start_mock("openai", logs)
    state = {
        "redis_url": REDIS_URL,
        "redis_prefix": f"hedge-test-{secrets.token_hex(4)}:",
        "flush_interval_s": 0.1,
    }
    memory = start_gateway(_config(mock, {"flush_interval_s": 0.1}), logs)
    shared = start_gateway(_config(mock, {**state, "dir": str(logs / "cache-shared")}), logs)
    yield mock, memory, shared
    memory.stop()
    shared.stop()
    mock.stop()


def _ask(gw: Gateway, model: str, text: str, **extra: Any) -> Any:
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], **extra
    )


def test_second_identical_request_is_a_free_hit(setup: tuple[Mock, Gateway, Gateway]) -> None:
    mock, gw, _ = setup
    text = "cache me " + secrets.token_hex(4)
    before = mock.stats()["requests"]
    first = _ask(gw, "cached", text)
    second = _ask(gw, "cached", text)
    assert first.headers["x-hedge-cache"] == "miss" and second.headers["x-hedge-cache"] == "hit"
    assert mock.stats()["requests"] == before + 1
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert float(second.headers["x-hedge-cost-usd"]) == 0 < float(first.headers["x-hedge-cost-usd"])
    other = _ask(gw, "cached", text, temperature=0.5)
    assert other.headers["x-hedge-cache"] == "miss", "a different request is a different entry"
    spend = httpx.get(
        f"{gw.url}/admin/spend?by=alias&since=1h", headers={"authorization": f"Bearer {MASTER_KEY}"}
    ).json()
    row = next(r for r in spend["rows"] if r["group"] == "cached")
    assert row["requests"] == 3
    assert row["savings_usd"] > 0


def test_per_request_cache_choice(setup: tuple[Mock, Gateway, Gateway]) -> None:
    _, gw, _ = setup
    text = "opt in " + secrets.token_hex(4)
    assert "x-hedge-cache" not in _ask(gw, "plain", text).headers
    _ask(gw, "plain", text, extra_body={"hedge": {"cache": True}})
    assert _ask(gw, "plain", text, extra_body={"hedge": {"cache": True}}).headers["x-hedge-cache"] == "hit"
    assert "x-hedge-cache" not in _ask(gw, "cached", text, extra_body={"hedge": {"cache": False}}).headers
    streamed = _ask(gw, "cached", text, stream=True)
    assert "x-hedge-cache" not in streamed.headers, "streams are never cached"


def test_redis_cache_is_shared_between_replicas(setup: tuple[Mock, Gateway, Gateway], logs: Path) -> None:
    mock, _, shared = setup
    text = "shared " + secrets.token_hex(4)
    assert _ask(shared, "cached", text).headers["x-hedge-cache"] == "miss"
    state = yaml.safe_load(shared.config_path.read_text())["state"]
    replica = start_gateway(_config(mock, {**state, "dir": str(logs / "cache-replica")}), logs)
    isolated = start_gateway(
        _config(mock, {"redis_url": REDIS_URL, "redis_prefix": "hedge-test-other:"}), logs
    )
    try:
        assert _ask(replica, "cached", text).headers["x-hedge-cache"] == "hit", "the other replica's answer"
        assert _ask(isolated, "cached", text).headers["x-hedge-cache"] == "miss", (
            "another prefix, another cache"
        )
    finally:
        replica.stop()
        isolated.stop()
