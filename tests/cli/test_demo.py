"""``hedge demo``'s experimentation act, as a new user runs it: three candidates of known quality
(97%, 92%, 55% right) evaluated on 60 questions with ``hedge eval``'s runner; it recommends the
mid-priced one, marks the cheap one below the bar and says what switching saves."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "hedge", "demo", "--requests", "20", "--concurrency", "4"]
    cmd += ["--batch-lines", "0", *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "COLUMNS": "200"}
    )


def _row(out: str, target: str) -> list[str]:
    line = next((x for x in out.splitlines() if x.startswith(target + " ")), None)
    assert line is not None, out
    return line.split()


def test_the_demo_evaluates_three_candidates_and_says_what_to_switch_to() -> None:
    result = _demo("--eval-items", "60")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Experimentation: 60 questions" in out, out
    assert "hedge eval: 60 items, grader exact, bar 0.8" in out, out
    premium = _row(out, "premium (reference)")[1:]  # as one cell, like the others' names
    backup = _row(out, "backup")
    cheap = _row(out, "cheap/qwen2.5-72b-instruct")
    for row in (premium, backup, cheap):
        assert row[1] == "60", row  # n: every question answered and graded
    assert float(premium[2]) >= 0.95, premium
    assert 0.88 <= float(backup[2]) <= 0.95 and float(backup[3].strip("[,")) >= 0.8, backup
    assert float(cheap[2]) < 0.7, cheap
    assert backup[-2] == "recommended" and cheap[-2] == "no" and premium[-2] == "yes", out
    assert "Recommended: backup, the cheapest candidate whose quality meets the bar of 0.8" in out
    assert "Below the bar: cheap/qwen2.5-72b-instruct." in out
    switch = re.search(
        r"Hedge would switch this work from premium \(gpt-4o\) to backup \(llama-3\.1-70b\): "
        r"\$([0-9.e-]+) instead of \$([0-9.e-]+) per 1,000 such requests, saving (\d+)%",
        out,
    )
    assert switch is not None, out
    mine, theirs, saving = float(switch.group(1)), float(switch.group(2)), int(switch.group(3))
    assert mine < theirs and abs(saving - (1 - mine / theirs) * 100) <= 1 and saving > 50, switch.group(0)
    assert backup[-3] == f"{saving}%", backup  # the table's savings column says the same


def test_on_too_few_questions_the_demo_would_not_switch() -> None:
    result = _demo("--eval-items", "20")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "hedge eval: 20 items" in out and "Recommended:" not in out, out
    assert "No candidate meets the bar of 0.8 with 95% confidence." in out, out
    assert "Not even premium meets the bar of 0.8 with 95% confidence on 20 questions" in out, out
    assert "Hedge would stay on premium (gpt-4o)." in out and "would switch" not in out, out


def test_the_experimentation_act_can_be_skipped_and_refuses_a_negative_size() -> None:
    result = _demo("--eval-items", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Experimentation" not in result.stdout and "hedge eval" not in result.stdout
    refused = _demo("--eval-items", "-1")
    assert refused.returncode == 2 and "must not be negative" in refused.stderr, refused.stderr
