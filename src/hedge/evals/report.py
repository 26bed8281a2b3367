"""What an evaluation found, per candidate, and which candidate to switch to.

Per candidate: ``n`` (graded items), the mean quality and its 95% interval (Wilson's for pass/fail
graders, the t interval for scores), win/tie/loss against the reference, the cost in total and per
1,000 requests, p50/p95 latency, savings against the reference, and ``meets_bar``: the interval's
lower bound is at or above the bar, so "meets the bar" is a claim made with confidence, not a
mean that noise could have lifted. ``recommended`` is the cheapest candidate (per 1,000 requests)
that meets the bar, or None.

Failed requests and grader errors are counted beside ``n``, never scored as zero (or as anything).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hedge.evals.runner import Outcome, RunResult
from hedge.evals.stats import Interval, percentile, t_interval, wilson
from hedge.store.evals import MeasuredQuality, measured


@dataclass(slots=True)
class CandidateReport:
    target: str
    n: int
    quality: float | None
    ci_low: float | None
    ci_high: float | None
    cost_usd: float
    cost_per_1k_usd: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    win: int | None
    tie: int | None
    loss: int | None
    meets_bar: bool
    errors: int = 0
    grader_errors: int = 0
    skipped: int = 0
    savings: float | None = None
    """Share of the reference's cost per 1,000 requests saved (negative: dearer)."""
    is_reference: bool = False

    def to_json(self) -> dict[str, Any]:
        """The fields ``hedge eval --format json`` prints, in this order."""
        return {
            "target": self.target,
            "n": self.n,
            "quality": _round(self.quality),
            "ci_low": _round(self.ci_low),
            "ci_high": _round(self.ci_high),
            "cost_usd": round(self.cost_usd, 10),
            "cost_per_1k_usd": None if self.cost_per_1k_usd is None else round(self.cost_per_1k_usd, 10),
            "latency_p50_ms": _round(self.latency_p50_ms, 3),
            "latency_p95_ms": _round(self.latency_p95_ms, 3),
            "win": self.win,
            "tie": self.tie,
            "loss": self.loss,
            "meets_bar": self.meets_bar,
        }


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(slots=True)
class Report:
    candidates: list[CandidateReport]
    recommended: str | None
    bar: float
    grader: str
    reference: str | None
    items: int
    budget_exhausted: bool = False
    spent_usd: float = 0.0
    grading_usd: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"candidates": [c.to_json() for c in self.candidates], "recommended": self.recommended}


def interval(outcomes: list[Outcome], binary: bool) -> Interval | None:
    """The quality interval over the graded outcomes (None if none was graded)."""
    grades = [o.grade for o in outcomes if o.grade is not None]
    if not grades:
        return None
    if binary:
        return wilson(sum(1 for g in grades if g.score >= 0.5), len(grades))
    return t_interval([g.score for g in grades])


def summarize(result: RunResult, bar: float) -> Report:
    grader = result.grader
    reference = result.outcomes.get(result.reference) if result.reference is not None else None
    rows: list[CandidateReport] = []
    for target in result.targets:
        outcomes = result.outcomes[target.name]
        graded = [o for o in outcomes if o.grade is not None]
        answered = [o for o in outcomes if o.answer is not None]
        found = interval(outcomes, grader.binary)
        cost = sum(o.cost_usd for o in outcomes)
        latencies = [o.latency_ms for o in answered if o.latency_ms is not None]
        win = tie = loss = None
        if reference is not None:
            win, tie, loss = _compare(outcomes, reference, grader.pairwise)
        rows.append(
            CandidateReport(
                target=target.name,
                n=len(graded),
                quality=found.mean if found else None,
                ci_low=found.low if found else None,
                ci_high=found.high if found else None,
                cost_usd=cost,
                cost_per_1k_usd=cost / len(answered) * 1000 if answered else None,
                latency_p50_ms=percentile(latencies, 50),
                latency_p95_ms=percentile(latencies, 95),
                win=win,
                tie=tie,
                loss=loss,
                meets_bar=found is not None and found.low >= bar,
                errors=sum(1 for o in outcomes if o.error is not None),
                grader_errors=sum(1 for o in outcomes if o.grader_error is not None),
                skipped=sum(1 for o in outcomes if o.skipped),
                is_reference=target.name == result.reference,
            )
        )
    ref_row = next((r for r in rows if r.is_reference), None)
    if ref_row is not None and ref_row.cost_per_1k_usd:
        for row in rows:
            if row.cost_per_1k_usd is not None:
                row.savings = 1 - row.cost_per_1k_usd / ref_row.cost_per_1k_usd
    meeting = [r for r in rows if r.meets_bar and r.cost_per_1k_usd is not None]
    best = min(meeting, key=lambda r: (r.cost_per_1k_usd or 0.0, -(r.ci_low or 0.0)), default=None)
    return Report(
        rows,
        best.target if best else None,
        bar,
        result.grader_spec or grader.name,
        result.reference,
        len(result.items),
        budget_exhausted=result.budget.exhausted,
        spent_usd=result.budget.spent,
        grading_usd=result.grading_usd,
        notes=list(result.notes),
    )


def _compare(outcomes: list[Outcome], reference: list[Outcome], pairwise: bool) -> tuple[int, int, int]:
    """Win/tie/loss against the reference on the items both have grades for (a pairwise grade is
    the comparison itself)."""
    win = tie = loss = 0
    for mine, theirs in zip(outcomes, reference, strict=True):
        if mine.grade is None:
            continue
        if pairwise:
            diff = mine.grade.score - 0.5
        elif theirs.grade is not None:
            diff = mine.grade.score - theirs.grade.score
        else:
            continue
        if abs(diff) < 1e-9:
            tie += 1
        elif diff > 0:
            win += 1
        else:
            loss += 1
    return win, tie, loss


def measurements(result: RunResult, dataset: str) -> list[MeasuredQuality]:
    """Quality per deployment that served graded answers (an alias candidate may have several):
    what ``--apply`` stores for the ``cheapest`` strategy's ``min_quality``."""
    by_deployment: dict[str, list[Outcome]] = {}
    for target in result.targets:
        for o in result.outcomes[target.name]:
            if o.grade is not None and o.deployment is not None:
                by_deployment.setdefault(o.deployment, []).append(o)
    rows = []
    for deployment, outcomes in sorted(by_deployment.items()):
        found = interval(outcomes, result.grader.binary)
        if found is not None:
            spec = result.grader_spec or result.grader.name
            rows.append(measured(deployment, found.mean, found.low, found.high, len(outcomes), spec, dataset))
    return rows


def _usd(value: float | None) -> str:
    """Dollars to the cent above $1, else to the millionth with no trailing zeros ($0.00255)."""
    if value is None:
        return "-"
    if value >= 1:
        return f"${value:,.2f}"
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return f"${text}" if text not in ("0", "") else ("$0" if value == 0 else "<$0.000001")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _quality(row: CandidateReport) -> str:
    if row.quality is None:
        return "-"
    return f"{row.quality:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]"


def _wtl(row: CandidateReport) -> str:
    return "-" if row.win is None else f"{row.win}/{row.tie}/{row.loss}"


def _bar(row: CandidateReport, report: Report) -> str:
    if row.target == report.recommended:
        return "recommended"  # meets the bar, and the cheapest that does
    return "yes" if row.meets_bar else "no"


def _problems(row: CandidateReport) -> str:
    parts = []
    if row.errors:
        parts.append(f"{row.errors} failed")
    if row.grader_errors:
        parts.append(f"{row.grader_errors} ungraded")
    if row.skipped:
        parts.append(f"{row.skipped} not sent")
    return ", ".join(parts) or "-"


HEADERS = (
    "candidate",
    "n",
    "quality [95% CI]",
    "W/T/L",
    "cost",
    "per 1k",
    "p50 ms",
    "p95 ms",
    "savings",
    "meets bar",
    "errors",
)


def cells(row: CandidateReport, report: Report) -> list[str]:
    """A candidate's row as the table and the markdown show it (one cell per :data:`HEADERS`)."""
    name = f"{row.target} (reference)" if row.is_reference else row.target
    return [
        name,
        str(row.n),
        _quality(row),
        _wtl(row),
        _usd(row.cost_usd),
        _usd(row.cost_per_1k_usd),
        _ms(row.latency_p50_ms),
        _ms(row.latency_p95_ms),
        _pct(row.savings),
        _bar(row, report),
        _problems(row),
    ]


def verdict(report: Report) -> str:
    """One sentence: which candidate to switch to, and what it saves."""
    lines = []
    if report.recommended is None:
        lines.append(f"No candidate meets the bar of {report.bar:g} with 95% confidence.")
    else:
        best = next(r for r in report.candidates if r.target == report.recommended)
        saving = ""
        if best.savings is not None and report.reference and not best.is_reference:
            saving = f", saving {best.savings:.0%} against {report.reference}"
        lines.append(
            f"Recommended: {best.target}, the cheapest candidate whose quality meets the bar of "
            f"{report.bar:g} with 95% confidence ({_usd(best.cost_per_1k_usd)} per 1,000 requests{saving})."
        )
    below = [r.target for r in report.candidates if r.quality is not None and not r.meets_bar]
    if below:
        lines.append(f"Below the bar: {', '.join(below)}.")
    if report.grading_usd > 0:
        lines.append(f"Grading ({report.grader}) cost {_usd(report.grading_usd)} more.")
    if report.budget_exhausted:
        lines.append("The budget (--max-usd) ran out: some requests were not sent.")
    return "\n".join(lines)


def to_markdown(report: Report) -> str:
    lines = [
        f"### hedge eval: {report.items} items, grader `{report.grader}`, bar {report.bar:g}",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" if i in (0, 9, 10) else "---:" for i in range(len(HEADERS))) + "|",
    ]
    for row in report.candidates:
        shown = [c.replace("|", "\\|") for c in cells(row, report)]
        if row.target == report.recommended:
            shown[0] = f"**{shown[0]}**"
        lines.append("| " + " | ".join(shown) + " |")
    lines += ["", verdict(report), ""]
    return "\n".join(lines)
