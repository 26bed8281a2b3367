"""``hedge demo``'s experimentation act: which model could take the premium model's work, and what it saves.

The demo's three mock providers play models of known quality (the mock's ``quality`` knob): the
premium host's gpt-4o answers 97% of the questions right, the backup host's llama-3.1-70b 92%, the
flaky cheap host's qwen 55%. A small dataset of ``Answer with: X`` questions runs on all three
through :class:`~hedge.evals.runner.Evaluation`, the runner ``hedge eval`` uses (the gateway's own
pipeline, adapters and booking, on the running demo's runtime), graded ``exact``, with premium as
the reference. The act prints ``hedge eval``'s table and verdict, then the switch it would make.

The bar is 0.8 rather than ``hedge eval``'s default 0.9: on 60 items the 95% interval of a model
that is right 92% of the time reaches down to about 0.82, and "meets the bar" is a claim made with
that confidence. The cheap host keeps failing 15% of its requests here too: the gateway retries
them as it would any client's, and a request that still fails is counted in the errors column,
never graded.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hedge.cli.evaluate import render_table
from hedge.evals.datasets import Item, parse_line
from hedge.evals.graders import make_grader
from hedge.evals.report import Report, summarize
from hedge.evals.runner import Evaluation, resolve_targets
from hedge.gateway.runtime import Runtime
from hedge.mock.state import MockState

BAR = 0.8
MAX_USD = 1.0
"""The act's budget (``--max-usd``): far above what 60 short answers cost, there to show it holds."""
REFERENCE = "premium"


@dataclass(frozen=True, slots=True)
class Candidate:
    target: str
    """As ``hedge eval --candidates`` takes it: an alias, or ``provider/model``."""
    model: str
    quality: float
    """The share of questions the mock answers right."""


CANDIDATES = (
    Candidate(REFERENCE, "gpt-4o", 0.97),
    Candidate("backup", "llama-3.1-70b", 0.92),
    Candidate("cheap/qwen2.5-72b-instruct", "qwen2.5-72b-instruct", 0.55),
)


def questions(count: int) -> list[Item]:
    """``count`` arithmetic questions with their answers, as ``hedge eval --dataset`` lines are read."""
    items = []
    for i in range(count):
        a, b = 3 + i % 17, 7 + (i * 5) % 23
        line = {
            "messages": [{"role": "user", "content": f"What is {a} times {b}? Answer with: {a * b}"}],
            "max_tokens": 16,
            "expected": str(a * b),
        }
        items.append(parse_line(line, f"q{i}"))
    return items


async def eval_act(runtime: Runtime, mocks: dict[str, MockState], count: int, console: Console) -> Report:
    """Evaluate the three candidates on ``count`` questions; print the table and the switch.

    ``mocks`` maps each candidate's provider to its mock's state, whose ``quality`` knob is set here.
    """
    for candidate in CANDIDATES:
        mocks[candidate.target.split("/")[0]].knobs.quality = candidate.quality
    console.print(
        f"\n[bold]Experimentation[/]: {count} questions ('What is 3 times 7? Answer with: 21') on three "
        f"candidates, graded exact against the expected answer, bar {BAR:g}, reference {REFERENCE}. "
        f"The mocks play models of known quality: "
        + ", ".join(f"{c.model} {c.quality:.0%} right" for c in CANDIDATES)
        + "."
    )
    targets = resolve_targets(runtime.router, [c.target for c in CANDIDATES])
    with Progress(
        TextColumn("[bold]evaluating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("eval", total=count * len(targets))
        evaluation = Evaluation(
            runtime,
            questions(count),
            targets,
            make_grader("exact"),
            reference=targets[0],
            max_usd=MAX_USD,
            progress=lambda: progress.advance(task),
        )
        result = await evaluation.run()
    result.grader_spec = "exact"
    report = summarize(result, BAR)
    # Already rendered text: "[0.911, 0.997]" is an interval, not markup.
    console.print(render_table(report, console.width), end="", markup=False, highlight=False)
    console.print(switch(report), markup=False, highlight=False)
    return report


def switch(report: Report) -> str:
    """What Hedge would move the reference's work to, and what that saves (or why it would not)."""
    reference = next(r for r in report.candidates if r.is_reference)
    best = next((r for r in report.candidates if r.target == report.recommended), None)
    model = {c.target: c.model for c in CANDIDATES}
    stay = f"Hedge would stay on {reference.target} ({model[reference.target]})"
    if best is None:
        return (
            f"Not even {reference.target} meets the bar of {report.bar:g} with 95% confidence on "
            f"{report.items} questions, too few for narrow intervals (--eval-items 60 or more): {stay}."
        )
    if best.is_reference or best.cost_per_1k_usd is None or best.savings is None:
        return (
            f"No cheaper candidate meets the bar of {report.bar:g} with 95% confidence on "
            f"{report.items} questions: {stay}."
        )
    return (
        f"Hedge would switch this work from {reference.target} ({model[reference.target]}) to "
        f"{best.target} ({model[best.target]}): ${best.cost_per_1k_usd:.4g} instead of "
        f"${reference.cost_per_1k_usd or 0.0:.4g} per 1,000 such requests, "
        f"saving {best.savings:.0%}. `hedge eval --apply` stores these measurements for the "
        f"`cheapest` strategy's min_quality."
    )
