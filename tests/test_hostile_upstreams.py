"""Upstreams that misbehave on purpose: echoed credentials, absurd usage, streams that never close,
bodies that expand without end. The gateway must contain each of them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import MASTER_KEY, Gateway, start_gateway
from hostile import HostileUpstream, hostile_upstream

SECRETS = {
    "openai": "sk-openai-provider-secret-0001",
    "anthropic": "sk-ant-provider-secret-0002",
    "gemini": "AIzaProviderSecret000000000003",
}
HEADER_SECRET = "org-header-secret-0004"


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileUpstream]:
    yield from hostile_upstream()


def _provider(style: str, url: str, **extra: Any) -> dict[str, Any]:
    return {
        "style": style,
        "base_url": url,
        "api_key": SECRETS[style],
        "headers": {"x-org-token": HEADER_SECRET},
        **extra,
    }


def _config(hostile: HostileUpstream, log_dir: Path) -> dict[str, Any]:
    providers: dict[str, Any] = {}
    models: dict[str, Any] = {}
    for style in ("openai", "anthropic", "gemini"):
        for mode in ("echo-auth", "echo-auth-stream", "echo-auth-late"):
            name = f"{style}-{mode}"
            providers[name] = _provider(style, hostile.url(mode, openai=style == "openai"))
            models[name] = {"deployments": [{"provider": name, "model": "m"}]}
    providers["done"] = _provider("openai", hostile.url("done-no-close"), timeout={"read": 30, "total": 60})
    models["done"] = {"deployments": [{"provider": "done", "model": "m"}]}
    providers["bomb"] = _provider("openai", hostile.url("gzip-bomb"), max_response_bytes=1024 * 1024)
    providers["huge"] = _provider("openai", hostile.url("huge-event"), max_event_bytes=1024 * 1024)
    providers["sane"] = _provider("openai", hostile.url("usage_10_5"))
    models["bounded"] = {
        "deployments": [
            {"provider": "bomb", "model": "m", "price": {"input": 1, "output": 1}},
            {"provider": "sane", "model": "m", "price": {"input": 1, "output": 1}},
        ],
        "strategy": "ordered",
    }
    models["bounded-stream"] = {
        "deployments": [
            {"provider": "huge", "model": "m", "price": {"input": 1, "output": 1}},
            {"provider": "sane", "model": "m", "price": {"input": 1, "output": 1}},
        ],
        "strategy": "ordered",
    }
    for prompt, completion in ((-4_000_000_000, -5), (9_000_000_000_000, 3)):
        name = f"usage_{prompt}_{completion}"
        providers[name] = _provider("openai", hostile.url(name))
        models[name] = {
            "deployments": [{"provider": name, "model": "m", "price": {"input": 1000, "output": 1000}}]
        }
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": providers,
        "models": models,
        "resilience": {"max_attempts": 2, "breaker": {"failures": 1_000_000}},
        "state": {"dir": str(log_dir / "hostile-state"), "flush_interval_s": 0.05},
    }


@pytest.fixture(scope="module")
def gw(hostile: HostileUpstream, logs: Path) -> Iterator[Gateway]:
    gateway = start_gateway(_config(hostile, logs), logs)
    yield gateway
    gateway.stop()


def _chat(gw: Gateway, model: str, stream: bool = False, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream, **extra}
    return httpx.post(
        f"{gw.base_url}/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=30,
    )


def _ledger_errors(gw: Gateway) -> list[str]:
    db = Path(yaml_state_dir(gw)) / "hedge.db"
    with sqlite3.connect(db) as conn:
        return [row[0] or "" for row in conn.execute("SELECT error FROM hedge_requests")]


def yaml_state_dir(gw: Gateway) -> str:
    import yaml

    config = yaml.safe_load(gw.config_path.read_text())
    return str(config["state"]["dir"])


def _leaks(text: str) -> list[str]:
    return [s for s in [*SECRETS.values(), HEADER_SECRET] if s in text]


@pytest.mark.parametrize("style", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("mode", ["echo-auth", "echo-auth-stream", "echo-auth-late"])
def test_echoed_provider_credentials_never_reach_the_client(gw: Gateway, style: str, mode: str) -> None:
    """An upstream that quotes the gateway's credentials in its error (whole or streamed, before or
    after the first token, in all three wire formats) has them masked in what the client sees."""
    resp = _chat(gw, f"{style}-{mode}", stream=mode != "echo-auth")
    text = resp.text
    assert "you sent" in text or "invalid request" in text, text  # the upstream's words did arrive
    assert _leaks(text) == [], text
    assert "***" in text


def test_echoed_credentials_never_reach_the_ledger_or_the_log(gw: Gateway) -> None:
    for style in ("openai", "anthropic", "gemini"):
        for mode in ("echo-auth", "echo-auth-stream", "echo-auth-late"):
            _chat(gw, f"{style}-{mode}", stream=mode != "echo-auth")
    stored = "\n".join(_wait_for_errors(gw))
    assert "you sent" in stored
    assert _leaks(stored) == []
    assert _leaks(gw.log.read_text()) == []


def _wait_for_errors(gw: Gateway) -> list[str]:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        errors = [e for e in _ledger_errors(gw) if "you sent" in e]
        if len(errors) >= 9:
            return errors
        time.sleep(0.05)
    raise AssertionError(f"the ledger has only {len(_ledger_errors(gw))} records")
