"""Where Hedge spends its CPU under load: py-spy samples, summarized per Hedge function.

``python bench/profile_hedge.py [--seconds 10]`` (needs ``pip install py-spy`` in the
main venv) starts a 0 ms mock and Hedge, saturates Hedge with closed-loop load
(whole responses, then streams), samples it with py-spy, and writes
``bench/results/profile.md`` / ``profile.json`` (tables) and ``profile.svg`` (a
flame graph of a mixed load).

Each sample is charged to the *deepest Hedge frame* on its stack: the time of a
Hedge function plus the library code it calls directly, excluding time charged
to Hedge functions it calls. Those shares add up to the part of the samples that
passes through Hedge code at all; the rest is the server and the event loop.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import procstat
import targets
from driver import LoadSpec, Watched, run_load

FRAME_RE = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")
LAYERS = [
    ("hedge/transport (upstream client)", "hedge/transport/"),
    ("hedge", "hedge/"),
    ("uvicorn/httptools (server)", "uvicorn/"),
    ("starlette", "starlette/"),
    ("aiohttp (upstream client)", "aiohttp/"),
    ("asyncio", "asyncio/"),
    ("orjson", "orjson"),
    ("pydantic", "pydantic"),
    ("multidict/yarl", "multidict/"),
    ("multidict/yarl", "yarl/"),
]


def parse_frame(frame: str) -> tuple[str, str]:
    m = FRAME_RE.match(frame)
    if not m:
        return frame, ""
    return m.group("func"), m.group("file")


def _norm(path: str) -> str:
    """py-spy prints paths relative to sys.path (``hedge/api/chat.py``); normalize absolute ones too."""
    for marker in ("/src/", "/site-packages/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


ENTRY = ("hedge/__main__.py", "hedge/cli/__init__.py")


def is_hedge(path: str) -> bool:
    """Hedge's own request-path code; the CLI entry frames under the server loop do not count."""
    p = _norm(path)
    return p.startswith("hedge/") and not p.startswith(ENTRY)


def layer_of(func: str, path: str) -> str:
    p = _norm(path)
    if func.startswith("Runner.run") and p.startswith("asyncio/"):
        return "event loop (uvloop C code: socket I/O, callbacks)"
    for name, marker in LAYERS:
        if p.startswith(marker):
            return name
    return "other (stdlib, ...)"


def analyse(raw: Path) -> dict[str, Any]:
    total = 0
    charged: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaf_layer: Counter[str] = Counter()
    through_hedge = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [parse_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        leaf_layer[layer_of(*frames[-1])] += n
        hedge_frames = [f"{_norm(file)}:{func}" for func, file in frames if is_hedge(file)]
        if hedge_frames:
            through_hedge += n
            charged[hedge_frames[-1]] += n
            for name in set(hedge_frames):
                inclusive[name] += n

    def share(c: Counter[str], k: int) -> list[dict[str, Any]]:
        return [{"name": name, "samples": v, "share": v / total} for name, v in c.most_common(k)]

    return {
        "samples": total,
        "through_hedge_share": through_hedge / total if total else 0.0,
        "charged_to_deepest_hedge_frame": share(charged, 15),
        "inclusive": share(inclusive, 15),
        "leaf_layer": share(leaf_layer, 12),
    }


def _table(rows: list[dict[str, Any]], title: str) -> list[str]:
    out = [f"| {title} | share of samples |", "|---|---|"]
    out += [f"| `{r['name']}` | {r['share']:.1%} |" for r in rows]
    return out


def py_spy() -> str:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        raise SystemExit("py-spy not found: pip install py-spy (into the main venv)")
    return exe


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Profile Hedge under load with py-spy.")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds sampled per load shape")
    p.add_argument("--concurrency", type=int, default=32)
    args = p.parse_args(argv)
    py_spy()
    targets.TMP.mkdir(parents=True, exist_ok=True)
    procs: list[targets.Proc] = []
    phases: dict[str, dict[str, Any]] = {}
    try:
        mock = targets.start_mock("profile-mock", 0)
        procs.append(mock)
        hedge = targets.start_hedge({"fast": mock}, name="profile-hedge")
        procs.append(hedge)
        for name, share, fmt in (("whole", 0.0, "raw"), ("stream", 1.0, "raw"), ("mixed", 0.5, "flamegraph")):
            spec = LoadSpec(
                url=f"{hedge.base}/v1/chat/completions",
                model="fast",
                mode="closed",
                duration=args.seconds + 3,
                concurrency=args.concurrency,
                stream_share=share,
                warmup=1.0,
            )
            out = (
                targets.RESULTS / "profile.svg"
                if fmt == "flamegraph"
                else targets.TMP / f"profile-{name}.raw"
            )
            holder: dict[str, Any] = {}

            def start_recording(out: Path = out, fmt: str = fmt, holder: dict[str, Any] = holder) -> None:
                cmd = [py_spy(), "record", "--pid", str(hedge.pid), "--duration", str(int(args.seconds))]
                cmd += ["--rate", "250", "--nonblocking", "--gil", "--format", fmt, "-o", str(out)]
                holder["proc"] = subprocess.Popen(
                    cmd,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )

            print(
                f"profiling Hedge under closed-loop c={args.concurrency}, {name} responses...",
                file=sys.stderr,
            )
            threads0: dict[int, float] = {}

            def on_start(start: Any = start_recording, snap: dict[int, float] = threads0) -> None:
                snap.update(procstat.thread_cpu(hedge.pid))
                start()

            res = run_load(spec, Watched({"hedge": hedge.pid}), on_start=on_start)
            threads1 = procstat.thread_cpu(hedge.pid)
            spy = holder.get("proc")
            if spy is not None:
                spy.wait(timeout=60)
            time.sleep(0.5)
            used = {tid: threads1[tid] - threads0.get(tid, 0.0) for tid in threads1}
            total_cpu = sum(used.values()) or 1e-9
            phases[name] = {
                "main_thread_cpu_share": used.get(hedge.pid, 0.0) / total_cpu,
                "other_threads_cpu_share": 1 - used.get(hedge.pid, 0.0) / total_cpu,
                "hedge_cpu_cores": total_cpu / res["window_s"],
                "achieved_rps": res["achieved_rps"],
                "hedge_cpu_s_per_1k": res["cpu_s"]["hedge"] / max(res["ok"], 1) * 1000,
                "errors": res["error_count"],
            }
            if fmt == "raw":
                phases[name].update(analyse(out))
    finally:
        targets.stop_all(procs)

    (targets.RESULTS / "profile.json").write_text(json.dumps(phases, indent=2) + "\n")
    lines = [
        "# Hedge CPU profile (py-spy)",
        "",
        f"Closed-loop load at concurrency {args.concurrency} against a 0 ms mock, {args.seconds:g} s sampled "
        "per shape at 250 Hz with `py-spy record --gil` (only the thread holding the GIL: Python CPU time); "
        "py-spy, load generator and mock share the machine's cores with Hedge. "
        "Flame graph of a mixed load: `profile.svg`.",
        "",
    ]
    for name in ("whole", "stream"):
        ph = phases.get(name)
        if not ph:
            continue
        lines += [
            f"## {name} responses: {ph['achieved_rps']:,.0f} RPS, "
            f"{ph['hedge_cpu_s_per_1k']:.2f} CPU s per 1k requests",
            "",
            f"Hedge used {ph['hedge_cpu_cores']:.2f} cores: {ph['main_thread_cpu_share']:.0%} in the "
            f"event-loop thread, {ph['other_threads_cpu_share']:.0%} in other threads "
            "(e.g. the SQLite ledger writer). "
            f"{ph['samples']:,} samples of the thread holding the GIL; "
            f"{ph['through_hedge_share']:.1%} have a Hedge request-path frame on the stack.",
            "",
        ]
        lines += _table(ph["charged_to_deepest_hedge_frame"], "deepest Hedge frame (self + library callees)")
        lines += [""]
        lines += _table(ph["inclusive"], "Hedge function, inclusive")
        lines += [""]
        lines += _table(ph["leaf_layer"], "layer of the innermost frame")
        lines += [""]
    (targets.RESULTS / "profile.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
