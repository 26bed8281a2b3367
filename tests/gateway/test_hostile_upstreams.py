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


def test_a_stream_ends_at_done_even_if_the_upstream_never_closes(
    gw: Gateway, hostile: HostileUpstream
) -> None:
    """``[DONE]`` is the end: the client's stream finishes at once (its read timeout is far below the
    provider's), the gateway hangs up on the upstream, and the request is booked as served."""
    body = {"model": "done", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    with httpx.stream(
        "POST", f"{gw.base_url}/chat/completions", json=body, headers=headers, timeout=5
    ) as resp:
        text = "".join(resp.iter_text())
        request_id = resp.headers["x-hedge-request-id"]
    assert text.rstrip().endswith("data: [DONE]")
    assert "hello" in text and "error" not in text
    _wait(lambda: hostile.open_streams == 0, "the gateway hung up on the upstream")
    _wait(lambda: _status_of(gw, request_id) == 200, "the stream was booked as served")


def test_a_gzip_bomb_fails_over_instead_of_filling_memory(gw: Gateway) -> None:
    resp = _chat(gw, "bounded")
    assert resp.status_code == 200, resp.text
    assert "bomb/m=upstream_response_too_large" in resp.headers["x-hedge-route"]
    assert _rss_mb(gw) < 400


def test_an_endless_stream_event_fails_over_before_the_first_token(gw: Gateway) -> None:
    resp = _chat(gw, "bounded-stream", stream=True)
    assert resp.status_code == 200, resp.text
    assert "huge/m=upstream_event_too_large" in resp.headers["x-hedge-route"]
    assert resp.text.rstrip().endswith("data: [DONE]")
    assert _rss_mb(gw) < 400


@pytest.mark.parametrize("stream", [False, True])
def test_impossible_usage_is_clamped_never_negative(gw: Gateway, stream: bool) -> None:
    """Negative counts would drive a key's spend below zero; absurd ones would book a fortune."""
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if stream else {}
    resp = _chat(gw, "usage_-4000000000_-5", stream=stream, **extra)
    assert resp.status_code == 200
    request_id = resp.headers["x-hedge-request-id"]
    _wait(lambda: _status_of(gw, request_id) == 200, "booked")
    row = _row(gw, request_id)
    assert row["prompt_tokens"] == 0 and row["completion_tokens"] == 0 and row["cost_usd"] == 0
    if not stream:
        assert float(resp.headers["x-hedge-cost-usd"]) == 0
    resp = _chat(gw, "usage_9000000000000_3", stream=stream, **extra)
    request_id = resp.headers["x-hedge-request-id"]
    _wait(lambda: _status_of(gw, request_id) == 200, "booked")
    row = _row(gw, request_id)
    assert 0 < row["prompt_tokens"] <= 100_000_000
    assert "reported impossible usage" in gw.log.read_text()


def _wait(condition: Any, what: str, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


def _row(gw: Gateway, request_id: str) -> dict[str, Any]:
    db = Path(yaml_state_dir(gw)) / "hedge.db"
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM hedge_requests WHERE request_id = ?", (request_id,)).fetchone()
    return dict(row) if row is not None else {}


def _status_of(gw: Gateway, request_id: str) -> int | None:
    status = _row(gw, request_id).get("status")
    return int(status) if status is not None else None


def _rss_mb(gw: Gateway) -> float:
    for line in Path(f"/proc/{gw.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")
