"""``hedge init`` writes a starter config that serves as it is, against the three mock styles."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml

from conftest import free_port, start_gateway, start_mock
from hedge.config import load_config

PORTS = {"openai": "9101", "anthropic": "9102", "gemini": "9103"}


def _init(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hedge", "init", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_init_writes_a_valid_config_and_never_overwrites(tmp_path: Path) -> None:
    assert _init(tmp_path).returncode == 0
    config = load_config(str(tmp_path / "hedge.yaml"))
    assert {p.style for p in config.providers.values()} == {"openai", "anthropic", "gemini"}
    assert set(config.models) == {"chat", "premium"}
    (tmp_path / "hedge.yaml").write_text("# mine\n")
    refused = _init(tmp_path)
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert (tmp_path / "hedge.yaml").read_text() == "# mine\n"
    assert _init(tmp_path, "--force").returncode == 0


@pytest.fixture
def started(tmp_path: Path) -> Iterator[str]:
    """The starter config, served against mocks on free ports (the file's own ports may be taken)."""
    assert _init(tmp_path).returncode == 0
    text = (tmp_path / "hedge.yaml").read_text()
    mocks = []
    for style, fixed in PORTS.items():
        port = free_port()
        mocks.append(start_mock(style, tmp_path, port=port))
        text = text.replace(f"127.0.0.1:{fixed}", f"127.0.0.1:{port}")
    config = yaml.safe_load(text)
    config["state"]["dir"] = str(tmp_path / "state")
    gateway = start_gateway(config, tmp_path)
    try:
        yield gateway.base_url
    finally:
        gateway.stop()
        for mock in mocks:
            mock.stop()


def test_the_starter_config_serves_every_alias(started: str) -> None:
    client = openai.OpenAI(base_url=started, api_key="sk-hedge-dev", max_retries=0, timeout=20)
    providers = set()
    for model in ("chat", "chat", "chat", "chat", "premium"):
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.parse().choices[0].message.content
        assert float(raw.headers["x-hedge-cost-usd"]) > 0
        providers.add(raw.headers["x-hedge-provider"])
    assert providers == {"cheap", "gemini", "claude"}, "a weighted 70/30 split serves both within 4 requests"


def test_the_readme_shows_the_starter_config_as_written() -> None:
    from hedge.cli.init import STARTER

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    shown = readme.split("as `hedge init` writes it", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(shown) == yaml.safe_load(STARTER)
