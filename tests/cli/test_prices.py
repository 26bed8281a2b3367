"""``hedge prices``: import the public price lists with a diff preview, merge by default, replace
with a warning, and name every deployment without a price."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

FIXTURES = Path(__file__).parents[1] / "cost" / "fixtures"


def hedge(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "hedge", *args], capture_output=True, text=True, timeout=60, env=env
    )


def _models(state: Path) -> dict[str, dict[str, object]]:
    result = hedge("prices", "--dir", str(state), "--format", "json")
    assert result.returncode == 0, result.stderr
    models: dict[str, dict[str, object]] = json.loads(result.stdout)["models"]
    return models


def test_import_previews_then_merges(tmp_path: Path) -> None:
    state = tmp_path / "state"
    older = tmp_path / "older.yaml"  # a catalogue installed earlier, without Claude's cache-write price
    older.write_text(
        yaml.safe_dump(
            {"version": "2099-01-01", "models": {"claude-sonnet-4-5": {"input": 3.0, "output": 15.0}}}
        )
    )
    assert hedge("prices", "update", "--file", str(older), "--dir", str(state)).returncode == 0
    before = _models(state)
    source = str(FIXTURES / "litellm_prices.json")
    dry = hedge("prices", "import", "--format", "litellm", source, "--dir", str(state), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "+ mock-small" in dry.stdout
    assert "~ claude-sonnet-4-5:" in dry.stdout and "cache_write_input - -> 3.75" in dry.stdout
    assert "nothing installed" in dry.stdout
    assert _models(state) == before

    done = hedge(
        "prices", "import", "--format", "litellm", source, "--dir", str(state), "--as-of", "2026-12-01"
    )
    assert done.returncode == 0, done.stderr
    after = _models(state)
    assert set(before) < set(after)  # merged: every model the catalogue had is still there
    claude = after["claude-sonnet-4-5"]
    assert (claude["input"], claude["output"], claude["cached_input"], claude["cache_write_input"]) == (
        3.0,
        15.0,
        0.3,
        3.75,
    )
    assert claude["context_window"] == 200_000
    assert claude["source"] == f"litellm:{source}" and claude["as_of"] == "2026-12-01"

    router = hedge(
        "prices",
        "import",
        "--format",
        "openrouter",
        str(FIXTURES / "openrouter_models.json"),
        "--dir",
        str(state),
    )
    assert router.returncode == 0, router.stderr
    assert after.keys() < _models(state).keys()
    assert _models(state)["perplexity/sonar"]["per_request"] == 0.005


def test_update_merges_and_replace_names_what_disappears(tmp_path: Path) -> None:
    state = tmp_path / "state"
    before = _models(state)
    one = tmp_path / "one.yaml"
    one.write_text(
        yaml.safe_dump({"version": "2099-01-01", "models": {"gpt-4o": {"input": 2.0, "output": 8.0}}})
    )
    merged = hedge("prices", "update", "--file", str(one), "--dir", str(state))
    assert merged.returncode == 0, merged.stderr
    assert "~ gpt-4o: input 2.5 -> 2" in merged.stdout
    assert "disappear" not in merged.stderr
    after = _models(state)
    assert after.keys() == before.keys() and after["gpt-4o"]["input"] == 2.0

    replaced = hedge("prices", "update", "--file", str(one), "--replace", "--dir", str(state))
    assert replaced.returncode == 0, replaced.stderr
    assert f"{len(before) - 1} model(s) disappear" in replaced.stderr
    assert "claude-sonnet-4-5" in replaced.stderr and "- claude-sonnet-4-5" in replaced.stdout
    assert set(_models(state)) == {"gpt-4o"}


def test_check_names_every_deployment_without_a_price(tmp_path: Path) -> None:
    config = tmp_path / "hedge.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"master_key": "sk-master-test"},
                "state": {"dir": str(tmp_path / "state")},
                "providers": {"p": {"style": "openai", "base_url": "http://127.0.0.1:9"}},
                "models": {
                    "chat": {
                        "deployments": [
                            {"provider": "p", "model": "gpt-4o"},
                            {"provider": "p", "model": "home-made-1"},
                            {"provider": "p", "model": "home-made-2", "price": {"input": 1, "output": 1}},
                        ]
                    }
                },
            }
        )
    )
    result = hedge("prices", "check", "--config", str(config))
    assert result.returncode == 1
    assert "p/home-made-1: NO PRICE" in result.stdout
    assert "p/gpt-4o: catalogue" in result.stdout and "p/home-made-2: config" in result.stdout
    assert "1 deployment(s) have no price" in result.stderr and "p/home-made-1" in result.stderr


def test_upgrading_hedge_keeps_imported_models(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "prices.yaml").write_text(
        yaml.safe_dump(
            {
                "version": "2000-01-01",
                "models": {"imported-model": {"input": 7.0, "output": 9.0}, "gpt-4o": {"input": 99.0}},
            }
        )
    )
    models = _models(state)
    assert models["imported-model"]["input"] == 7.0  # only the older installed catalogue has it
    assert models["gpt-4o"]["input"] == 2.5  # the newer shipped catalogue's price wins
