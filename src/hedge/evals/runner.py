"""Run a dataset on every candidate through the gateway's own pipeline, within a budget, and grade it.

Each answer is one :class:`~hedge.gateway.pipeline.Exchange`, exactly as a client's request would
be served: the candidate's adapter, its failover, and the one booking that turns tokens into money,
so an evaluation's cost is the ledger's, and its records are there too, tagged ``eval``. A candidate
is an alias (served as configured) or a ``provider/model`` deployment, pinned with the routing
preferences ``only`` and ``allow_fallbacks: false`` on an alias that has it. The response cache is
bypassed: a cached answer would be neither the candidate's latency nor its cost.

The budget (``--max-usd``) holds under concurrency the way a key's budget does: before a request is
sent, its worst-case cost (the router's ``max_cost``) is reserved; once answered, the reservation
is replaced by the real cost. A request whose reservation does not fit is not sent, nor is any
after it: the run stops early and says so. Judge and embedding calls made by graders share it.

Jobs run item by item, the reference's first, so a grader comparing with the reference's answer
never waits for a job still queued behind it; ``concurrency`` workers take them in that order.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from hedge.errors import HedgeError
from hedge.evals.datasets import Item
from hedge.evals.graders import Answer, Case, Grade, Grader, GraderError
from hedge.gateway.pipeline import Completion, Exchange
from hedge.gateway.runtime import Runtime
from hedge.routing.router import Router

EVAL_TAG = "eval"


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    """As the user wrote it: an alias, or ``provider/model``."""
    alias: str
    pin: str | None = None
    """The deployment id a ``provider/model`` target is pinned to."""


def resolve_targets(router: Router, names: Sequence[str]) -> list[Target]:
    """Each name as a target; ``ValueError`` naming what is known when a name is neither."""
    targets: list[Target] = []
    for name in names:
        if name in router.aliases:
            targets.append(Target(name, name))
            continue
        alias = next((a.name for a in router.aliases.values() for d in a.deployments if d.id == name), None)
        if alias is None:
            known = sorted({*router.aliases, *(d.id for a in router.aliases.values() for d in a.deployments)})
            raise ValueError(
                f"unknown candidate {name!r}: not an alias or a provider/model deployment "
                f"(known: {', '.join(known)})"
            )
        targets.append(Target(name, alias, name))
    return targets


class Budget:
    """Spend with reservations: what is reserved or spent never exceeds ``max_usd``."""

    def __init__(self, max_usd: float | None) -> None:
        self.max_usd = max_usd
        self.spent = 0.0
        self.reserved = 0.0
        self.exhausted = False

    def reserve(self, estimate: float) -> bool:
        if self.exhausted:
            return False
        if self.max_usd is not None and self.spent + self.reserved + estimate > self.max_usd:
            self.exhausted = True
            return False
        self.reserved += estimate
        return True

    def settle(self, estimate: float, actual: float) -> None:
        self.reserved = max(0.0, self.reserved - estimate)
        self.spent += actual


class BudgetExhausted(Exception):
    """The next request's worst-case cost does not fit in what is left of ``--max-usd``."""


@dataclass(slots=True)
class Outcome:
    """One candidate's answer to one item, and its grade."""

    item: int
    answer: Answer | None = None
    deployment: str | None = None
    cost_usd: float = 0.0
    latency_ms: float | None = None
    error: str | None = None
    """The request failed (it is not graded)."""
    grade: Grade | None = None
    grader_error: str | None = None
    skipped: bool = False
    """Not sent: the budget ran out."""


@dataclass(slots=True)
class RunResult:
    items: list[Item]
    targets: list[Target]
    outcomes: dict[str, list[Outcome]]
    grader: Grader
    reference: str | None
    budget: Budget
    grading_usd: float = 0.0
    seconds: float = 0.0
    grader_spec: str = ""
    dataset: str = ""
    notes: list[str] = field(default_factory=list)


Progress = Callable[[], None]


class Evaluation:
    def __init__(
        self,
        runtime: Runtime,
        items: list[Item],
        targets: list[Target],
        grader: Grader,
        *,
        reference: Target | None = None,
        max_usd: float | None = None,
        concurrency: int = 8,
        progress: Progress | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.runtime = runtime
        self.items = items
        self.reference = reference
        if reference is not None and all(t.name != reference.name for t in targets):
            targets = [reference, *targets]
        self.targets = targets
        self.grader = grader
        self.budget = Budget(max_usd)
        self.concurrency = concurrency
        self.progress = progress
        self.grading_usd = 0.0
        self._reference_answers: dict[int, asyncio.Future[Answer | None]] = {}

    @property
    def jobs(self) -> int:
        return len(self.items) * len(self.targets)

    async def _serve(self, endpoint: str, body: dict[str, Any], alias: str) -> tuple[Completion, float]:
        """One request through the pipeline, its worst case reserved first: (answer, latency ms)."""
        runtime = self.runtime
        ctx = runtime.router.context(body)
        try:
            estimate = runtime.router.max_cost(alias, ctx, runtime.config.budgets.reserve_output_tokens)
        except HedgeError:
            estimate = 0.0
        if not self.budget.reserve(estimate):
            raise BudgetExhausted
        exchange = Exchange(runtime, endpoint, f"eval-{secrets.token_hex(12)}", {})
        try:
            served = await exchange.serve(body, None, (EVAL_TAG,))
            if not isinstance(served, Completion):  # never: the body asks for no stream
                raise HedgeError("the evaluation asked for a whole answer and got a stream", status=500)
            return served, exchange.record.latency_ms or (time.perf_counter() - exchange.started) * 1000
        finally:
            self.budget.settle(estimate, exchange.record.cost_usd)

    async def ask(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """The graders' way to call an alias (a judge, embeddings): through the gateway, in the budget."""
        try:
            served, _ = await self._serve(endpoint, {**body, "hedge": {"cache": False}}, str(body["model"]))
        except BudgetExhausted:
            raise GraderError("the budget (--max-usd) ran out") from None
        self.grading_usd += served.cost_usd
        data: dict[str, Any] = orjson.loads(served.body)
        return data

    def _body(self, target: Target, item: Item) -> dict[str, Any]:
        body = {**item.request, "model": target.alias, "stream": False}
        options = dict(body.get("hedge") or {})
        options["cache"] = False
        if target.pin is not None:
            options.update(only=[target.pin], allow_fallbacks=False)
        body["hedge"] = options
        return body

    async def _answer(self, target: Target, index: int) -> Outcome:
        item = self.items[index]
        outcome = Outcome(index)
        try:
            served, latency = await self._serve("chat", self._body(target, item), target.alias)
        except BudgetExhausted:
            outcome.skipped = True
            return outcome
        except HedgeError as exc:
            outcome.error = exc.message
            return outcome
        except Exception as exc:  # a dataset request the adapter cannot handle is that item's failure
            outcome.error = f"{type(exc).__name__}: {exc}"
            return outcome
        outcome.deployment = f"{served.provider}/{served.model}"
        outcome.cost_usd = served.cost_usd
        outcome.latency_ms = latency
        try:
            outcome.answer = Answer.from_completion(orjson.loads(served.body))
        except orjson.JSONDecodeError:
            outcome.error = "the answer is not JSON"
        return outcome

    async def _grade(self, target: Target, outcome: Outcome) -> None:
        if outcome.answer is None:
            return
        item = self.items[outcome.item]
        is_reference = self.reference is not None and target.name == self.reference.name
        reference: Answer | None = None
        if self.reference is not None:
            reference = outcome.answer if is_reference else await self._reference_answers[outcome.item]
        case = Case(item.request, outcome.answer, item.expected, reference, item.metadata, is_reference)
        try:
            outcome.grade = await self.grader.grade(case)
        except GraderError as exc:
            outcome.grader_error = str(exc) or type(exc).__name__
        except Exception as exc:  # a grader's own bug still only costs it this item, counted
            outcome.grader_error = f"{type(exc).__name__}: {exc}"

    async def _job(self, target: Target, index: int) -> Outcome:
        is_reference = self.reference is not None and target.name == self.reference.name
        try:
            outcome = await self._answer(target, index)
        except BaseException:
            if is_reference:
                self._reference_answers[index].set_result(None)
            raise
        if is_reference:
            self._reference_answers[index].set_result(outcome.answer)
        await self._grade(target, outcome)
        if self.progress is not None:
            self.progress()
        return outcome

    async def run(self) -> RunResult:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        if self.reference is not None:
            self._reference_answers = {i: loop.create_future() for i in range(len(self.items))}
        order = sorted(range(len(self.targets)), key=lambda t: self.targets[t] != self.reference)
        jobs = iter([(t, i) for i in range(len(self.items)) for t in order])
        outcomes: dict[str, list[Outcome | None]] = {t.name: [None] * len(self.items) for t in self.targets}

        async def worker() -> None:
            for t, i in jobs:
                target = self.targets[t]
                outcomes[target.name][i] = await self._job(target, i)

        await asyncio.gather(*(worker() for _ in range(min(self.concurrency, self.jobs) or 1)))
        done = {
            name: [o if o is not None else Outcome(i, skipped=True) for i, o in enumerate(row)]
            for name, row in outcomes.items()
        }
        return RunResult(
            self.items,
            self.targets,
            done,
            self.grader,
            self.reference.name if self.reference is not None else None,
            self.budget,
            grading_usd=self.grading_usd,
            seconds=time.perf_counter() - started,
        )
