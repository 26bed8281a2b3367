"""``hedge teams create|list|update`` and the keys' budget options, from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def _config(tmp: Path) -> Path:
    path = tmp / "hedge.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "server": {"master_key": "sk-hedge-cli"},
                "providers": {"p": {"style": "openai", "base_url": "http://127.0.0.1:9/v1"}},
                "models": {
                    "chat": {"deployments": [{"provider": "p", "model": "big"}]},
                    "cheap": {"deployments": [{"provider": "p", "model": "small"}]},
                },
                "state": {"dir": str(tmp / "state")},
            }
        )
    )
    return path


def _hedge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hedge", *args], capture_output=True, text=True, timeout=60)


def test_teams_create_list_update(tmp_path: Path) -> None:
    config = str(_config(tmp_path))
    made = _hedge(
        "teams", "create", "--config", config, "--name", "lab", "--budget-usd", "5",
        "--budget-period", "month", "--budget-fallback", "cheap", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    team: dict[str, Any] = json.loads(made.stdout)
    assert (team["name"], team["budget_usd"], team["budget_fallback"]) == ("lab", 5.0, "cheap")
    again = _hedge("teams", "create", "--config", config, "--name", "lab")
    assert again.returncode == 1 and "exists already" in again.stderr
    bad = _hedge("teams", "update", "--config", config, "lab", "--budget-fallback", "gpt-9")
    assert bad.returncode == 2 and "budget_fallback: unknown model alias 'gpt-9'" in bad.stderr
    updated = _hedge("teams", "update", "--config", config, "lab", "--hard-budget-usd", "8", "--json")
    assert json.loads(updated.stdout)["hard_budget_usd"] == 8.0
    listed = _hedge("teams", "list", "--config", config)
    assert listed.returncode == 0 and "lab" in listed.stdout and "cheap" in listed.stdout
    key = _hedge(
        "keys", "create", "--config", config, "--name", "k", "--team", "lab", "--budget-usd", "1",
        "--budget-fallback", "cheap", "--hard-budget-usd", "2", "--json",
    )  # fmt: skip
    fields = json.loads(key.stdout)
    assert (fields["budget_fallback"], fields["hard_budget_usd"], fields["team"]) == ("cheap", 2.0, "lab")
    assert _hedge("teams", "update", "--config", config, "nope", "--budget-usd", "1").returncode == 1
