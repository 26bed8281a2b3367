"""Runs one load-generator process against one target and measures the target around it.

The load generator announces the measured window on stdout (``#start`` /
``#end``); CPU of the target's process tree, of the mock and of the whole machine
is read exactly at those two moments, and RSS is sampled throughout.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import procstat

LOADGEN = Path(__file__).resolve().parent / "loadgen.py"


@dataclass
class LoadSpec:
    url: str
    model: str
    mode: str  # "open" | "closed"
    duration: float
    rate: float | None = None
    concurrency: int | None = None
    stream_share: float = 0.0
    requests: int = 0
    warmup: float = 1.0
    timeout: float = 10.0
    max_inflight: int = 2000

    def argv(self) -> list[str]:
        args = [sys.executable, str(LOADGEN), "--url", self.url, "--model", self.model, "--mode", self.mode]
        args += [
            "--duration",
            str(self.duration),
            "--warmup",
            str(self.warmup),
            "--timeout",
            str(self.timeout),
        ]
        args += ["--stream-share", str(self.stream_share), "--max-inflight", str(self.max_inflight)]
        if self.rate is not None:
            args += ["--rate", str(self.rate)]
        if self.concurrency is not None:
            args += ["--concurrency", str(self.concurrency)]
        if self.requests:
            args += ["--requests", str(self.requests)]
        return args


@dataclass
class Watched:
    """Process trees whose CPU is read at the window's edges: name -> root pid."""

    roots: dict[str, int]
    trees: dict[str, list[int]] = field(default_factory=dict)

    def refresh(self) -> None:
        self.trees = {name: procstat.tree(pid) for name, pid in self.roots.items()}

    def cpu(self) -> dict[str, float]:
        return {name: procstat.cpu_seconds(pids) for name, pids in self.trees.items()}


def run_load(
    spec: LoadSpec,
    watched: Watched,
    sampler: procstat.RssSampler | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_start: Callable[[], None] | None = None,
    hard_limit: float | None = None,
) -> dict[str, Any]:
    """Run the load generator to completion; its result plus CPU (s) per watched tree in the window."""
    watched.refresh()
    limit = hard_limit or (spec.warmup + spec.duration + spec.timeout + 60)
    proc = subprocess.Popen(
        spec.argv(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    deadline = time.monotonic() + limit
    cpu0: dict[str, float] = {}
    cpu1: dict[str, float] = {}
    sys0 = sys1 = t_start = t_end = 0.0
    result: dict[str, Any] | None = None
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            line = line.rstrip("\n")
            if line == "#start":
                cpu0, sys0, t_start = watched.cpu(), procstat.machine_busy_seconds(), time.monotonic()
                if sampler is not None:
                    sampler.peaks.clear()
                if on_start is not None:
                    on_start()
            elif line == "#end":
                cpu1, sys1, t_end = watched.cpu(), procstat.machine_busy_seconds(), time.monotonic()
            elif line.startswith("#progress ") and on_progress is not None:
                on_progress(int(line.split()[1]))
            elif line.startswith("#result "):
                result = json.loads(line[len("#result ") :])
    finally:
        if proc.poll() is None:
            # Our own child, by its own process group id.
            os.killpg(proc.pid, 9)
        proc.wait(10)
    if result is None:
        err = proc.stderr.read()[-2000:] if proc.stderr else ""
        raise RuntimeError(f"load generator gave no result (exit {proc.returncode}): {err}")
    window = max(t_end - t_start, 1e-9)
    result["cpu_s"] = {name: cpu1.get(name, 0.0) - cpu0.get(name, 0.0) for name in watched.roots}
    result["window_s"] = window
    result["system_busy_cores"] = (sys1 - sys0) / window
    if sampler is not None:
        result["peak_rss"] = dict(sampler.peaks)
    return result


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, cwd=Path(__file__).resolve().parent
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def machine_info(litellm: str | None = None) -> dict[str, Any]:
    cpu_model = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
                break
    with open("/proc/loadavg") as fh:
        loadavg = fh.read().split()[:3]
    packages = [
        "hedge-gateway",
        "uvicorn",
        "starlette",
        "aiohttp",
        "uvloop",
        "httptools",
        "orjson",
        "pydantic",
    ]
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": [float(x) for x in loadavg],
        "packages": {name: _version(name) for name in packages},
        "litellm": litellm,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
    }
