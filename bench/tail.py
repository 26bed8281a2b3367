"""Where the latency tail at concurrency 32 comes from: ``python bench/tail.py [--seconds 8]``.

Runs closed-loop load at concurrency 32 (whole responses, 0 ms mock) against ``direct`` and
``hedge`` (interleaved, ``--rounds`` times each) and reads, from Hedge's own ``/metrics`` over
the measured window, what held its event loop:

* event-loop lag (``hedge_event_loop_lag_seconds``: how late a 50 ms timer fired),
* garbage-collector pauses by generation (``hedge_gc_pause_seconds``),
* ledger flushes (``hedge_ledger_flush_seconds``: rows built on the loop, then written).

Reported next to the client-side p50/p99 and the p99/p50 ratio of each target. Writes
``bench/results/NAME.{json,md}`` (default ``tail``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import sys
import urllib.request
from collections import defaultdict
from typing import Any

import procstat
import targets
from driver import LoadSpec, Watched, machine_info, run_load

SERIES = re.compile(
    r"^(?P<name>hedge_[a-z_]+?)_(?P<kind>bucket|count|sum)(?:\{(?P<labels>[^}]*)\})? (?P<v>\S+)$"
)
WATCHED = ("hedge_event_loop_lag_seconds", "hedge_gc_pause_seconds", "hedge_ledger_flush_seconds")


def scrape(base: str) -> dict[tuple[str, str, str], float]:
    """(histogram, kind, labels) -> value for the watched histograms."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, str, str], float] = {}
    for line in text.splitlines():
        m = SERIES.match(line)
        if m and m.group("name") in WATCHED:
            out[(m.group("name"), m.group("kind"), m.group("labels") or "")] = float(m.group("v"))
    return out


def summarise(before: dict[Any, float], after: dict[Any, float]) -> dict[str, Any]:
    """Per histogram (and generation): how many, total seconds, the longest bucket reached, and
    how many took longer than 5 and 20 ms."""
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    groups: dict[str, dict[str, Any]] = defaultdict(lambda: {"count": 0.0, "sum_s": 0.0, "buckets": {}})
    for (name, kind, labels), v in delta.items():
        gen = re.search(r'generation="(\d)"', labels)
        key = name + (f"[gen{gen.group(1)}]" if gen else "")
        if kind == "count":
            groups[key]["count"] = v
        elif kind == "sum":
            groups[key]["sum_s"] = v
        else:
            le = re.search(r'le="([^"]+)"', labels)
            if le:
                groups[key]["buckets"][le.group(1)] = v
    out = {}
    for key, g in sorted(groups.items()):
        b = {float(k): v for k, v in g["buckets"].items() if k != "+Inf"}
        count = g["count"]

        def over(limit: float, b: dict[float, float] = b, count: float = count) -> float:
            within = max((v for le, v in b.items() if le <= limit), default=0.0)
            return count - within

        reached = [le for le, v in sorted(b.items()) if v < count]
        out[key] = {
            "count": int(count),
            "total_ms": g["sum_s"] * 1000,
            "mean_ms": g["sum_s"] * 1000 / count if count else 0.0,
            "over_5ms": int(over(0.005)),
            "over_20ms": int(over(0.02)),
            "max_bucket_ms": (max(reached) * 1000 if reached else 0.0),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Where Hedge's latency tail at c=32 comes from.")
    p.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run")
    p.add_argument("--rounds", type=int, default=3, help="interleaved direct/hedge rounds")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--name", default="tail", help="write results/NAME.json/.md")
    args = p.parse_args(argv)
    shutil.rmtree(targets.TMP, ignore_errors=True)
    targets.TMP.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    procs: list[targets.Proc] = []
    try:
        mock = targets.start_mock("mock-0ms", 0)
        procs.append(mock)
        hedge = targets.start_hedge({"fast": mock})
        procs.append(hedge)
        for rnd in range(args.rounds):
            for target, proc, model in (("direct", mock, targets.UPSTREAM_MODEL), ("hedge", hedge, "fast")):
                spec = LoadSpec(
                    f"{proc.base}/v1/chat/completions", model, "closed", args.seconds,
                    concurrency=args.concurrency, warmup=1.0,
                )  # fmt: skip
                procstat.wait_machine_quiet(limit=10.0)
                marks: dict[str, dict[Any, float]] = {}

                def begin(marks: dict[str, dict[Any, float]] = marks, target: str = target) -> None:
                    if target == "hedge":
                        marks["before"] = scrape(hedge.base)

                res = run_load(spec, Watched({"target": proc.pid}), on_start=begin)
                rec: dict[str, Any] = {
                    "round": rnd,
                    "target": target,
                    "rps": res["achieved_rps"],
                    "p50_ms": res["latency_ms"]["p50"],
                    "p99_ms": res["latency_ms"]["p99"],
                    "cpu_ms_per_request": res["cpu_s"]["target"] / max(1, res["ok"]) * 1000,
                }
                rec["p99_over_p50"] = rec["p99_ms"] / rec["p50_ms"]
                if target == "hedge":
                    rec["stalls"] = summarise(marks.get("before", {}), scrape(hedge.base))
                runs.append(rec)
                print(json.dumps({k: v for k, v in rec.items() if k != "stalls"}), file=sys.stderr)
    finally:
        targets.stop_all(procs)
    data = {
        "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/tail.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(None),
        "runs": runs,
    }
    text = markdown(data)
    targets.RESULTS.mkdir(parents=True, exist_ok=True)
    (targets.RESULTS / f"{args.name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (targets.RESULTS / f"{args.name}.md").write_text(text)
    print(text)
    return 0


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2] if values else 0.0


def markdown(data: dict[str, Any]) -> str:
    m = data["machine"]
    lines = [
        f"# The tail at concurrency 32 ({data['generated_at']})",
        "",
        f"Command: `{data['command']}`; commit {m.get('git_commit')}"
        f"{' (dirty)' if m.get('git_dirty') else ''}; {m.get('cores')} cores ({m.get('cpu_model')}). "
        "Closed loop, whole responses, 0 ms mock.",
        "",
        "| round | target | RPS | p50 ms | p99 ms | p99/p50 | CPU ms/request |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in data["runs"]:
        lines.append(
            f"| {r['round']} | {r['target']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {r['p99_over_p50']:.2f} | {r['cpu_ms_per_request']:.3f} |"
        )
    ratio = {
        t: _median([r["p99_over_p50"] for r in data["runs"] if r["target"] == t]) for t in ("direct", "hedge")
    }
    if ratio["direct"]:
        lines += [
            "",
            f"Median p99/p50: direct {ratio['direct']:.2f}, Hedge {ratio['hedge']:.2f} "
            f"({ratio['hedge'] / ratio['direct']:.2f}x the direct path's ratio).",
        ]
    lines += [
        "",
        "What held Hedge's event loop during each measured window (from its `/metrics`):",
        "",
        "| round | stall source | count | total ms | mean ms | > 5 ms | > 20 ms "
        "| longest bucket reached, ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in data["runs"]:
        for key, s in r.get("stalls", {}).items():
            lines.append(
                f"| {r['round']} | `{key}` | {s['count']:,} | {s['total_ms']:.1f} | {s['mean_ms']:.2f} "
                f"| {s['over_5ms']} | {s['over_20ms']} | {s['max_bucket_ms']:g} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
