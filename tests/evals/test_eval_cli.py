"""``hedge eval`` end to end: real mocks of known quality, the real CLI, the gateway's own pipeline.

Three OpenAI-style mocks play models of quality 0.97, 0.92 and 0.55 (``--quality``), priced high,
mid and low. On a 150-item dataset whose prompts end ``Answer with: X`` and whose expected answers
are ``X``, with a bar of 0.85, the eval must recommend the mid one (the cheapest whose Wilson lower
bound clears the bar) and mark the low one below it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from conftest import MASTER_KEY, Mock, start_gateway, start_mock
from hedge.config import load_config
from hedge.gateway.runtime import open_runtime

QUALITIES = {"high": 0.97, "mid": 0.92, "low": 0.55}
PRICES = {"high": (5.0, 15.0), "mid": (1.0, 3.0), "low": (0.1, 0.3)}
JSON_KEYS = [
    "target",
    "n",
    "quality",
    "ci_low",
    "ci_high",
    "cost_usd",
    "cost_per_1k_usd",
    "latency_p50_ms",
    "latency_p95_ms",
    "win",
    "tie",
    "loss",
    "meets_bar",
]


@pytest.fixture(scope="module")
def quality_mocks(logs: Path) -> Iterator[dict[str, Mock]]:
    mocks: dict[str, Mock] = {}
    try:
        for seed, (name, quality) in enumerate(QUALITIES.items()):
            mocks[name] = start_mock("openai", logs, "--quality", str(quality), "--seed", str(seed))
        yield mocks
    finally:
        for m in mocks.values():
            m.stop()


def _config(mocks: dict[str, Mock], state_dir: Path, **server: Any) -> dict[str, Any]:
    models: dict[str, Any] = {}
    providers: dict[str, Any] = {}
    for name, mock in mocks.items():
        providers[name] = {"style": "openai", "base_url": f"{mock.url}/v1", "api_key": "sk-x"}
        price = {"input": PRICES[name][0], "output": PRICES[name][1]}
        models[name] = {"deployments": [{"provider": name, "model": f"model-{name}", "price": price}]}
    models["pick"] = {
        "strategy": "cheapest",
        "min_quality": 0.85,
        "deployments": [
            {
                "provider": name,
                "model": f"model-{name}",
                "price": {"input": PRICES[name][0], "output": PRICES[name][1]},
                "quality": 0.99,  # what someone typed: every one "meets" the bar until measured
            }
            for name in mocks
        ],
    }
    return {
        "server": {"master_key": MASTER_KEY, **server},
        "providers": providers,
        "models": models,
        "state": {"dir": str(state_dir)},
    }


def _dataset(path: Path, n: int = 150) -> Path:
    capitals = ["Paris", "Lyon", "Berlin", "Madrid", "Rome", "Vienna", "Prague", "Lisbon", "Oslo", "Bern"]
    with path.open("wb") as out:
        for i in range(n):
            answer = str(100 + i) if i % 2 else capitals[i % len(capitals)]
            line = {
                "messages": [{"role": "user", "content": f"Question {i}. Answer with: {answer}"}],
                "max_tokens": 8,  # bounds the worst case reserved against --max-usd
                "expected": answer,
                "metadata": {"i": i},
            }
            out.write(orjson.dumps(line) + b"\n")
    return path


def _hedge(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "hedge", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def setup(quality_mocks: dict[str, Mock], tmp_path: Path) -> tuple[Path, Path]:
    for mock in quality_mocks.values():
        mock.configure(latency_ms=0, fail_rate=0)
        mock.reset()
    config = tmp_path / "hedge.yaml"
    config.write_text(yaml.safe_dump(_config(quality_mocks, tmp_path / "state")))
    return config, _dataset(tmp_path / "d.jsonl")


def test_eval_recommends_the_cheapest_candidate_that_meets_the_bar(setup: tuple[Path, Path]) -> None:
    config, dataset = setup
    base = ["eval", "--config", str(config), "--dataset", str(dataset), "--candidates", "high,mid,low"]
    base += ["--reference", "high", "--grader", "exact", "--bar", "0.85", "--concurrency", "8"]
    done = _hedge(*base, "--format", "json")
    report = orjson.loads(done.stdout)
    assert list(report) == ["candidates", "recommended"]
    rows = {c["target"]: c for c in report["candidates"]}
    assert [list(c) for c in report["candidates"]] == [JSON_KEYS] * 3
    assert report["recommended"] == "mid"
    assert rows["low"]["meets_bar"] is False and rows["low"]["ci_high"] < 0.85
    assert rows["mid"]["meets_bar"] is True and rows["high"]["meets_bar"] is True
    for name, quality in QUALITIES.items():
        row = rows[name]
        assert row["n"] == 150
        assert abs(row["quality"] - quality) <= 0.02  # the mocks' low-discrepancy draws
        assert row["ci_low"] < row["quality"] < row["ci_high"]
        assert row["cost_usd"] > 0 and row["latency_p50_ms"] <= row["latency_p95_ms"]
    assert rows["high"]["cost_per_1k_usd"] > rows["mid"]["cost_per_1k_usd"] > rows["low"]["cost_per_1k_usd"]
    assert (rows["high"]["win"], rows["high"]["tie"], rows["high"]["loss"]) == (0, 150, 0)
    assert rows["low"]["loss"] > rows["low"]["win"]
    assert "progress" not in done.stderr and "━" not in done.stderr  # no bar when not a terminal

    table = _hedge(*base).stdout
    assert "Recommended: mid" in table and "Below the bar: low." in table
    assert "recommended" in table and "high (reference)" in table
    markdown = _hedge(*base, "--format", "markdown", "--output", str(config.parent / "r.md")).stdout
    assert markdown == ""
    text = (config.parent / "r.md").read_text()
    assert "| **mid** |" in text and "| candidate | n |" in text and "Recommended: mid" in text


def test_eval_books_through_the_ledger_tagged_eval(setup: tuple[Path, Path]) -> None:
    config, dataset = setup
    args = ["eval", "--config", str(config), "--dataset", str(dataset), "--candidates", "low,mid/model-mid"]
    report = orjson.loads(_hedge(*args, "--format", "json").stdout)
    assert report["candidates"][1]["target"] == "mid/model-mid"  # a deployment, pinned
    spend = orjson.loads(_hedge("spend", "--config", str(config), "--by", "tag", "--format", "json").stdout)
    eval_row = next(r for r in spend["rows"] if r["group"] == "eval")
    assert eval_row["requests"] == 300
    total = sum(c["cost_usd"] for c in report["candidates"])
    assert eval_row["cost_usd"] == pytest.approx(total, rel=1e-6)


def test_max_usd_holds_under_concurrency(setup: tuple[Path, Path]) -> None:
    config, dataset = setup
    args = ["eval", "--config", str(config), "--dataset", str(dataset), "--candidates", "high"]
    full = orjson.loads(_hedge(*args, "--format", "json").stdout)["candidates"][0]["cost_usd"]
    cap = full / 3
    done = _hedge(*args, "--format", "json", "--max-usd", f"{cap:.10f}", "--concurrency", "16")
    row = orjson.loads(done.stdout)["candidates"][0]
    assert 0 < row["cost_usd"] <= cap and row["n"] < 150
    table = _hedge(*args, "--max-usd", f"{cap:.10f}", "--concurrency", "16").stdout
    assert "budget (--max-usd) ran out" in table and "not sent" in table


def test_apply_feeds_the_cheapest_strategy(setup: tuple[Path, Path], logs: Path) -> None:
    config, dataset = setup

    async def first_choice() -> str:
        runtime = await open_runtime(load_config(config))
        try:
            _, plan = runtime.router.plan("pick")
            return plan[0].id
        finally:
            await runtime.close()

    assert asyncio.run(first_choice()) == "low/model-low"  # configured quality 0.99 for all: cheapest wins
    args = ["eval", "--config", str(config), "--dataset", str(dataset), "--candidates", "high,mid,low"]
    done = _hedge(*args, "--bar", "0.85", "--apply", "--format", "json")
    assert "stored measured quality for 3 deployment(s)" in done.stderr
    assert asyncio.run(first_choice()) == "mid/model-mid"  # measured beats configured

    gw = start_gateway(yaml.safe_load(config.read_text()), logs)
    try:
        import httpx

        rows = httpx.get(
            f"{gw.url}/admin/dashboard/breakers", headers={"Authorization": f"Bearer {MASTER_KEY}"}
        ).json()["deployments"]
        by = {r["deployment"]: r for r in rows}
        low = by["low/model-low"]
        assert low["quality_source"] == "measured" and low["configured_quality"] == 0.99
        assert low["measured_quality"]["n"] == 150 and low["measured_quality"]["grader"] == "exact"
        assert low["quality"] == pytest.approx(low["measured_quality"]["ci_low"], abs=1e-3)
        assert low["quality"] < 0.85
    finally:
        gw.stop()


def test_bad_input_is_a_clear_error(setup: tuple[Path, Path], tmp_path: Path) -> None:
    config, dataset = setup
    base = ["eval", "--config", str(config), "--dataset", str(dataset)]
    unknown = _hedge(*base, "--candidates", "nope", check=False)
    assert unknown.returncode == 2 and "unknown candidate 'nope'" in unknown.stderr
    grader = _hedge(*base, "--candidates", "low", "--grader", "fuzzy", check=False)
    assert grader.returncode == 2 and "unknown grader 'fuzzy'" in grader.stderr
    judge = _hedge(*base, "--candidates", "low", "--grader", "judge:low", check=False)
    assert judge.returncode == 2 and "--reference" in judge.stderr
    relative = _hedge(
        *base, "--candidates", "low", "--reference", "mid", "--grader", "judge:low", "--apply", check=False
    )
    assert relative.returncode == 2 and "relative to the reference" in relative.stderr
    rubric = _hedge(*base, "--candidates", "low", "--rubric", str(dataset), check=False)
    assert rubric.returncode == 2 and "--rubric is for a judge" in rubric.stderr
    bar = _hedge(*base, "--candidates", "low", "--bar", "85", check=False)
    assert bar.returncode == 2 and "--bar must be between 0 and 1" in bar.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": "hi"}\n')
    broken = _hedge(
        "eval", "--config", str(config), "--dataset", str(bad), "--candidates", "low", check=False
    )
    assert broken.returncode == 2 and "line 2" in broken.stderr and "Traceback" not in broken.stderr


def test_a_judge_grader_runs_through_an_alias(
    quality_mocks: dict[str, Mock], tmp_path: Path, logs: Path
) -> None:
    from conftest import _wait_ready
    from hedge.cli.net import free_port

    port = free_port()
    log = logs / f"judge-{port}.log"
    script = Path(__file__).with_name("judge_upstream.py")
    judge = subprocess.Popen(
        [sys.executable, str(script), str(port)], stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        _wait_ready(judge, f"http://127.0.0.1:{port}/ready", log)
        for mock in quality_mocks.values():
            mock.reset()
        config = _config(quality_mocks, tmp_path / "state")
        config["providers"]["judge"] = {
            "style": "openai",
            "base_url": f"http://127.0.0.1:{port}/v1",
            "api_key": "sk-j",
        }
        config["models"]["judge"] = {
            "deployments": [{"provider": "judge", "model": "judge-1", "price": {"input": 1.0, "output": 1.0}}]
        }
        path = tmp_path / "hedge.yaml"
        path.write_text(yaml.safe_dump(config))
        dataset = _dataset(tmp_path / "d.jsonl", n=40)
        args = ["eval", "--config", str(path), "--dataset", str(dataset), "--candidates", "mid,low"]
        args += ["--reference", "high", "--grader", "judge:judge", "--bar", "0.4", "--format", "json"]
        report = orjson.loads(_hedge(*args).stdout)
        rows = {c["target"]: c for c in report["candidates"]}
        assert rows["high"]["n"] == 40 and (rows["high"]["tie"], rows["high"]["quality"]) == (40, 0.5)
        low, mid = rows["low"], rows["mid"]
        assert low["n"] == mid["n"] == 40
        assert low["win"] + low["tie"] + low["loss"] == 40
        assert low["loss"] >= 12 and low["loss"] > mid["loss"]  # the judge sees the wrong answers
        assert low["quality"] < mid["quality"] <= 0.55
        assert report["recommended"] == "mid"
        spend = _hedge("spend", "--config", str(path), "--by", "model", "--format", "json").stdout
        judged = next(r for r in orjson.loads(spend)["rows"] if r["group"] == "judge-1")
        assert judged["requests"] == 2 * 2 * 40  # two candidates, both orders, every item
        table = _hedge(*args[:-2]).stdout
        # 160 judge requests of 100 prompt tokens and 1 completion token at $1 per million each
        assert "Grading (judge:judge) cost $0.01616 more." in table
    finally:
        judge.terminate()
        judge.wait(10)


def test_export_logged_requests_then_evaluate_them(
    quality_mocks: dict[str, Mock], logs: Path, tmp_path: Path
) -> None:
    import openai

    gw = start_gateway(_config(quality_mocks, tmp_path / "state", log_bodies=True), logs)
    try:
        client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0)
        for i in range(12):
            client.chat.completions.create(model="mid", messages=[{"role": "user", "content": f"hello {i}"}])
        client.chat.completions.create(model="low", messages=[{"role": "user", "content": "other alias"}])
        out = tmp_path / "exported.jsonl"
        args = ["dataset", "export", "--config", str(gw.config_path), "--alias", "mid", "--since", "1h"]
        deadline = time.monotonic() + 20
        lines: list[dict[str, Any]] = []
        while time.monotonic() < deadline:  # the ledger and body log are written in batches
            _hedge(*args, "--sample", "10", "--output", str(out))
            lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
            if len(lines) == 10:
                break
            time.sleep(0.2)
        assert len(lines) == 10
        assert all(line["expected"] == f"model-mid says: {line['messages'][0]['content']}" for line in lines)
        assert all("model" not in line and line["metadata"]["provider"] == "mid" for line in lines)
    finally:
        gw.stop()
    config = gw.config_path
    args = ["eval", "--config", str(config), "--dataset", str(out), "--candidates", "mid,low", "--bar", "0.7"]
    done = _hedge(*args)  # 10 of 10 right: Wilson's lower bound is 0.72
    assert "Recommended: mid" in done.stdout and "Below the bar: low." in done.stdout


def test_batch_input_lines_and_similarity_through_an_embeddings_alias(
    quality_mocks: dict[str, Mock], tmp_path: Path
) -> None:
    config = _config(quality_mocks, tmp_path / "state")
    config["models"]["embed"] = {
        "deployments": [{"provider": "low", "model": "text-embedding-3-small", "price": {"input": 0.02}}]
    }
    path = tmp_path / "hedge.yaml"
    path.write_text(yaml.safe_dump(config))
    dataset = tmp_path / "batch.jsonl"
    lines = [
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": f"Answer with: {i}"}]},
            "expected": str(i),
        }
        for i in range(20)
    ]
    dataset.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    for mock in quality_mocks.values():
        mock.configure(quality=1.0)
    try:
        args = ["eval", "--config", str(path), "--dataset", str(dataset), "--candidates", "high"]
        report = orjson.loads(_hedge(*args, "--grader", "similarity:embed", "--format", "json").stdout)
        row = report["candidates"][0]
        assert (row["n"], row["quality"]) == (20, 1.0)  # identical texts: cosine 1
        assert report["recommended"] == "high"
    finally:
        for name, mock in quality_mocks.items():
            mock.configure(quality=QUALITIES[name])


def test_the_progress_bar_is_drawn_on_a_terminal_only(setup: tuple[Path, Path]) -> None:
    import pty

    config, dataset = setup
    args = [
        "eval",
        "--config",
        str(config),
        "--dataset",
        str(dataset),
        "--candidates",
        "low",
        "--format",
        "json",
    ]
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hedge", *args],
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"},
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert b"hedge eval" in seen and b"/150" in seen  # the bar, with its count, on the terminal
    assert orjson.loads(out)["candidates"][0]["n"] == 150  # and only the report on stdout


def test_a_python_grader_from_the_working_directory(setup: tuple[Path, Path], tmp_path: Path) -> None:
    config, dataset = setup
    (tmp_path / "my_graders.py").write_text(
        "def digits(case):\n"
        "    if case.expected == '101':\n"
        "        raise RuntimeError('cannot grade this one')\n"
        "    return case.answer.text.strip().isdigit()\n"
    )
    args = ["eval", "--config", str(config), "--dataset", str(dataset), "--candidates", "low"]
    args += ["--grader", "python:my_graders:digits", "--format", "json"]
    done = subprocess.run(
        [sys.executable, "-m", "hedge", *args], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    row = orjson.loads(done.stdout)["candidates"][0]
    assert row["n"] == 149  # the item the grader failed on is not scored
    assert row["quality"] == pytest.approx(74 / 149)  # half the items expect a number, right or wrong
    table = subprocess.run(
        [sys.executable, "-m", "hedge", *args[:-2]], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert "1 ungraded" in table.stdout
