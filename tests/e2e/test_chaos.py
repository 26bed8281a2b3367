"""The chaos run (``bench/chaos.py --quick``): what was served is booked through every failure.

The script drives load through a real gateway while PostgreSQL is refused and blackholed,
Redis is killed, and the gateway is stopped with SIGTERM (PostgreSQL down) and SIGKILL; it
then compares the ids clients were served with ``hedge_requests``. This test runs it as a
user would and holds it to the ledger's promises: nothing lost across a clean shutdown or a
database outage, at most ``flush_interval_s`` of traffic lost to a crash, never a 500.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HANG_BOUND_S = 300.0
"""Many times the run's expected length (about 35 s): only proves it did not hang."""
KILL_MARGIN = 1.5
"""A record waits up to one flush interval in memory, then for its write to commit."""
EXPECTED_503 = {"limits_unavailable", "no_deployment_available"}
OUTAGE_PHASES = ("pg refused", "redis killed")
"""Phases whose outage virtual-key requests must see (proof that the fault was really injected)."""


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (the chaos run starts a private one)")
    out = tmp_path_factory.mktemp("chaos") / "chaos.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos.py"), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_BOUND_S,
    )
    assert out.exists(), (
        f"the chaos run wrote no results (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    result: dict[str, Any] = json.loads(out.read_text())
    result["printed"] = proc.stdout + proc.stderr
    result["returncode"] = proc.returncode
    return result


def _phase(result: dict[str, Any], name: str) -> dict[str, Any]:
    phase: dict[str, Any] = next(p for p in result["phases"] if p["phase"] == name)
    return phase


def test_nothing_served_is_lost_across_sigterm_or_a_database_outage(chaos: dict[str, Any]) -> None:
    term = _phase(chaos, "gateway TERM")
    assert term["served"] > 0 and term["refused_while_down"] > 0, chaos["printed"]
    assert chaos["term_exit_s"] is not None, chaos["printed"]
    assert term["lost"] == 0, chaos["printed"]
    lost_elsewhere = {p["phase"]: p["lost"] for p in chaos["phases"] if p["phase"] != "gateway KILL"}
    assert set(lost_elsewhere.values()) == {0}, chaos["printed"]


def test_sigkill_loses_at_most_one_flush_interval_of_traffic(chaos: dict[str, Any]) -> None:
    kill = _phase(chaos, "gateway KILL")
    assert kill["served"] > 0 and kill["refused_while_down"] > 0, chaos["printed"]
    rate = chaos["kill"]["served_per_s_before"]
    assert rate > 0, chaos["printed"]
    bound = math.ceil(rate * chaos["flush_interval_s"] * KILL_MARGIN) + 1
    assert kill["lost"] <= bound, chaos["printed"]


def test_outages_show_clients_503s_that_say_why_never_a_500(chaos: dict[str, Any]) -> None:
    total = chaos["total"]
    assert total["status_500"] == 0, chaos["printed"]
    for status_code in total["errors_5xx"]:
        status, code = status_code.split(" ", 1)
        assert status == "503" and code in EXPECTED_503, chaos["printed"]
    assert total["conn_errors_while_up"] == 0, chaos["printed"]
    for name in OUTAGE_PHASES:
        assert _phase(chaos, name)["errors_5xx"].get("503 limits_unavailable", 0) > 0, chaos["printed"]
    for phase in chaos["phases"]:  # the master key is served through every outage
        assert phase["served_by_key"].get("master", 0) > 0, chaos["printed"]
    assert chaos["returncode"] == 0, chaos["printed"]
