"""Fixtures that run real processes: ``hedge mock`` upstreams and ``hedge serve`` gateways on free ports."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from hedge.cli.net import free_port
from hedge.store.db import Database, connect
from hedge.store.schema import MIGRATIONS

MASTER_KEY = "sk-hedge-test"

# The shared PostgreSQL and Redis of the state tests; each test makes a PostgreSQL schema of its own.
PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Until ``condition`` holds, checked every 10 ms for up to 10 s (``what`` names it if it never does)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def answer_lifespan(receive: Any, send: Any) -> None:
    """The lifespan protocol of a bare ASGI test app: every phase completes at once."""
    while True:
        kind = (await receive())["type"]
        await send({"type": f"{kind}.complete"})
        if kind == "lifespan.shutdown":
            return


async def _pg_schema() -> str:
    schema = "hedge_test_" + secrets.token_hex(4)
    conn = await asyncpg.connect(PG_BASE)
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.close()
    return schema


async def _drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(PG_BASE)
    await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    await conn.close()


_STARTED: list[subprocess.Popen[bytes]] = []
"""Every process the tests started, so none outlives the session even when a fixture fails half-way."""


@pytest.fixture(scope="session", autouse=True)
def _reap_processes() -> Iterator[None]:
    yield
    for proc in _STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 90.0) -> None:
    # Generous: a module that starts ten mocks at once on a busy 2-core machine can take a while; a
    # process that dies is reported at once, so a broken start costs nothing extra.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=0.5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{log.read_text()}")


@dataclass
class Mock:
    style: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def configure(self, **changes: Any) -> dict[str, Any]:
        resp = httpx.post(f"{self.url}/_mock/config", json=changes)
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{self.url}/_mock/stats").json()["stats"]
        return data

    def reset(self) -> None:
        httpx.post(f"{self.url}/_mock/reset").raise_for_status()
        self.configure(
            latency_ms=0,
            fail_rate=0,
            fail_first=0,
            fail_status=500,
            fail_mode="status",
            quirks=[],
            thought_signatures=False,
            finish_reason=None,
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_mock(style: str, log_dir: Path, *args: str, port: int | None = None) -> Mock:
    port = port or free_port()
    log = log_dir / f"mock-{style}-{port}.log"
    cmd = [sys.executable, "-m", "hedge", "mock", "--style", style, "--port", str(port), *args]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    _STARTED.append(proc)
    _wait_ready(proc, f"http://127.0.0.1:{port}/_mock/stats", log)
    return Mock(style, port, proc)


@dataclass
class Gateway:
    port: int
    proc: subprocess.Popen[bytes]
    config_path: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_gateway(
    config: dict[str, Any], log_dir: Path, *args: str, env: dict[str, str] | None = None
) -> Gateway:
    port = free_port()
    state = config.get("state") or {}
    if "dir" not in state:  # never the working directory's .hedge
        config = {**config, "state": {**state, "dir": str(log_dir / f"state-{port}")}}
    path = log_dir / f"hedge-{port}.yaml"
    path.write_text(yaml.safe_dump(config))
    log = log_dir / f"hedge-{port}.log"
    cmd = [sys.executable, "-m", "hedge", "serve", "--config", str(path), "--port", str(port), *args]
    proc = subprocess.Popen(
        cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    _STARTED.append(proc)
    _wait_ready(proc, f"http://127.0.0.1:{port}/health", log)
    return Gateway(port, proc, path, log)


def two_provider_config(cheap: Mock, premium: Mock, **server: Any) -> dict[str, Any]:
    """The config from the gateway-core issue, pointed at the test's mock ports."""
    return {
        "server": {"master_key": MASTER_KEY, **server},
        "providers": {
            "cheap": {"style": "openai", "base_url": f"{cheap.url}/v1", "api_key": "sk-a"},
            "premium": {"style": "openai", "base_url": f"{premium.url}/v1", "api_key": "sk-b"},
        },
        "models": {
            "chat": {
                "strategy": "weighted",
                "baseline": "premium",
                "deployments": [
                    {
                        "provider": "cheap",
                        "model": "qwen2.5-72b-instruct",
                        "weight": 80,
                        "price": {"input": 0.35, "output": 0.40},
                    },
                    {
                        "provider": "premium",
                        "model": "gpt-4o",
                        "weight": 20,
                        "price": {"input": 2.5, "output": 10.0},
                    },
                ],
            },
            "premium": {
                "deployments": [
                    {"provider": "premium", "model": "gpt-4o", "price": {"input": 2.5, "output": 10.0}}
                ]
            },
        },
    }


def core_test_config(cheap: Mock, premium: Mock) -> dict[str, Any]:
    """The issue's config plus an embeddings alias and a provider with a short read timeout."""
    config = two_provider_config(cheap, premium, max_body_bytes=64 * 1024)
    config["providers"]["slow"] = {
        "style": "openai",
        "base_url": f"{premium.url}/v1",
        "api_key": "sk-c",
        "timeout": {"connect": 2, "read": 0.5, "total": 5},
    }
    config["models"]["embed"] = {
        "deployments": [{"provider": "cheap", "model": "text-embedding-3-small", "price": {"input": 0.02}}]
    }
    config["providers"]["limited"] = {"style": "openai", "base_url": f"{premium.url}/v1", "api_key": "sk-d"}
    config["models"]["slow"] = {"deployments": [{"provider": "slow", "model": "gpt-4o"}]}
    config["models"]["limited"] = {"deployments": [{"provider": "limited", "model": "gpt-4o"}]}
    # Error-mapping tests want one attempt and no breaker memory between tests.
    config["resilience"] = {"max_attempts": 1, "breaker": {"failures": 1_000_000}}
    return config


@pytest.fixture(scope="session")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A PostgreSQL schema of the test's own, dropped after it."""
    name = asyncio.run(_pg_schema())
    yield name
    asyncio.run(_drop_schema(name))


@pytest.fixture(scope="module")
def mock(logs: Path) -> Iterator[Mock]:
    """The module's own OpenAI-style mock (a module that needs another style defines its own ``mock``)."""
    m = start_mock("openai", logs)
    yield m
    m.stop()


@pytest.fixture(scope="module")
def style_mocks(logs: Path) -> Iterator[dict[str, Mock]]:
    """The module's own mock of each wire style, by style: ``openai``, ``anthropic`` and ``gemini``."""
    mocks: dict[str, Mock] = {}
    try:
        for style in ("openai", "anthropic", "gemini"):
            mocks[style] = start_mock(style, logs)
        yield mocks
    finally:
        for m in mocks.values():
            m.stop()


@pytest.fixture(scope="session")
def cheap(logs: Path) -> Iterator[Mock]:
    mock = start_mock("openai", logs, "--seed", "1")
    yield mock
    mock.stop()


@pytest.fixture(scope="session")
def premium(logs: Path) -> Iterator[Mock]:
    mock = start_mock("openai", logs, "--seed", "2")
    yield mock
    mock.stop()


@pytest.fixture(scope="session")
def gateway(cheap: Mock, premium: Mock, logs: Path) -> Iterator[Gateway]:
    gw = start_gateway(core_test_config(cheap, premium), logs)
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def _clean_mocks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with well-behaved mocks, whatever the previous test set."""
    yield
    for name in ("cheap", "premium"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


@pytest.fixture
def client(gateway: Gateway) -> Any:
    import openai

    return openai.OpenAI(base_url=gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated state database, once on SQLite and once on PostgreSQL (a schema of the test's own,
    dropped after it). A module may define its own ``db`` (tests/store/test_state.py does)."""
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hedge.db'}"
    else:
        schema = await _pg_schema()
        url = f"{PG_BASE}?search_path={schema}"
    database = await connect(url)
    await database.migrate(MIGRATIONS)
    yield database
    await database.close()
    if schema:
        await _drop_schema(schema)
