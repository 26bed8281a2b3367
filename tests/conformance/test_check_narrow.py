"""``hedge check`` in an 80-column terminal: the matrix fits, no deployment or case is cut, and
``--format json`` carries the same results.

Four deployments over the real mocks (one of them quirky, so there are fails and skips to show) and
every built-in case: far wider than 80 columns as deployments-by-cases, so the matrix turns to
cases-by-deployments and, when those do not fit side by side either, is split into several.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.cells import cell_len

from conftest import MASTER_KEY, Mock, start_mock

WIDTH = 80
ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4", "gemini": "gemini-2.5-flash"}
MARKS = {"✓": "pass", "✗": "fail", "○": "skip"}


@pytest.fixture(scope="module")
def quirky(logs: Path) -> Iterator[Mock]:
    mock = start_mock("openai", logs, "--quirk", "ignore-stop")
    yield mock
    mock.stop()


def _config(tmp_path: Path, style_mocks: dict[str, Mock], quirky: Mock) -> Path:
    providers = {
        "openai-primary": (style_mocks["openai"], "openai"),
        "openai-stop-quirk": (quirky, "openai"),
        "anthropic-native": (style_mocks["anthropic"], "anthropic"),
        "gemini-native": (style_mocks["gemini"], "gemini"),
    }
    config: dict[str, Any] = {
        "server": {"master_key": MASTER_KEY},
        "state": {"dir": str(tmp_path / "state")},
        "providers": {},
        "models": {"chat": {"deployments": []}},
    }
    for name, (mock, style) in providers.items():
        base = f"{mock.url}/v1" if style == "openai" else mock.url
        config["providers"][name] = {"style": style, "base_url": base, "api_key": "sk-x"}
        config["models"]["chat"]["deployments"].append(
            {"provider": name, "model": MODELS[style], "price": {"input": 2.0, "output": 8.0}}
        )
    path = tmp_path / "hedge.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _check(config: Path, cwd: Path, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    env.update({"COLUMNS": str(WIDTH), "TTY_COMPATIBLE": "1", "TERM": "xterm-256color"})
    result = subprocess.run(
        [sys.executable, "-m", "hedge", "check", "--config", str(config), "--all", "--no-results", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, result.stdout


def _whole(token: str, lines: list[str]) -> bool:
    pattern = re.compile(rf"(?<![\w.-]){re.escape(token)}(?![\w.-])")
    return any(pattern.search(line) for line in lines)


def test_check_matrix_fits_80_columns_and_json_matches(
    style_mocks: dict[str, Mock], quirky: Mock, tmp_path: Path
) -> None:
    config = _config(tmp_path, style_mocks, quirky)
    code, out = _check(config, tmp_path)
    json_code, raw = _check(config, tmp_path, "--format", "json")
    data = json.loads(raw)
    assert code == json_code == 1, "the quirky deployment fails the required 'stop' case"

    lines = re.split(r"\r\n|\r|\n", ANSI.sub("", out))
    too_long = [line for line in lines if cell_len(line) > WIDTH]
    assert not too_long, "\n".join(too_long)
    first_note = next(i for i, line in enumerate(lines) if line.startswith("[1] "))
    assert not any("…" in line for line in lines[:first_note]), out  # (a reason may quote with one)
    assert any(line.startswith("hedge check (deployments 1-") for line in lines), "split into matrices"

    deployments = {r["deployment"] for r in data["results"]}
    assert len(deployments) == 4
    for dep in deployments:  # headed provider/ over model, each part whole
        provider, model = dep.split("/", 1)
        assert _whole(provider + "/", lines) and _whole(model, lines), (dep, out)
    for case in {r["case"] for r in data["results"]}:
        assert _whole(case, lines), (case, out)

    # The same results: one mark per (deployment, case), and a numbered note per fail and skip.
    marks = Counter(MARKS[ch] for line in lines for ch in line if ch in MARKS)
    assert marks == Counter(r["status"] for r in data["results"]), (marks, out)
    notes = [line for line in lines if re.match(r"\[\d+\] ", line)]
    assert len(notes) == sum(r["status"] != "pass" for r in data["results"])
    failed = [r for r in data["results"] if r["status"] == "fail"]
    assert ("openai-stop-quirk/gpt-4o", "stop") in {(r["deployment"], r["case"]) for r in failed}
    assert any(line.startswith("[") and "openai-stop-quirk/gpt-4o · stop · fail" in line for line in notes)
    summary = data["summary"]
    assert any(
        f"{summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped" in line
        for line in lines
    )
