"""require_conformance: a deployment takes traffic only after 'hedge check' recorded a recent pass."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openai
import pytest

from conftest import MASTER_KEY, start_gateway, start_mock
from hedge.routing.conformance import ConformanceGate, Requirement
from hedge.store.conformance import ConformanceRecord, JsonlResultStore

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def _record(case: str, status: str, age: timedelta, dep: str = "p/m") -> ConformanceRecord:
    return ConformanceRecord(NOW - age, "test", dep, case, status, "", 1.0)


@pytest.mark.parametrize(
    ("cases", "records", "problem"),
    [
        (("stop",), [], "no conformance run on record"),
        (("stop",), [("stop", "pass", 1)], None),
        (("stop",), [("stop", "fail", 1)], "case stop has not passed"),
        (("stop",), [("stop", "pass", 200)], "case stop last passed too long ago"),
        (("stop", "tool-call"), [("stop", "pass", 1)], "case tool-call has not passed"),
        (("all",), [("stop", "pass", 1), ("n", "skip", 1)], None),
        (("all",), [("stop", "pass", 1), ("json-mode", "fail", 1)], "failed json-mode"),
        (("all",), [("json-mode", "fail", 5), ("json-mode", "pass", 1), ("stop", "pass", 1)], None),
        (("all",), [("stop", "pass", 200)], "latest conformance run is too old"),
    ],
)
def test_gate_rules(
    tmp_path: Path, cases: tuple[str, ...], records: list[tuple[str, str, int]], problem: str | None
) -> None:
    store = JsonlResultStore(tmp_path / "c.jsonl")
    store.append(_record(c, s, timedelta(hours=h)) for c, s, h in records)
    gate = ConformanceGate(store, {"p/m": Requirement(cases, 100 * 3600)}, refresh_s=0, now=lambda: NOW)
    assert gate.problem("p/m") == problem
    assert gate.problem("other/model") is None, "deployments without a requirement are never held"


def test_gate_through_the_gateway(logs: Path) -> None:
    clean, quirky = start_mock("openai", logs), start_mock("openai", logs, "--quirk", "ignore-stop")
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "clean": {"style": "openai", "base_url": f"{clean.url}/v1", "api_key": "k"},
            "quirky": {"style": "openai", "base_url": f"{quirky.url}/v1", "api_key": "k"},
            "backup": {"style": "openai", "base_url": f"{clean.url}/v1", "api_key": "k"},
        },
        "models": {
            "m": {
                "strategy": "ordered",
                "deployments": [
                    {"provider": "quirky", "model": "q", "require_conformance": ["stop", "plain"]},
                    {"provider": "clean", "model": "c", "require_conformance": ["all"]},
                    {"provider": "backup", "model": "b"},
                ],
            }
        },
        "state": {"conformance_refresh_s": 0},
    }
    gw = start_gateway(config, logs)
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0)
    try:
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
        assert raw.headers["x-hedge-route"] == "quirky/q=not_conformant, clean/c=not_conformant, backup/b=ok"
        check = subprocess.run(
            [
                sys.executable,
                "-m",
                "hedge",
                "check",
                "--config",
                str(gw.config_path),
                "--all",
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert check.returncode == 1, "the quirky deployment fails the stop case"
        time.sleep(0.1)
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
        assert raw.headers["x-hedge-route"] == "quirky/q=not_conformant, clean/c=ok"
    finally:
        gw.stop()
        clean.stop()
        quirky.stop()
