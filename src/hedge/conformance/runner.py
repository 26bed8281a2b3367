"""Running cases against deployments: which deployments, each (deployment, case) pair, the results.

Deployments are built the way the gateway builds them (:class:`~hedge.routing.router.Router`
from the config, one adapter per provider) and each case is sent to one of them
directly, never through routing or failover.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from hedge import __version__
from hedge.config import Config, DeploymentConfig, Price
from hedge.conformance.checks import evaluate, evaluate_checks
from hedge.conformance.send import Exchange, exchange, responses_route, substitute
from hedge.conformance.suite import Case, Step
from hedge.cost import catalogue
from hedge.cost.pricing import cost_usd
from hedge.errors import HedgeError
from hedge.providers import families, make_adapter
from hedge.providers.base import Adapter, thinking_requested
from hedge.providers.capabilities import unsupported
from hedge.routing.deployment import Deployment
from hedge.routing.router import Router
from hedge.transport import Transport

Status = Literal["pass", "fail", "skip"]

_FILLER = [
    *("the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "was", "on", "be", "at"),
    *("by", "this", "had", "not", "are", "but", "from", "or", "have", "an", "they", "which", "one", "you"),
    *("were", "all", "we", "her", "she", "there", "would", "their", "will", "when", "who", "him", "been"),
    *("has", "more", "if", "no", "out", "do", "so", "can", "what", "up", "said", "about", "other", "into"),
    *("than", "its", "time", "only", "could", "new", "them", "man", "some", "these", "then", "two", "first"),
]
"""Common English words, each one token for the usual tokenizers (and for the mocks)."""


class SelectionError(Exception):
    """The deployments asked for do not exist in the config."""


@dataclass(slots=True)
class Target:
    deployment: Deployment
    context_window: int | None = None
    """From the deployment's config, if it declares one."""

    @property
    def id(self) -> str:
        return self.deployment.id


@dataclass(slots=True)
class CaseResult:
    deployment: str
    case: str
    status: Status
    reason: str
    latency_ms: float
    cost_usd: float = 0.0
    required: bool = True

    def public(self) -> dict[str, Any]:
        """The JSON report's fields for one result."""
        return {
            "deployment": self.deployment,
            "case": self.case,
            "status": self.status,
            "reason": self.reason,
            "latency_ms": round(self.latency_ms, 1),
        }


@dataclass(slots=True)
class Report:
    deployments: list[str]
    cases: list[Case]
    results: list[CaseResult]
    checked_at: datetime
    duration_ms: float
    hedge_version: str = __version__
    prices: dict[str, Price] = field(default_factory=dict)

    @property
    def required_failures(self) -> list[CaseResult]:
        return [r for r in self.results if r.status == "fail" and r.required]

    @property
    def exit_status(self) -> int:
        """1 when a required case failed, else 0."""
        return 1 if self.required_failures else 0

    def result(self, deployment: str, case: str) -> CaseResult | None:
        return next((r for r in self.results if r.deployment == deployment and r.case == case), None)

    def summary(self) -> dict[str, Any]:
        by_deployment: dict[str, dict[str, Any]] = {}
        for dep in self.deployments:
            rows = [r for r in self.results if r.deployment == dep]
            by_deployment[dep] = {
                **_counts(rows),
                "latency_ms": round(sum(r.latency_ms for r in rows), 1),
                "cost_usd": round(sum(r.cost_usd for r in rows), 10),
            }
        return {
            "ok": self.exit_status == 0,
            "exit_status": self.exit_status,
            "checked_at": self.checked_at.isoformat(),
            "hedge_version": self.hedge_version,
            "deployments": len(self.deployments),
            "cases": len(self.cases),
            **_counts(self.results),
            "duration_ms": round(self.duration_ms, 1),
            "cost_usd": round(sum(r.cost_usd for r in self.results), 10),
            "by_deployment": by_deployment,
        }


def _counts(rows: list[CaseResult]) -> dict[str, int]:
    return {
        "passed": sum(r.status == "pass" for r in rows),
        "failed": sum(r.status == "fail" for r in rows),
        "skipped": sum(r.status == "skip" for r in rows),
        "required_failed": sum(r.status == "fail" and r.required for r in rows),
    }


# -- selecting deployments ------------------------------------------------------------------------


def select_targets(
    config: Config, *, alias: str | None = None, deployment: str | None = None, every: bool = False
) -> list[Target]:
    """The deployments of one alias, one ``PROVIDER/MODEL``, or every distinct deployment in the config.

    ``PROVIDER/MODEL`` need not appear under any alias: a provider's model can be
    checked before it is given traffic (its price is then zero).
    """
    try:
        adapters: dict[str, Adapter] = {name: make_adapter(name, p) for name, p in config.providers.items()}
    except ValueError as exc:
        raise SelectionError(str(exc)) from None
    router = Router(config, adapters, catalogue=catalogue.load(config.state.dir))
    known: dict[str, Target] = {}
    for name, model in config.models.items():
        for dep, dep_config in zip(router.aliases[name].deployments, model.deployments, strict=True):
            known.setdefault(dep.id, Target(dep, _context_window(dep_config)))
    if every:
        return list(known.values())
    if alias is not None:
        if alias not in router.aliases:
            raise SelectionError(
                f"unknown model alias {alias!r} (known: {', '.join(sorted(router.aliases))})"
            )
        ids = dict.fromkeys(d.id for d in router.aliases[alias].deployments)
        return [known[i] for i in ids]
    if deployment is not None:
        if deployment in known:
            return [known[deployment]]
        provider, sep, model_name = deployment.partition("/")
        if not sep or not model_name:
            raise SelectionError(f"--deployment takes PROVIDER/MODEL, got {deployment!r}")
        if provider not in config.providers:
            known_providers = ", ".join(sorted(config.providers))
            raise SelectionError(f"unknown provider {provider!r} (known: {known_providers})")
        cfg = config.providers[provider]
        dep = Deployment(
            provider=provider,
            model=model_name,
            adapter=adapters[provider],
            price=Price(),
            weight=1.0,
            timeouts=cfg.timeout,
            on_unsupported=cfg.on_unsupported,
        )
        return [Target(dep)]
    raise SelectionError("choose deployments with --model ALIAS, --deployment PROVIDER/MODEL or --all")


def _context_window(dep_config: DeploymentConfig) -> int | None:
    # Read if the config grows a ``context_window`` field on deployments.
    value = getattr(dep_config, "context_window", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def context_window(case: Case, target: Target) -> int | None:
    """The case's ``params.context_window`` for this deployment, else what its config declares."""
    value = case.params.get("context_window")
    if isinstance(value, dict):
        value = value.get(target.id, value.get(target.deployment.model))
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return target.context_window


# -- running --------------------------------------------------------------------------------------


def build_body(case: Case, window: int | None, step: Step | None = None) -> dict[str, Any]:
    """The body a case (or one of its steps) sends: a fresh copy, long-context padding applied."""
    body = copy.deepcopy(case.request if step is None else step.request)
    if case.stream:
        body["stream"] = True
    if case.context_fill is not None and window is not None:
        words = int(window * case.context_fill)
        filler = " ".join(_FILLER[i % len(_FILLER)] for i in range(words))
        messages = body["messages"]
        last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=len(messages) - 1)
        text = messages[last].get("content")
        messages[last] = {**messages[last], "content": f"{filler}\n\n{text if isinstance(text, str) else ''}"}
    return body


def skip_reason(case: Case, target: Target, body: dict[str, Any], window: int | None) -> str | None:
    adapter = target.deployment.adapter
    caps = adapter.capabilities
    missing = [name for name in case.requires if not getattr(caps, name)]
    if missing:
        return f"{adapter.style} adapter declares no {missing[0]!r} capability"
    if case.context_fill is not None and window is None:
        return "context window unknown (set context_window on the deployment)"
    if case.api == "responses":
        try:
            chat, _, native = responses_route(target.deployment, {**body, "model": target.deployment.model})
        except HedgeError:
            return None  # the face refuses the request: sending it reports that
        if native is not None:
            return None  # passed through as it is: the upstream serves the Responses API itself
        body = chat
    model = case.model or target.deployment.model
    bad = unsupported(body, caps, adapter.style, model)
    if bad:
        return f"{adapter.style} adapter cannot honour {', '.join(bad)}"
    if thinking_requested(body) and not families.thinks(adapter.style, model):
        return f"model {model} does not reason"
    return None


def _short(reason: str, limit: int = 200) -> str:
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


async def run_case(transport: Transport, target: Target, case: Case, now: datetime) -> CaseResult:
    dep = target.deployment
    window = context_window(case, target)
    body = build_body(case, window)
    skipped = skip_reason(case, target, body, window)
    if skipped is not None:
        return CaseResult(dep.id, case.id, "skip", skipped, 0.0, 0.0, case.required)
    model = case.model or dep.model
    exchanges: list[Exchange] = []
    for _ in range(case.repeat):
        exchanges.append(await exchange(transport, dep, body, model, case.stream, case.api))
    reason = evaluate(case, exchanges, window)
    if reason is not None and case.steps:
        reason = f"step 1: {reason}"
    sent = list(exchanges)
    for n, step in enumerate(case.steps, 2):
        if reason is not None:
            break
        before = sent[-1]
        try:
            body = substitute(build_body(case, window, step), before.call_ids())
        except LookupError as exc:
            reason = f"step {n}: {exc}"
            break
        if case.api == "responses":
            body["previous_response_id"] = (before.body or {}).get("id")
            ex = await exchange(transport, dep, body, model, case.stream, case.api, before.conversation)
        else:
            body["messages"] = [*before.conversation, *body["messages"]]
            ex = await exchange(transport, dep, body, model, case.stream)
        sent.append(ex)
        reason = evaluate_checks(step.checks, [ex], window)
        if reason is not None:
            reason = f"step {n}: {reason}"
    price = dep.price_at(now)
    return CaseResult(
        dep.id,
        case.id,
        "fail" if reason else "pass",
        _short(reason or ""),
        sum(ex.latency_ms for ex in sent),
        sum(cost_usd(ex.usage, price) for ex in sent),
        case.required,
    )


async def run(
    config: Config,
    targets: list[Target],
    cases: list[Case],
    concurrency: int = 4,
    on_result: Callable[[CaseResult], None] | None = None,
) -> Report:
    """Every case against every target, ``concurrency`` at a time; results in matrix order."""
    checked_at = datetime.now(UTC)
    began = time.perf_counter()
    transport = Transport(config.providers)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(target: Target, case: Case) -> CaseResult:
        async with gate:
            result = await run_case(transport, target, case, checked_at)
        if on_result is not None:
            on_result(result)
        return result

    try:
        results = await asyncio.gather(*(one(t, c) for t in targets for c in cases))
    finally:
        await transport.close()
    return Report(
        deployments=[t.id for t in targets],
        cases=cases,
        results=list(results),
        checked_at=checked_at,
        duration_ms=(time.perf_counter() - began) * 1000,
        prices={t.id: t.deployment.price_at(checked_at) for t in targets},
    )
