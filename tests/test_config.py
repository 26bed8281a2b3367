"""Config loading: the issue's exact file, ${ENV} interpolation, one-line errors from `hedge serve`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hedge.config import ConfigError, interpolate, load_config

ISSUE_CONFIG = """\
server:
  master_key: ${HEDGE_MASTER_KEY:-sk-hedge-dev}
providers:
  cheap:   {style: openai, base_url: "http://127.0.0.1:9101/v1", api_key: "sk-a"}
  premium: {style: openai, base_url: "http://127.0.0.1:9102/v1", api_key: "sk-b"}
models:
  chat:
    strategy: weighted
    deployments:
      - {provider: cheap,   model: qwen2.5-72b-instruct, weight: 80, price: {input: 0.35, output: 0.40}}
      - {provider: premium, model: gpt-4o,               weight: 20, price: {input: 2.50, output: 10.00}}
  premium:
    deployments:
      - {provider: premium, model: gpt-4o, price: {input: 2.50, output: 10.00}}
"""


def test_issue_config_loads_exactly(tmp_path: Path) -> None:
    path = tmp_path / "hedge.yaml"
    path.write_text(ISSUE_CONFIG)
    config = load_config(path, env={})
    assert config.server.master_key == "sk-hedge-dev"
    assert [d.weight for d in config.models["chat"].deployments] == [80, 20]
    assert config.models["chat"].deployments[1].price.output == 10.0
    assert config.providers["cheap"].base_url == "http://127.0.0.1:9101/v1"
    assert load_config(path, env={"HEDGE_MASTER_KEY": "sk-prod"}).server.master_key == "sk-prod"


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("${A:-d}", {}, "d"),
        ("${A:-d}", {"A": ""}, "d"),
        ("pre-${A}-${B:-b}", {"A": "a"}, "pre-a-b"),
        ("${A:-}", {}, ""),
        ("no vars", {}, "no vars"),
        (["${A}", {"k": "${A}"}], {"A": "1"}, ["1", {"k": "1"}]),
        (5, {}, 5),
    ],
)
def test_interpolation(value: object, env: dict[str, str], expected: object) -> None:
    assert interpolate(value, env) == expected


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


BAD = [
    (
        ISSUE_CONFIG.replace("provider: premium, model: gpt-4o,  ", "provider: premuim, model: gpt-4o,  "),
        "models.chat.deployments[1].provider: unknown provider 'premuim' (known: cheap, premium)",
    ),
    ("server: {master_key: k\nproviders: [", "invalid YAML"),
    (
        ISSUE_CONFIG.replace('base_url: "http://127.0.0.1:9101/v1", ', ""),
        "providers.cheap.base_url: missing required key",
    ),
    (ISSUE_CONFIG.replace("strategy: weighted", "stratgey: weighted"), "models.chat.stratgey: unknown key"),
    (
        ISSUE_CONFIG.replace("${HEDGE_MASTER_KEY:-sk-hedge-dev}", "${HEDGE_NOT_SET_ANYWHERE}"),
        "server.master_key: environment variable HEDGE_NOT_SET_ANYWHERE is not set",
    ),
    (ISSUE_CONFIG.replace("style: openai", "style: cohere", 1), "providers.cheap.style: Input should be"),
    (ISSUE_CONFIG.replace("weight: 80", "weight: lots"), "models.chat.deployments[0].weight"),
    ("just a string", "the top level must be a mapping"),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_config_errors_name_file_path_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={})
    message = str(exc.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_serve_refuses_bad_config_with_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, BAD[0][0])
    result = subprocess.run(
        [sys.executable, "-m", "hedge", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"hedge: config error: {path}: {BAD[0][1]}"]


def test_serve_missing_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hedge", "serve", "--config", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "nope.yaml: cannot read file" in result.stderr
