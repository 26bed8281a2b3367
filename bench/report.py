"""Turns raw runs into the summary, the goal verdicts and the markdown report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# The goals. Scenario keys refer to run.py's scenario list.
GOAL_LATENCY_SCENARIO = "open-200rps-whole-0ms"
GOAL_TTFT_SCENARIO = "open-200rps-stream-0ms"


@dataclass
class Goal:
    name: str
    limit: str
    value: str
    met: bool | None
    verdict: str


def _get(d: dict[str, Any] | None, *path: str) -> Any:
    cur: Any = d
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def index_runs(runs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["scenario"], r["target"]): r for r in runs}


def add_deltas(runs: list[dict[str, Any]]) -> None:
    """Added latency of each gateway over the direct run of the same scenario."""
    idx = index_runs(runs)
    for run in runs:
        direct = idx.get((run["scenario"], "direct"))
        if run.get("failed") or direct is None or direct.get("failed"):
            continue
        for metric, short in (("latency_ms", ""), ("ttft_ms", "ttft_")):
            for q in ("p50", "p99"):
                mine, base = _get(run, metric, q), _get(direct, metric, q)
                if mine is not None and base is not None:
                    run[f"added_{short}{q}_ms"] = mine - base


def max_throughput(runs: list[dict[str, Any]], target: str, stream: bool) -> dict[str, Any] | None:
    """Best achieved RPS over the closed-loop sweep against the 0 ms upstream, errors excluded."""
    best: dict[str, Any] | None = None
    for run in runs:
        if run["target"] != target or run.get("failed") or run["mode"] != "closed":
            continue
        if run["upstream_ms"] != 0 or run["stream"] != stream:
            continue
        if best is None or run["achieved_rps"] > best["rps"]:
            best = {"rps": run["achieved_rps"], "scenario": run["scenario"], "errors": run["error_count"]}
    return best


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    idx = index_runs(runs)
    out: dict[str, Any] = {"max_throughput": {}, "ratios": {}}
    for stream in (False, True):
        kind = "stream" if stream else "whole"
        tp = {t: max_throughput(runs, t, stream) for t in ("direct", "hedge", "litellm")}
        out["max_throughput"][kind] = tp
        h, d, lt = (_get(tp, t, "rps") for t in ("hedge", "direct", "litellm"))
        out["ratios"][f"throughput_{kind}_hedge_over_direct"] = _ratio(h, d)
        out["ratios"][f"throughput_{kind}_litellm_over_hedge"] = _ratio(lt, h)
        out["ratios"][f"throughput_{kind}_hedge_over_litellm"] = _ratio(h, lt)
    for rate in (50, 200):
        hedge = idx.get((f"open-{rate}rps-whole-0ms", "hedge"))
        lite = idx.get((f"open-{rate}rps-whole-0ms", "litellm"))
        for q in ("p50", "p99"):
            hq, lq = _get(hedge, f"added_{q}_ms"), _get(lite, f"added_{q}_ms")
            out["ratios"][f"added_latency_{q}_at_{rate}rps_litellm_over_hedge"] = (
                _ratio(lq, hq) if hq is not None and hq > 0 else None
            )
            out["ratios"][f"added_latency_{q}_at_{rate}rps_hedge_ms"] = hq
            out["ratios"][f"added_latency_{q}_at_{rate}rps_litellm_ms"] = lq
    hs, ls = idx.get((GOAL_TTFT_SCENARIO, "hedge")), idx.get((GOAL_TTFT_SCENARIO, "litellm"))
    out["ratios"]["added_ttft_p50_at_200rps_hedge_ms"] = _get(hs, "added_ttft_p50_ms")
    out["ratios"]["added_ttft_p50_at_200rps_litellm_ms"] = _get(ls, "added_ttft_p50_ms")
    return out


NOISY_CORES = 0.5


def _noise(idx: dict[tuple[str, str], dict[str, Any]], scenario: str) -> str:
    """A caveat when the direct or Hedge run of a scenario shared the machine with other busy processes."""
    busy = {t: _get(idx.get((scenario, t)), "other_busy_cores") for t in ("direct", "hedge")}
    noisy = {t: v for t, v in busy.items() if isinstance(v, int | float) and v > NOISY_CORES}
    if not noisy:
        return ""
    what = ", ".join(f"{v:.2f} cores during the {t} run" for t, v in noisy.items())
    return f" (noisy machine: other processes used {what}; re-run on a quiet machine to confirm)"


def _at_most(name: str, value: float | None, limit: float, unit: str, note: str = "") -> Goal:
    lim = f"<= {limit:g} {unit}"
    if value is None:
        return Goal(name, lim, "n/a", None, f"not measured{note}")
    val = f"{value:.2f} {unit}"
    if value <= limit:
        return Goal(name, lim, val, True, f"met: {val}, {limit - value:.2f} {unit} to spare{note}")
    return Goal(name, lim, val, False, f"missed by {value - limit:.2f} {unit} ({val} vs {lim}){note}")


def _at_least(name: str, value: float | None, limit: float, unit: str, note: str = "") -> Goal:
    lim = f">= {limit:g}{unit}"
    if value is None:
        return Goal(name, lim, "n/a", None, f"not measured{note}")
    val = f"{value:.2f}{unit}"
    if value >= limit:
        return Goal(name, lim, val, True, f"met: {val} ({value / limit:.1f}x the bar)")
    return Goal(name, lim, val, False, f"missed: {val} vs {lim} (needs {limit / value:.2f}x more)")


def goals(
    runs: list[dict[str, Any]], summary: dict[str, Any], soak: dict[str, Any] | None, litellm_note: str
) -> list[Goal]:
    idx = index_runs(runs)
    hedge = idx.get((GOAL_LATENCY_SCENARIO, "hedge"))
    stream = idx.get((GOAL_TTFT_SCENARIO, "hedge"))
    r = summary["ratios"]
    latency = _noise(idx, GOAL_LATENCY_SCENARIO)
    ttft = _noise(idx, GOAL_TTFT_SCENARIO)
    out = [
        _at_most(
            "Hedge added p50 latency, 200 RPS whole responses",
            _get(hedge, "added_p50_ms"),
            1.0,
            "ms",
            latency,
        ),
        _at_most(
            "Hedge added p99 latency, 200 RPS whole responses",
            _get(hedge, "added_p99_ms"),
            5.0,
            "ms",
            latency,
        ),
        _at_most(
            "Hedge streaming TTFT overhead p50, 200 RPS", _get(stream, "added_ttft_p50_ms"), 1.0, "ms", ttft
        ),
        _at_least(
            "Hedge max throughput vs LiteLLM (whole responses)",
            r.get("throughput_whole_hedge_over_litellm"),
            5.0,
            "x",
            litellm_note,
        ),
        _at_least(
            "Hedge max throughput vs direct (whole responses)",
            r.get("throughput_whole_hedge_over_direct"),
            0.5,
            "x",
        ),
    ]
    if soak is None:
        out.append(Goal("Hedge RSS flat across the soak (±10%)", "±10%", "n/a", None, "soak not run"))
    else:
        drift = soak.get("drift_pct")
        val = f"{drift:+.1f}%" if isinstance(drift, int | float) else "n/a"
        flat = soak.get("flat")
        detail = (
            f"{soak.get('requests_ok', 0):,} requests, RSS {soak.get('rss_after_warmup_mb', 0):.1f} MB"
            f" after warm-up -> {soak.get('rss_last_mb', 0):.1f} MB last,"
            f" peak {soak.get('rss_peak_mb', 0):.1f} MB"
            f" (soak.json, {soak.get('generated_at', '?')})"
        )
        verdict = (
            ("met: " if flat else "missed: ") + detail if flat is not None else "inconclusive: " + detail
        )
        out.append(Goal("Hedge RSS flat across the soak (±10%)", "±10%", val, flat, verdict))
    return out


def load_soak(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


# --- markdown ------------------------------------------------------------------------------------


def _ms(v: Any) -> str:
    if not isinstance(v, int | float):
        return "-"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 1000 else f"{v:,.0f}"


def _signed(v: Any) -> str:
    if not isinstance(v, int | float):
        return "-"
    return ("+" if v >= 0 else "") + _ms(v)


def _x(v: Any) -> str:
    return f"{v:.2f}x" if isinstance(v, int | float) else "n/a"


def _num(v: Any, digits: int = 0) -> str:
    return f"{v:,.{digits}f}" if isinstance(v, int | float) else "-"


def results_table(runs: list[dict[str, Any]], scenarios: list[dict[str, Any]]) -> str:
    head = (
        "| scenario | target | achieved RPS | p50 ms | p90 ms | p99 ms | +p50 | +p99 | TTFT p50 | TTFT p99 "
        "| +TTFT p50 | errors | CPU s/1k req | peak RSS MB | busy cores | other cores |"
    )
    lines = [head, "|" + "---|" * 16]
    idx = index_runs(runs)
    for sc in scenarios:
        for target in ("direct", "hedge", "litellm"):
            run = idx.get((sc["key"], target))
            if run is None:
                continue
            if run.get("failed"):
                lines.append(f"| {sc['label']} | {target} | failed: {run['failed']} |" + " |" * 13)
                continue
            lat, ttft = run.get("latency_ms") or {}, run.get("ttft_ms") or {}
            lines.append(
                "| "
                + " | ".join(
                    [
                        sc["label"],
                        target,
                        _num(run["achieved_rps"]),
                        _ms(lat.get("p50")),
                        _ms(lat.get("p90")),
                        _ms(lat.get("p99")),
                        _signed(run.get("added_p50_ms")),
                        _signed(run.get("added_p99_ms")),
                        _ms(ttft.get("p50")),
                        _ms(ttft.get("p99")),
                        _signed(run.get("added_ttft_p50_ms")),
                        str(run["error_count"]),
                        _num(run.get("cpu_s_per_1k"), 2),
                        _num(run.get("peak_rss_mb"), 0),
                        _num(run.get("system_busy_cores"), 2),
                        _num(run.get("other_busy_cores"), 2),
                    ]
                )
                + " |"
            )
    return "\n".join(lines)


def markdown(data: dict[str, Any]) -> str:
    m = data["machine"]
    s = data["summary"]
    r = s["ratios"]
    pk = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    tp = s["max_throughput"]
    out = [
        f"# Hedge benchmark ({data['mode']} mode, {data['generated_at']})",
        "",
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}; load average at start {m['loadavg_at_start']}. "
        f"Hedge commit {m['git_commit']}{' (with uncommitted changes)' if m['git_dirty'] else ''}.",
        f"Packages: {pk}; LiteLLM: {m['litellm'] or 'not run'}.",
        "Load generator, mock upstream and gateway share the same 2 cores (see bench/README.md).",
        "",
        "## Headline ratios (same run)",
        "",
        "| ratio | value |",
        "|---|---|",
        f"| Hedge / direct max throughput, whole | {_x(r['throughput_whole_hedge_over_direct'])} "
        f"({_num(_get(tp, 'whole', 'hedge', 'rps'))} vs {_num(_get(tp, 'whole', 'direct', 'rps'))} RPS) |",
        f"| Hedge / direct max throughput, stream | {_x(r['throughput_stream_hedge_over_direct'])} "
        f"({_num(_get(tp, 'stream', 'hedge', 'rps'))} vs {_num(_get(tp, 'stream', 'direct', 'rps'))} RPS) |",
        f"| LiteLLM / Hedge max throughput, whole | {_x(r['throughput_whole_litellm_over_hedge'])} "
        f"({_num(_get(tp, 'whole', 'litellm', 'rps'))} vs {_num(_get(tp, 'whole', 'hedge', 'rps'))} RPS) |",
        f"| LiteLLM / Hedge max throughput, stream | {_x(r['throughput_stream_litellm_over_hedge'])} |",
    ]
    for rate in (50, 200):
        for q in ("p50", "p99"):
            k = f"added_latency_{q}_at_{rate}rps"
            out.append(
                f"| LiteLLM / Hedge added {q} latency @{rate} RPS whole "
                f"| {_x(r.get(k + '_litellm_over_hedge'))}"
                f" ({_signed(r.get(k + '_litellm_ms'))} vs {_signed(r.get(k + '_hedge_ms'))} ms) |"
            )
    out += [
        "",
        "## Goals from the issue",
        "",
        "| goal | bar | measured | verdict |",
        "|---|---|---|---|",
    ]
    for g in data["goals"]:
        mark = {True: "met", False: "MISSED", None: "n/a"}[g["met"]]
        out.append(f"| {g['name']} | {g['limit']} | {g['value']} | **{mark}**: {g['verdict']} |")
    out += ["", "## All runs", "", results_table(data["runs"], data["scenarios"]), ""]
    out += [
        "Columns: latencies in ms, end to end at the client (open loop: from the scheduled send time). "
        "`+p50`/`+p99`/`+TTFT` are the difference to `direct` in the same scenario. TTFT is the time to the "
        "first chunk carrying content. CPU s/1k req is CPU seconds of the target's process tree "
        "(for `direct`, the mock) per 1,000 requests; peak RSS is the target's process tree; busy cores is "
        "the whole machine during the window (2.00 = both cores saturated), other cores the part of it "
        "spent outside the benchmark's own processes (other work on the machine: noise).",
        "",
    ]
    notes = data.get("notes") or []
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


def goals_as_dicts(items: list[Goal]) -> list[dict[str, Any]]:
    return [asdict(g) for g in items]
