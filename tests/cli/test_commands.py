"""The CLI as a new user runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_demo_runs_and_reports_savings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hedge", "demo", "--requests", "60", "--concurrency", "8"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "60 requests" in out
    assert "cheap" in out and "premium" in out
    assert "saving" in out


def test_mock_rejects_bad_fail_rate() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hedge", "mock", "--fail-rate", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--fail-rate" in result.stderr


@pytest.mark.parametrize("flags", [["--batch-fail-rate", "1.5"], ["--batch-polls", "-1"]])
def test_mock_rejects_bad_batch_knobs(flags: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hedge", "mock", *flags], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert flags[0] in result.stderr
