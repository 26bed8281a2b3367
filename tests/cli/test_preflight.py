"""``hedge serve`` refuses to start on an environment it cannot use with one line naming the setting,
never a traceback; ``hedge serve --check`` reports the state stores and the providers, then exits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import MASTER_KEY, Mock


def _write(tmp_path: Path, state: dict[str, Any], base_url: str = "http://127.0.0.1:9/v1") -> Path:
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {"a": {"style": "openai", "base_url": base_url, "api_key": "sk-a"}},
        "models": {"chat": {"deployments": [{"provider": "a", "model": "m"}]}},
        "state": state,
    }
    path = tmp_path / "hedge.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _hedge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hedge", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("state", "setting", "secret"),
    [
        (
            {"database_url": "postgresql://hedge:pw-do-not-print@127.0.0.1:1/nope"},
            "state.database_url",
            "pw-do-not-print",
        ),
        ({"redis_url": "redis://:pw-do-not-print@127.0.0.1:1/0"}, "state.redis_url", "pw-do-not-print"),
        ({"dir": "FILE"}, "state.dir", None),
    ],
)
def test_an_unusable_state_store_is_one_line_naming_the_setting(
    tmp_path: Path, state: dict[str, Any], setting: str, secret: str | None
) -> None:
    if state.get("dir") == "FILE":
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("")
        state = {"dir": str(blocker / "state")}
    else:
        state = {"dir": str(tmp_path / "state"), **state}
    done = _hedge("serve", "--config", str(_write(tmp_path, state)), "--port", "1")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hedge: {setting}: "), done.stderr
    assert "Traceback" not in done.stderr
    if secret is not None:
        assert secret not in done.stderr + done.stdout


def test_check_reports_ready_when_everything_answers(tmp_path: Path, mock: Mock) -> None:
    path = _write(tmp_path, {"dir": str(tmp_path / "state")}, base_url=f"{mock.url}/v1")
    done = _hedge("serve", "--config", str(path), "--check")
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout


def test_check_names_an_unreachable_provider(tmp_path: Path) -> None:
    done = _hedge("serve", "--config", str(_write(tmp_path, {"dir": str(tmp_path / "state")})), "--check")
    assert done.returncode == 1
    assert "providers.a.base_url: cannot connect to 127.0.0.1:9" in done.stderr
    assert "not ready" in done.stdout
