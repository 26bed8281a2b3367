"""``hedge demo``'s batch act, as a new user runs it: one batch runs at once in today's off-peak
window and saves against premium, the other waits for the cheaper window."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime

from hedge.cli.demo_batch import nightly_alias
from hedge.windows import parse_window


def test_the_demo_runs_a_batch_and_reports_its_saving() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hedge",
            "demo",
            "--requests",
            "30",
            "--concurrency",
            "4",
            "--batch-lines",
            "40",
            "--eval-items",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "The batch lane: 40 requests on alias 'nightly'" in out
    saving = re.search(r"interactively on premium, saving [0-9.]+ USD \(([0-9.]+)%\)", out)
    assert saving is not None and float(saving.group(1)) > 50, out
    assert "The batch due in a day: waiting for a cheaper window at" in out


def test_the_demo_windows_hold_now_and_later() -> None:
    now = datetime(2026, 12, 2, 23, 30, tzinfo=UTC)  # the windows wrap past midnight
    today, later = nightly_alias(now)["deployments"][0]["price_windows"]
    assert parse_window(today["window"]).contains(now)
    assert not parse_window(later["window"]).contains(now)
    assert parse_window(later["window"]).contains(datetime(2026, 12, 3, 2, 45, tzinfo=UTC))
