"""One deadline per request: across every attempt and backoff, not per attempt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import MASTER_KEY, Gateway, Mock, start_gateway

GENEROUS = 10.0
"""The client's own read timeout: far above every deadline below and far below the per-attempt read
timeout (30 s), so a gateway that waited the attempts out fails the test with a ReadTimeout."""


def _config(cheap: Mock, premium: Mock) -> dict[str, Any]:
    slow = {"connect": 5, "read": 30, "total": 60}
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "a": {"style": "openai", "base_url": f"{cheap.url}/v1", "api_key": "sk-a", "timeout": slow},
            "b": {"style": "openai", "base_url": f"{premium.url}/v1", "api_key": "sk-b", "timeout": slow},
        },
        "models": {
            "chat": {
                "strategy": "ordered",
                "deployments": [{"provider": "a", "model": "m1"}, {"provider": "b", "model": "m2"}],
            }
        },
        "resilience": {"request_timeout_s": 1.5, "max_attempts": 4, "breaker": {"failures": 1_000_000}},
    }


@pytest.fixture(scope="module")
def gw(cheap: Mock, premium: Mock, logs: Path) -> Iterator[Gateway]:
    gateway = start_gateway(_config(cheap, premium), logs)
    yield gateway
    gateway.stop()


def _chat(gw: Gateway, headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(
        f"{gw.base_url}/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {MASTER_KEY}", **(headers or {})},
        timeout=GENEROUS,
    )


@pytest.fixture
def hanging(cheap: Mock, premium: Mock) -> None:
    """Both upstreams accept the request and never answer (the mocks are reset after each test)."""
    for mock in (cheap, premium):
        mock.configure(fail_rate=1.0, fail_mode="hang")


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.usefixtures("hanging")
def test_hanging_upstreams_end_in_504_at_the_deadline(gw: Gateway, stream: bool) -> None:
    resp = _chat(gw, stream=stream)  # a wait for the per-attempt read timeout (30 s) raises here
    assert resp.status_code == 504, resp.text
    assert resp.json()["error"]["code"] == "request_timeout"
    assert "a/m1" in resp.headers["x-hedge-route"]


@pytest.mark.usefixtures("hanging")
def test_the_header_lowers_the_deadline(gw: Gateway) -> None:
    resp = _chat(gw, headers={"x-hedge-timeout-ms": "200"})
    assert resp.status_code == 504
    assert "0.2 s" in resp.json()["error"]["message"]


@pytest.mark.usefixtures("hanging")
def test_the_header_cannot_raise_the_deadline(gw: Gateway) -> None:
    resp = _chat(gw, headers={"x-hedge-timeout-ms": "600000"})
    assert resp.status_code == 504
    assert "1.5 s" in resp.json()["error"]["message"]


@pytest.mark.parametrize("value", ["soon", "-5", "0", "inf", "nan"])
def test_a_malformed_timeout_header_is_a_400(gw: Gateway, value: str) -> None:
    resp = _chat(gw, headers={"x-hedge-timeout-ms": value})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "x-hedge-timeout-ms"


def test_a_healthy_request_is_unaffected(gw: Gateway) -> None:
    resp = _chat(gw, headers={"x-hedge-timeout-ms": "5000"})
    assert resp.status_code == 200, resp.text
