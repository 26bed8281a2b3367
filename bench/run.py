"""Hedge vs. direct vs. LiteLLM on this machine, in one run: ``python bench/run.py [--quick]``.

Starts two mock upstreams (0 ms and 50 ms), Hedge, and a LiteLLM proxy installed
into ``bench/.venv-litellm``; drives the same load at each (open-loop fixed rates
and a closed-loop concurrency sweep, whole and streamed responses) from a separate
load-generator process; writes ``bench/results/latest.{json,md}`` (and a copy
named after the mode) and prints the markdown report. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

import procstat
import report
import targets
from driver import LoadSpec, Watched, machine_info, run_load

console = Console(stderr=True)
# A run during which processes outside the benchmark kept this many cores busy is repeated once.
NOISY_CORES = report.NOISY_CORES


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    mode: str  # "open" | "closed"
    stream: bool
    upstream_ms: int  # 0 or 50: which mock
    duration: float
    rate: float | None = None
    concurrency: int | None = None


def _scenario(mode: str, n: float, stream: bool, upstream_ms: int, duration: float) -> Scenario:
    kind = "stream" if stream else "whole"
    if mode == "open":
        key = f"open-{n:g}rps-{kind}-{upstream_ms}ms"
        label = f"open {n:g} RPS, {kind}, {upstream_ms} ms upstream"
        return Scenario(key, label, mode, stream, upstream_ms, duration, rate=float(n))
    key = f"closed-c{int(n)}-{kind}-{upstream_ms}ms"
    label = f"closed c={int(n)}, {kind}, {upstream_ms} ms upstream"
    return Scenario(key, label, mode, stream, upstream_ms, duration, concurrency=int(n))


def scenarios(quick: bool) -> list[Scenario]:
    if quick:
        d = 3.0
        return [
            _scenario("open", 50, False, 0, d),
            _scenario("open", 200, False, 0, d),
            _scenario("open", 200, True, 0, d),
            _scenario("closed", 1, False, 0, d),
            _scenario("closed", 32, False, 0, d),
            _scenario("closed", 32, True, 0, d),
            _scenario("open", 100, True, 50, d),
            _scenario("closed", 64, False, 50, d),
        ]
    o, c = 10.0, 8.0
    out = [_scenario("open", r, False, 0, o) for r in (50, 100, 200, 500)]
    out += [_scenario("open", r, True, 0, o) for r in (50, 100, 200)]
    out += [_scenario("closed", n, False, 0, c) for n in (1, 8, 32, 64)]
    out += [_scenario("closed", n, True, 0, c) for n in (8, 32, 64)]
    out += [_scenario("open", 200, s, 50, o) for s in (False, True)]
    out += [_scenario("closed", 64, s, 50, c) for s in (False, True)]
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark Hedge against direct calls and LiteLLM.")
    p.add_argument("--quick", action="store_true", help="short runs, fewer points (~2-3 minutes)")
    p.add_argument("--no-litellm", action="store_true", help="skip LiteLLM (no install, no runs)")
    p.add_argument("--litellm-spec", default=targets.LITELLM_SPEC, help="pip requirement for LiteLLM")
    p.add_argument("--litellm-start-timeout", type=float, default=180.0, help="seconds to wait for its start")
    p.add_argument("--workers", type=int, default=1, help="Hedge worker processes (default 1)")
    p.add_argument("--only", default="", help="run only scenarios whose key contains this text")
    p.add_argument("--warmup", type=float, default=None, help="unmeasured seconds before each run")
    p.add_argument(
        "--name", default="", help="write results/NAME.json/.md instead of latest.* and quick.*/full.*"
    )
    p.add_argument(
        "--report-only",
        metavar="JSON",
        help="measure nothing: recompute the goals of a saved run (e.g. after a soak) and rewrite its .md",
    )
    p.add_argument(
        "--retry-noisy",
        type=int,
        default=1,
        help=f"repeat a run this many times while other processes kept > {NOISY_CORES} cores busy",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        help="before each run, wait up to this many seconds for other work on the machine to stop",
    )
    return p.parse_args(argv)


def _record(sc: Scenario, target: str, res: dict[str, Any]) -> dict[str, Any]:
    total = res["ok"] + res["error_count"]
    cpu = res["cpu_s"]
    window = res["window_s"]
    per_1k = 1000.0 / total if total else 0.0
    mock_cpu = cpu["target"] if target == "direct" else cpu.get("mock", 0.0)
    own = cpu["bench"] + res["loadgen_cpu_s"]
    return {
        "scenario": sc.key,
        "target": target,
        "mode": sc.mode,
        "stream": sc.stream,
        "upstream_ms": sc.upstream_ms,
        "offered_rps": sc.rate,
        "concurrency": sc.concurrency,
        "duration_s": sc.duration,
        "achieved_rps": res["achieved_rps"],
        "sent": res["sent"],
        "ok": res["ok"],
        "error_count": res["error_count"],
        "errors": res["errors"],
        "latency_ms": res["latency_ms"],
        "ttft_ms": res["ttft_ms"],
        "send_lag_ms": res["send_lag_ms"],
        "cpu_s_per_1k": cpu["target"] * per_1k,
        "target_cpu_cores": cpu["target"] / window,
        "mock_cpu_s_per_1k": mock_cpu * per_1k,
        "loadgen_cpu_s_per_1k": res["loadgen_cpu_s"] * per_1k,
        "peak_rss_mb": res.get("peak_rss", {}).get("target", 0) / 1e6,
        "system_busy_cores": res["system_busy_cores"],
        "other_busy_cores": max(0.0, res["system_busy_cores"] - own / window),
    }


def rerender(path: Path) -> int:
    data = json.loads(path.read_text())
    report.add_deltas(data["runs"])
    data["summary"] = report.summarize(data["runs"])
    soak = report.load_soak(targets.RESULTS / "soak.json")
    note = "" if data["targets"]["litellm"].get("available") else " (LiteLLM unavailable)"
    data["goals"] = report.goals_as_dicts(report.goals(data["runs"], data["summary"], soak, note))
    path.write_text(json.dumps(data, indent=2) + "\n")
    text = report.markdown(data)
    path.with_suffix(".md").write_text(text)
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        return rerender(Path(args.report_only))
    mode = "quick" if args.quick else "full"
    plan = [s for s in scenarios(args.quick) if args.only in s.key]
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    quiet_wait = args.quiet_wait if args.quiet_wait is not None else (5.0 if args.quick else 10.0)
    notes: list[str] = []
    procs: list[targets.Proc] = []
    litellm_version: str | None = None
    litellm_note = ""
    # Wipe the per-run scratch (configs and logs of the last run).
    shutil.rmtree(targets.TMP, ignore_errors=True)
    targets.TMP.mkdir(parents=True, exist_ok=True)
    t_begin = time.monotonic()

    if args.no_litellm:
        litellm_note = " (LiteLLM skipped: --no-litellm)"
    else:
        with console.status(
            f"Installing {escape(args.litellm_spec)} into {targets.LITELLM_VENV} (first run only)..."
        ):
            try:
                litellm_version = targets.ensure_litellm(args.litellm_spec)
                console.print(f"[green]LiteLLM {litellm_version} ready in {targets.LITELLM_VENV}")
            except targets.StartError as exc:
                litellm_note = " (LiteLLM unavailable: install failed)"
                notes.append(f"LiteLLM unavailable: {exc}".replace("\n", " "))
                console.print(
                    f"LiteLLM could not be installed; benchmarking the others.\n{exc}",
                    style="red",
                    markup=False,
                )

    # Read before the runs: the commit and versions that were measured (the tree may move meanwhile).
    machine = machine_info(litellm_version)
    runs: list[dict[str, Any]] = []
    peak_rss: dict[str, float] = {}
    restarts: dict[str, int] = {}
    retried: list[str] = []
    # Repeating noisy runs stops once the whole benchmark has taken this long.
    retry_budget = 240.0 if args.quick else 1200.0
    try:
        with console.status("Starting mock upstreams and Hedge..."):
            mocks = {"fast": targets.start_mock("mock-0ms", 0), "slow": targets.start_mock("mock-50ms", 50)}
            procs += mocks.values()
            hedge = targets.start_hedge(mocks, workers=args.workers)
            procs.append(hedge)
        gateways: dict[str, targets.Proc] = {"hedge": hedge}
        if litellm_version is not None:
            with console.status(f"Starting LiteLLM (up to {args.litellm_start_timeout:.0f}s)..."):
                try:
                    t0 = time.monotonic()
                    lite = targets.start_litellm(mocks, timeout=args.litellm_start_timeout)
                    procs.append(lite)
                    gateways["litellm"] = lite
                    console.print(f"[green]LiteLLM proxy up in {time.monotonic() - t0:.1f}s")
                except targets.StartError as exc:
                    litellm_note = " (LiteLLM unavailable: did not start)"
                    notes.append(f"LiteLLM unavailable: {exc}".replace("\n", " "))
                    console.print(
                        f"LiteLLM did not start; benchmarking the others.\n{exc}", style="red", markup=False
                    )
        order = ["direct", *gateways]

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            overall = progress.add_task("runs", total=len(plan) * len(order))
            for sc in plan:
                mock = mocks["fast" if sc.upstream_ms == 0 else "slow"]
                for target in list(order):
                    desc = f"{sc.label} -> {target}"
                    best: dict[str, Any] | None = None
                    for attempt in range(1 + max(0, args.retry_noisy)):
                        if target not in gateways and target != "direct":
                            break
                        proc = mock if target == "direct" else gateways[target]
                        rec = _measure(sc, target, proc, mock, warmup, quiet_wait, progress, overall, desc)
                        rec["attempt"] = attempt + 1
                        if best is None or rec.get("other_busy_cores", 0) < best.get("other_busy_cores", 0):
                            best = rec
                        if not proc.alive():
                            console.print(f"{target} died:\n{proc.log_tail()}", style="red", markup=False)
                            notes.append(f"{target} exited during '{sc.label}'")
                        # An overloaded gateway may still be working through requests whose clients gave
                        # up (LiteLLM does not cancel them): that would steal CPU from the next runs. Give
                        # it a moment, then restart it rather than measure the others through its backlog.
                        busy = procstat.wait_idle(
                            procstat.tree(proc.pid), limit=20.0 if target == "direct" else 3.0
                        )
                        if target != "direct" and (busy >= 0.05 or not proc.alive()):
                            progress.update(overall, description=f"{desc}: restarting {target} (backlog)")
                            restarted = _restart(target, proc, mocks, args)
                            if restarted is None:
                                notes.append(
                                    f"{target} did not restart after '{sc.label}'; later runs skipped"
                                )
                                del gateways[target]
                                order.remove(target)
                            else:
                                procs[procs.index(proc)] = restarted
                                gateways[target] = restarted
                                restarts[target] = restarts.get(target, 0) + 1
                        is_noisy = rec.get("other_busy_cores", 0) > NOISY_CORES
                        if not is_noisy or time.monotonic() - t_begin > retry_budget:
                            break
                        if attempt < args.retry_noisy:
                            retried.append(f"{sc.key} -> {target}")
                    if best is None:
                        progress.advance(overall)
                        continue
                    runs.append(best)
                    peak_rss[target] = max(peak_rss.get(target, 0.0), best.get("peak_rss_mb", 0.0))
                    progress.advance(overall)
    finally:
        with console.status("Stopping processes..."):
            targets.stop_all(procs)

    for target, n in restarts.items():
        notes.append(
            f"{target} was restarted {n} time(s) after runs that left it busy with a backlog of abandoned "
            "requests (overload), so that the backlog did not steal CPU from the next runs."
        )
    report.add_deltas(runs)
    summary = report.summarize(runs)
    soak = report.load_soak(targets.RESULTS / "soak.json")
    goal_list = report.goals(runs, summary, soak, litellm_note)
    if litellm_version is None and not notes:
        notes.append("LiteLLM not run" + litellm_note)
    late = [r for r in runs if r["mode"] == "open" and ((r.get("send_lag_ms") or {}).get("p99") or 0) > 5]
    if late:
        notes.append(
            "The load generator sent late (p99 send lag > 5 ms: the machine was saturated) in: "
            + ", ".join(f"{r['scenario']} -> {r['target']}" for r in late)
            + ". Latency still counts from the timetable, so this shows up as latency, not lost load."
        )
    noisy = [r for r in runs if r.get("other_busy_cores", 0) > NOISY_CORES]
    if retried:
        notes.append(
            f"Repeated because other processes were busy during the first attempt: {', '.join(retried)}."
        )
    if noisy:
        notes.append(
            f"{len(noisy)} of {len(runs)} kept runs still had over {NOISY_CORES} cores busy outside the "
            "benchmark (column 'other cores'; another test suite or build on the machine); treat their "
            "latency percentiles with care: "
            + ", ".join(f"{r['scenario']} -> {r['target']} ({r['other_busy_cores']:.2f})" for r in noisy)
            + "."
        )
    data = {
        "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": mode,
        "elapsed_s": round(time.monotonic() - t_begin, 1),
        "command": "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine,
        "settings": {
            "quiet_wait_s": quiet_wait,
            "warmup_s": warmup,
            "request_timeout_s": 10.0,
            "hedge_workers": args.workers,
            "litellm_workers": 1,
            "max_tokens": 16,
        },
        "targets": {
            "direct": {"available": True, "peak_rss_mb": peak_rss.get("direct")},
            "hedge": {"available": True, "peak_rss_mb": peak_rss.get("hedge")},
            "litellm": {
                "available": "litellm" in peak_rss,
                "version": litellm_version,
                "peak_rss_mb": peak_rss.get("litellm"),
                "note": litellm_note.strip(" ()") or None,
            },
        },
        "scenarios": [asdict(s) for s in plan],
        "runs": runs,
        "summary": summary,
        "goals": report.goals_as_dicts(goal_list),
        "notes": notes,
    }
    targets.RESULTS.mkdir(parents=True, exist_ok=True)
    text = report.markdown(data)
    for stem in [args.name] if args.name else ["latest", mode]:
        (targets.RESULTS / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
        (targets.RESULTS / f"{stem}.md").write_text(text)
    print(text)
    stems = args.name or f"latest and {mode}"
    console.print(f"[green]Wrote {stems} .json/.md into {targets.RESULTS}")
    return 0


def _measure(
    sc: Scenario,
    target: str,
    proc: targets.Proc,
    mock: targets.Proc,
    warmup: float,
    quiet_wait: float,
    progress: Progress,
    task: TaskID,
    desc: str,
) -> dict[str, Any]:
    """One load-generator run against one target, measured; a failure becomes a record saying so."""
    model = targets.UPSTREAM_MODEL if target == "direct" else ("fast" if sc.upstream_ms == 0 else "slow")
    spec = LoadSpec(
        url=f"{proc.base}/v1/chat/completions",
        model=model,
        mode=sc.mode,
        duration=sc.duration,
        rate=sc.rate,
        concurrency=sc.concurrency,
        stream_share=1.0 if sc.stream else 0.0,
        warmup=warmup,
        timeout=10.0,
    )

    def on_progress(n: int) -> None:
        progress.update(task, description=f"{desc}: {n:,} done")

    progress.update(task, description=f"{desc}: waiting for a quiet machine")
    busy_before = procstat.wait_machine_quiet(limit=quiet_wait)
    progress.update(task, description=f"{desc}: warming up")
    sampler = procstat.RssSampler({"target": proc.pid}, interval=0.25)
    sampler.start()
    try:
        # "bench" is this process's whole tree: every mock and gateway of the benchmark, idle or not.
        watched = Watched({"target": proc.pid, "mock": mock.pid, "bench": os.getpid()})
        res = run_load(spec, watched, sampler, on_progress)
        rec = _record(sc, target, res)
        rec["busy_cores_before"] = busy_before
    except Exception as exc:  # one broken run must not lose the others
        rec = {**_blank(sc, target), "failed": str(exc)[:300]}
        console.print(f"{desc} failed: {exc}", style="red", markup=False)
    finally:
        sampler.stop()
    return rec


def _restart(
    target: str, proc: targets.Proc, mocks: dict[str, targets.Proc], args: argparse.Namespace
) -> targets.Proc | None:
    proc.stop()
    try:
        if target == "litellm":
            return targets.start_litellm(mocks, timeout=args.litellm_start_timeout)
        return targets.start_hedge(mocks, workers=args.workers)
    except targets.StartError as exc:
        console.print(f"{target} did not restart: {exc}", style="red", markup=False)
        return None


def _blank(sc: Scenario, target: str) -> dict[str, Any]:
    return {
        "scenario": sc.key,
        "target": target,
        "mode": sc.mode,
        "stream": sc.stream,
        "upstream_ms": sc.upstream_ms,
        "achieved_rps": 0.0,
        "error_count": 0,
    }


if __name__ == "__main__":
    sys.exit(main())
