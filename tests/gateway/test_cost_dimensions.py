"""Every price dimension through a real gateway, with the official OpenAI SDK: cache writes and
reads (an Anthropic-style upstream), reasoning tokens and the flex service tier (an OpenAI-style
one), a deployment without a price and one without usage flagged in the ledger and the dashboard,
context windows steering the plan, and ``pricing.on_missing: reject`` refusing to start."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from conftest import MASTER_KEY, Gateway, Mock, start_gateway, start_mock

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
GPT5 = {
    "input": 1.25,
    "output": 10.0,
    "cached_input": 0.125,
    "service_tiers": {"flex": {"input": 0.625, "output": 5.0, "cached_input": 0.0625}},
}
FLASH = {"input": 0.3, "output": 2.5, "service_tiers": {"flex": {"input": 0.15, "output": 1.25}}}
CLAUDE = {"input": 3.0, "output": 15.0, "cached_input": 0.3, "cache_write_input": 3.75}


@pytest.fixture(scope="module")
def mocks(logs: Path) -> Iterator[dict[str, Mock]]:
    started = {
        "oa": start_mock("openai", logs),
        "an": start_mock("anthropic", logs, "--quirk", "cache-hit", "--quirk", "cache-write"),
        "nu": start_mock("openai", logs, "--quirk", "no-stream-usage"),
        "gm": start_mock("gemini", logs),
    }
    yield started
    for m in started.values():
        m.stop()


def _config(mocks: dict[str, Mock], **extra: Any) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "oa": {"style": "openai", "base_url": f"{mocks['oa'].url}/v1", "api_key": "sk-a"},
            "an": {"style": "anthropic", "base_url": mocks["an"].url, "api_key": "sk-b"},
            "nu": {"style": "openai", "base_url": f"{mocks['nu'].url}/v1", "api_key": "sk-c"},
            "gm": {"style": "gemini", "base_url": mocks["gm"].url, "api_key": "k"},
            "gd": {"style": "gemini", "base_url": mocks["gm"].url, "api_key": "k", "on_unsupported": "drop"},
        },
        "models": {
            "gpt": {"deployments": [{"provider": "oa", "model": "gpt-5", "price": GPT5}]},
            "claude": {"deployments": [{"provider": "an", "model": "claude-sonnet-4-5", "price": CLAUDE}]},
            "homemade": {"deployments": [{"provider": "oa", "model": "home-made-1"}]},
            "nousage": {"deployments": [{"provider": "nu", "model": "gpt-4o"}]},
            "gem": {"deployments": [{"provider": "gm", "model": "gemini-2.5-flash", "price": FLASH}]},
            "gemdrop": {"deployments": [{"provider": "gd", "model": "gemini-2.5-flash", "price": FLASH}]},
            "sized": {
                "strategy": "ordered",
                "deployments": [
                    {"provider": "oa", "model": "tiny-window", "context_window": 50, "price": GPT5},
                    {"provider": "oa", "model": "gpt-5", "price": GPT5},
                ],
            },
        },
        **extra,
    }


@pytest.fixture(scope="module")
def gateway(mocks: dict[str, Mock], logs: Path) -> Iterator[Gateway]:
    gw = start_gateway(_config(mocks), logs)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=MASTER_KEY, max_retries=0)


def _cost(raw: Any) -> float:
    return float(raw.headers["x-hedge-cost-usd"])


def test_cache_writes_and_reads_are_priced_apart(client: openai.OpenAI, gateway: Gateway) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="claude", messages=[{"role": "user", "content": "one two three four five six seven eight"}]
    )
    usage = raw.parse().usage
    assert usage is not None
    prompt = usage.prompt_tokens
    read, written = prompt // 2, prompt // 4  # what the mock's quirks report
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == read
    expected = (
        (prompt - read - written) * 3.0 + read * 0.3 + written * 3.75 + usage.completion_tokens * 15
    ) / 1e6
    assert _cost(raw) == pytest.approx(expected, abs=1e-8)
    spend = httpx.get(f"{gateway.url}/admin/spend?by=alias&since=1h", headers=AUTH).json()
    row = next(r for r in spend["rows"] if r["group"] == "claude")
    assert (row["cached_tokens"], row["cache_write_tokens"]) == (read, written)
    assert row["charges_usd"]["cache_write"] == pytest.approx(written * 3.75 / 1e6)
    assert row["charges_usd"]["cache_read"] == pytest.approx(read * 0.3 / 1e6)


def test_flex_tier_and_reasoning_tokens(client: openai.OpenAI, gateway: Gateway) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt",
        messages=[{"role": "user", "content": "think about it"}],
        service_tier="flex",
        reasoning_effort="low",
    )
    done = raw.parse()
    assert done.service_tier == "flex"
    usage = done.usage
    assert usage is not None and usage.completion_tokens_details is not None
    reasoning = usage.completion_tokens_details.reasoning_tokens
    assert reasoning == 16
    # flex prices; reasoning tokens are part of the completion, priced as (flex) output
    assert _cost(raw) == pytest.approx(
        (usage.prompt_tokens * 0.625 + usage.completion_tokens * 5.0) / 1e6, abs=1e-8
    )
    spend = httpx.get(f"{gateway.url}/admin/spend?by=alias&since=1h", headers=AUTH).json()
    row = next(r for r in spend["rows"] if r["group"] == "gpt")
    assert row["reasoning_tokens"] == 16
    assert row["charges_usd"]["reasoning"] == pytest.approx(16 * 5.0 / 1e6)


def test_unpriced_and_usageless_requests_are_flagged(client: openai.OpenAI, gateway: Gateway) -> None:
    assert "oa/home-made-1" in gateway.log.read_text()  # named at start-up
    before = httpx.get(f"{gateway.url}/admin/dashboard/summary?since=1h", headers=AUTH).json()
    raw = client.chat.completions.with_raw_response.create(
        model="homemade", messages=[{"role": "user", "content": "hello"}]
    )
    assert _cost(raw) == 0.0
    chunks = list(
        client.chat.completions.create(
            model="nousage", messages=[{"role": "user", "content": "hello"}], stream=True
        )
    )
    assert chunks
    after = httpx.get(f"{gateway.url}/admin/dashboard/summary?since=1h", headers=AUTH).json()
    assert after["price_missing"] == before["price_missing"] + 1  # gpt-4o: the catalogue prices it
    assert after["usage_missing"] == before["usage_missing"] + 1
    log = httpx.get(f"{gateway.url}/admin/dashboard/requests?since=1h&alias=homemade", headers=AUTH).json()
    assert log["rows"][0]["price_missing"] is True and log["rows"][0]["usage_missing"] is False
    check = subprocess.run(
        [sys.executable, "-m", "hedge", "prices", "check", "--config", str(gateway.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 1
    assert "oa/home-made-1: NO PRICE" in check.stdout
    assert "nu/gpt-4o: 1 of 1 requests in the last 7 days came without usage" in check.stderr


def test_a_prompt_past_a_context_window_skips_that_deployment(client: openai.OpenAI) -> None:
    short = client.chat.completions.with_raw_response.create(
        model="sized", messages=[{"role": "user", "content": "hi"}]
    )
    assert short.headers["x-hedge-model"] == "tiny-window"
    long = client.chat.completions.with_raw_response.create(
        model="sized", messages=[{"role": "user", "content": "word " * 400}]
    )
    assert long.headers["x-hedge-model"] == "gpt-5"


def test_on_missing_reject_refuses_to_start(mocks: dict[str, Mock], tmp_path: Path) -> None:
    config = _config(mocks, pricing={"on_missing": "reject"}, state={"dir": str(tmp_path / "state")})
    path = tmp_path / "hedge.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "hedge", "serve", "--config", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "oa/home-made-1" in result.stderr and "reject" in result.stderr


def test_a_tier_an_upstream_lacks_is_refused_or_dropped_and_not_priced(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="gem", messages=[{"role": "user", "content": "hi"}], service_tier="flex"
        )
    assert "service_tier" in str(refused.value)
    raw = client.chat.completions.with_raw_response.create(
        model="gemdrop", messages=[{"role": "user", "content": "hi"}], service_tier="flex"
    )
    assert raw.headers["x-hedge-dropped-params"] == "service_tier"
    usage = raw.parse().usage
    assert usage is not None
    # served in the standard tier, so priced at the standard price, not flex's
    assert _cost(raw) == pytest.approx(
        (usage.prompt_tokens * 0.3 + usage.completion_tokens * 2.5) / 1e6, abs=1e-8
    )
