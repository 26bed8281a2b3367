"""``warm_connections``: the gateway opens that many connections to a provider when it starts, so the
first burst of requests pays no handshake; more than ``max_connections`` is a config error."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import MASTER_KEY, wait_until
from hedge.api.app import create_app
from hedge.cli.net import free_port, serve_in_loop
from hedge.config import ConfigError, parse_config
from hedge.mock.server import create_mock_app
from hedge.mock.state import Knobs


def config(mock_port: int, tmp_path: Path, **provider: Any) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "p": {
                "style": "openai",
                "base_url": f"http://127.0.0.1:{mock_port}/v1",
                "api_key": "k",
                **provider,
            }
        },
        "models": {"m": {"deployments": [{"provider": "p", "model": "x"}]}},
        "state": {"dir": str(tmp_path)},
    }


async def test_the_gateway_opens_its_warm_connections_at_start_and_a_burst_uses_them(tmp_path: Path) -> None:
    mock_port, gateway_port = free_port(), free_port()
    cfg = parse_config(config(mock_port, tmp_path, warm_connections=3), "<test>")
    async with (
        serve_in_loop(create_mock_app("openai", Knobs(latency_ms=50)), mock_port) as mock,
        serve_in_loop(create_app(cfg), gateway_port),
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gateway_port}", headers={"authorization": f"Bearer {MASTER_KEY}"}
        ) as client,
    ):
        upstream = mock.server_state.connections
        await wait_until(lambda: len(upstream) == 3, "three warm connections before any request")
        before = set(upstream)
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        answers = await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(3)))
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert set(upstream) == before  # the burst went over the warm connections


def test_more_warm_connections_than_the_maximum_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="warm_connections"):
        parse_config(config(1, tmp_path, warm_connections=5, max_connections=2), "<test>")
