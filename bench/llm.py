"""LLM-shaped load: direct vs. Hedge vs. LiteLLM, in one run: ``python bench/llm.py [--quick]``.

What an LLM gateway really carries is not thousands of tiny answers a second but hundreds of long
streams at model pace and thousands of connections waiting seconds for an answer. Two scenarios,
each started as one burst (every connection opens at the same instant):

* ``streams``: N concurrent streams of about 100 content chunks, paced by the mock like a model
  (``--pace-ms`` per chunk). Reported: chunks/s, time to first token (from the burst's start) and
  what the gateway adds to it, the gap between chunks (p50/p99) and what the gateway adds to its p99,
  the gateway's CPU per chunk, peak RSS, and memory per open stream.
  The burst is repeated ``--rounds`` times, direct and Hedge in turn each round, and the report
  gives each round's added TTFT and their median: on two shared cores one burst's figure moves by
  tens of milliseconds from run to run, as much as what is being measured.
* ``slow``: N concurrent whole requests to an upstream taking seconds per answer, each connection
  asking again as soon as it has its answer, for a fixed time. Reported: answers/s, latency and what
  the gateway adds, CPU per request, peak RSS, memory per open connection.

"Memory per open stream" is (peak RSS of the target's process tree during the burst - its RSS just
before) / N. For ``direct`` the target is the mock itself. Writes ``bench/results/llm.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

import procstat
import targets
from driver import Watched, machine_info, run_load

console = Console(stderr=True)
LLMGEN = Path(__file__).resolve().parent / "llmgen.py"


@dataclass(frozen=True)
class Scenario:
    key: str
    shape: str  # "streams" | "slow"
    n: int
    words: int
    upstream_ms: float  # the mock's latency per answer (spread over a stream's chunks)
    duration: float = 0.0  # slow: how long each connection keeps asking

    @property
    def label(self) -> str:
        if self.shape == "streams":
            pace = self.upstream_ms / (self.words + 2)
            return f"{self.n} concurrent streams x ~{self.words} chunks, {pace:.0f} ms/chunk"
        return f"{self.n} concurrent connections, {self.upstream_ms / 1000:g} s per answer"


@dataclass
class GenSpec:
    """The load generator's command line; duck-types ``driver.LoadSpec`` for ``run_load``."""

    url: str
    model: str
    scenario: Scenario
    timeout: float = 120.0
    warmup: float = 0.0

    @property
    def duration(self) -> float:
        return self.scenario.duration or self.scenario.upstream_ms / 1000

    def argv(self) -> list[str]:
        sc = self.scenario
        args = [sys.executable, str(LLMGEN), "--url", self.url, "--model", self.model]
        args += ["--shape", sc.shape, "--n", str(sc.n), "--words", str(sc.words)]
        args += ["--duration", str(sc.duration), "--timeout", str(self.timeout)]
        return args


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    words = args.words
    stream_ms = args.pace_ms * (words + 2)
    n_streams = args.streams if args.streams else (100 if args.quick else 300)
    n_slow = args.connections if args.connections else (500 if args.quick else 2000)
    slow_s = args.slow_s
    return [
        Scenario(f"streams-{n_streams}", "streams", n_streams, words, stream_ms),
        Scenario(f"slow-{n_slow}", "slow", n_slow, 8, slow_s * 1000, duration=4 * slow_s),
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="LLM-shaped load: long streams and slow upstreams.")
    p.add_argument("--quick", action="store_true", help="fewer connections (100 streams, 500 slow)")
    p.add_argument("--no-litellm", action="store_true", help="skip LiteLLM")
    p.add_argument("--streams", type=int, default=0, help="concurrent streams (default 300; quick 100)")
    p.add_argument("--connections", type=int, default=0, help="slow: connections (default 2000; quick 500)")
    p.add_argument("--words", type=int, default=100, help="content chunks per streamed answer")
    p.add_argument("--pace-ms", type=float, default=30.0, help="the mock's pause between chunks")
    p.add_argument("--slow-s", type=float, default=3.0, help="slow: seconds per answer")
    p.add_argument("--rounds", type=int, default=5, help="streams: interleaved bursts per target (median)")
    p.add_argument("--only", default="", help="run only scenarios whose key contains this text")
    p.add_argument("--name", default="llm", help="write results/NAME.json/.md")
    return p.parse_args(argv)


def measure(sc: Scenario, target: str, proc: targets.Proc, mock: targets.Proc) -> dict[str, Any]:
    model = targets.UPSTREAM_MODEL if target == "direct" else sc.shape
    url = f"{proc.base}/v1/chat/completions"
    # Unmeasured warm-up: a small burst of the same shape, so first-connection costs are not measured.
    small = Scenario(sc.key, sc.shape, min(sc.n, 20), sc.words, sc.upstream_ms, min(sc.duration, 1.0))
    run_load(GenSpec(url, model, small), Watched({}), hard_limit=120)  # type: ignore[arg-type]
    spec = GenSpec(url, model, sc)
    procstat.wait_idle(procstat.tree(proc.pid), limit=20.0)
    procstat.wait_machine_quiet(limit=10.0)
    rss_before = procstat.rss_bytes(procstat.tree(proc.pid))
    sampler = procstat.RssSampler({"target": proc.pid}, interval=0.1)
    sampler.start()
    try:
        watched = Watched({"target": proc.pid, "mock": mock.pid, "bench": os.getpid()})
        res = run_load(spec, watched, sampler, hard_limit=spec.duration + spec.timeout + 60)  # type: ignore[arg-type]
    finally:
        sampler.stop()
    cpu = res["cpu_s"]["target"]
    peak = res.get("peak_rss", {}).get("target", 0)
    units = res["chunks"] if sc.shape == "streams" else res["ok"]
    return {
        "scenario": sc.key,
        "target": target,
        **{k: res[k] for k in ("ok", "errors", "error_count", "wall_s", "chunks", "chunks_per_s")},
        **{k: res[k] for k in ("achieved_rps", "ttft_ms", "gap_ms", "latency_ms")},
        "cpu_s": cpu,
        "cpu_us_per_unit": cpu / units * 1e6 if units else None,
        "peak_rss_mb": peak / 1e6,
        "rss_before_mb": rss_before / 1e6,
        "kb_per_connection": max(0, peak - rss_before) / sc.n / 1e3,
        "system_busy_cores": res["system_busy_cores"],
    }


def _p(d: dict[str, float] | None, q: str) -> float | None:
    return None if not d else d.get(q)


def _f(v: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if v is None else fmt.format(v)


def _plus(run: dict[str, Any], direct: dict[str, Any] | None, field: str, q: str) -> str:
    if direct is None or run["target"] == "direct":
        return "-"
    a, b = _p(run[field], q), _p(direct[field], q)
    return "-" if a is None or b is None else f"{a - b:+.1f}"


def added_ttft_by_round(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Each gateway's added TTFT p50 (vs direct in the same round), round by round."""
    out: dict[str, list[float]] = {}
    for rnd in sorted({r.get("round", 1) for r in runs}):
        here = [r for r in runs if r.get("round", 1) == rnd]
        direct = next((r for r in here if r["target"] == "direct"), None)
        base = _p(direct["ttft_ms"], "p50") if direct else None
        for r in here:
            mine = _p(r["ttft_ms"], "p50")
            if r["target"] != "direct" and base is not None and mine is not None:
                out.setdefault(r["target"], []).append(mine - base)
    return out


def _rounds_table(runs: list[dict[str, Any]]) -> list[str]:
    added = {t: v for t, v in added_ttft_by_round(runs).items() if len(v) > 1}
    if not added:
        return []
    n = max(len(v) for v in added.values())
    lines = [
        f"Added TTFT p50 (ms) in {n} interleaved bursts (each round: direct, then each gateway):",
        "",
        "| target | " + " | ".join(f"round {i + 1}" for i in range(n)) + " | median |",
        "| --- | " + " | ".join("---" for _ in range(n)) + " | --- |",
    ]
    for target, values in added.items():
        cells = [f"{v:+.1f}" for v in values] + ["-"] * (n - len(values))
        lines.append(f"| {target} | " + " | ".join(cells) + f" | **{statistics.median(values):+.1f}** |")
    return [*lines, ""]


def markdown(data: dict[str, Any]) -> str:
    lines = [f"# LLM-shaped load ({data['generated_at']})", ""]
    m = data["machine"]
    lines += [
        f"Command: `{data['command']}`; commit {m.get('git_commit')}"
        f"{' (dirty)' if m.get('git_dirty') else ''}; {m.get('cores')} cores ({m.get('cpu_model')}); "
        f"LiteLLM {data.get('litellm') or 'not run'}.",
        "",
    ]
    for sc in data["scenarios"]:
        every = [r for r in data["runs"] if r["scenario"] == sc["key"]]
        runs = [r for r in every if r.get("round", 1) == 1]
        direct = next((r for r in runs if r["target"] == "direct"), None)
        lines += [f"## {Scenario(**sc).label}", ""]
        if sc["shape"] == "streams":
            lines += [
                "| target | ok / errors | chunks/s | TTFT p50 | TTFT p99 | +TTFT p50 | gap p50 | gap p99 "
                "| +gap p99 | CPU µs/chunk | peak RSS MB | KB/open stream |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            ]
            for r in runs:
                lines.append(
                    f"| {r['target']} | {r['ok']} / {r['error_count']} | {r['chunks_per_s']:,.0f} "
                    f"| {_f(_p(r['ttft_ms'], 'p50'))} | {_f(_p(r['ttft_ms'], 'p99'))} "
                    f"| {_plus(r, direct, 'ttft_ms', 'p50')} | {_f(_p(r['gap_ms'], 'p50'))} "
                    f"| {_f(_p(r['gap_ms'], 'p99'))} | {_plus(r, direct, 'gap_ms', 'p99')} "
                    f"| {_f(r['cpu_us_per_unit'], '{:.0f}')} | {r['peak_rss_mb']:.0f} "
                    f"| {r['kb_per_connection']:.0f} |"
                )
        else:
            lines += [
                "| target | ok / errors | answers/s | p50 ms | p99 ms | +p50 | +p99 | CPU µs/answer "
                "| peak RSS MB | KB/open connection |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            ]
            for r in runs:
                lines.append(
                    f"| {r['target']} | {r['ok']} / {r['error_count']} | {r['achieved_rps']:,.0f} "
                    f"| {_f(_p(r['latency_ms'], 'p50'))} | {_f(_p(r['latency_ms'], 'p99'))} "
                    f"| {_plus(r, direct, 'latency_ms', 'p50')} | {_plus(r, direct, 'latency_ms', 'p99')} "
                    f"| {_f(r['cpu_us_per_unit'], '{:.0f}')} | {r['peak_rss_mb']:.0f} "
                    f"| {r['kb_per_connection']:.0f} |"
                )
        errs = {r["target"]: r["errors"] for r in runs if r["errors"]}
        if errs:
            lines += ["", f"Errors: {json.dumps(errs)}"]
        lines.append("")
        if sc["shape"] == "streams":
            lines += _rounds_table(every)
    lines += [
        "TTFT counts from the burst's start (every connection opens at once), so it includes the time "
        "each target takes to accept and set up the whole burst. Gaps are measured between content "
        "chunks as the client reads them (chunks that arrive in one read count as gaps of 0). CPU is "
        "the target's whole process tree (for direct, the mock), per content chunk or per answer. "
        "KB per open connection: (peak RSS - RSS before) / connections. `hedge warm=N` is Hedge with "
        "`warm_connections: N` on the provider: the burst finds its upstream connections already open "
        "(plain `hedge` opens most of them during the burst).",
        "",
    ]
    lines += [f"- {n}" for n in data["notes"]]
    return "\n".join(lines) + "\n"


def _run(
    sc: Scenario, target: str, proc: targets.Proc, mock: targets.Proc, rnd: int, notes: list[str]
) -> dict[str, Any] | None:
    """One measured burst, or None (with a note) when it failed: one broken run must not lose the others."""
    with console.status(f"{sc.label} -> {target} (round {rnd})"):
        try:
            rec = measure(sc, target, proc, mock)
        except Exception as exc:
            notes.append(f"{sc.key} -> {target} (round {rnd}) failed: {exc}"[:300])
            return None
    rec["round"] = rnd
    console.print(
        f"{sc.key} -> {target} (round {rnd}): ok {rec['ok']}, errors {rec['error_count']}, "
        f"{rec['chunks_per_s']:,.0f} chunks/s, {rec['achieved_rps']:,.1f} answers/s"
    )
    if not proc.alive():
        notes.append(f"{target} exited during {sc.key}: {proc.log_tail()}")
    return rec


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = [s for s in scenarios(args) if args.only in s.key]
    shutil.rmtree(targets.TMP, ignore_errors=True)
    targets.TMP.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    procs: list[targets.Proc] = []
    litellm_version = None
    if not args.no_litellm:
        try:
            litellm_version = targets.ensure_litellm()
        except targets.StartError as exc:
            notes.append(f"LiteLLM unavailable: {exc}".replace("\n", " "))
    machine = machine_info(litellm_version)
    runs: list[dict[str, Any]] = []
    t_begin = time.monotonic()
    try:
        mocks = {sc.shape: targets.start_mock(f"mock-{sc.shape}", sc.upstream_ms) for sc in plan}
        procs += mocks.values()
        # Enough upstream connections and per-client connections for the burst; nothing else changed.
        most = max(sc.n for sc in plan) + 100
        server = {"max_connections_per_client": most}
        hedge = targets.start_hedge(mocks, server=server, provider={"max_connections": most})
        procs.append(hedge)
        gateways = {"hedge": hedge}
        if litellm_version is not None:
            try:
                lite = targets.start_litellm(mocks)
                procs.append(lite)
                gateways["litellm"] = lite
            except targets.StartError as exc:
                notes.append(f"LiteLLM did not start: {exc}".replace("\n", " "))
        for sc in plan:
            mock = mocks[sc.shape]
            rounds = max(1, args.rounds) if sc.shape == "streams" else 1
            for rnd in range(1, rounds + 1):
                # LiteLLM only in the first round: its burst takes many seconds and is far off anyway.
                here = gateways if rnd == 1 else {"hedge": hedge}
                for target, proc in [("direct", mock), *here.items()]:
                    rec = _run(sc, target, proc, mock, rnd, notes)
                    if rec is not None:
                        runs.append(rec)
                # The same burst onto a Hedge that keeps as many connections to the upstream warm
                # (started for this burst only: its pool is refilled whenever the mock closes idle
                # connections, and its open connections must not weigh on the other targets' bursts).
                warm_target = f"hedge warm={sc.n}"
                try:
                    warm = targets.start_hedge(
                        {sc.shape: mock},
                        name="hedge-warm",
                        server=server,
                        provider={"max_connections": most, "warm_connections": sc.n},
                    )
                except targets.StartError as exc:
                    notes.append(f"{warm_target} did not start: {exc}".replace("\n", " "))
                    continue
                try:
                    rec = _run(sc, warm_target, warm, mock, rnd, notes)
                    if rec is not None:
                        runs.append(rec)
                finally:
                    targets.stop_all([warm])
    finally:
        targets.stop_all(procs)
    data = {
        "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": round(time.monotonic() - t_begin, 1),
        "command": "python bench/llm.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine,
        "litellm": litellm_version,
        "scenarios": [asdict(s) for s in plan],
        "runs": runs,
        "notes": notes,
    }
    targets.RESULTS.mkdir(parents=True, exist_ok=True)
    text = markdown(data)
    (targets.RESULTS / f"{args.name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (targets.RESULTS / f"{args.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
