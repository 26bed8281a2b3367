"""The router maps a client's model alias to an ordered plan of deployments.

Order of decisions: the alias's rules (tags, prompt size, time window) may
hand the request to another alias; that alias's strategy orders its
deployments; its fallback aliases' deployments follow; finally the request's
own ``hedge`` preferences (OpenRouter-style ``order``/``only``/``ignore``,
``sort``, ``max_price``, ``allow_fallbacks``) reorder or filter the plan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hedge.config import Config, ModelConfig, Price, RuleConfig
from hedge.cost.catalogue import Catalogue
from hedge.errors import InvalidRequest, NotFound
from hedge.providers.base import Adapter
from hedge.routing.context import RouteContext
from hedge.routing.deployment import Deployment
from hedge.routing.stats import DeploymentStats
from hedge.routing.strategies import STRATEGIES, Strategy, expected_cost
from hedge.windows import Window, parse_window

_MAX_RULE_HOPS = 8
log = logging.getLogger("hedge.router")


@dataclass(slots=True)
class Rule:
    config: RuleConfig
    window: Window | None

    def matches(self, ctx: RouteContext) -> bool:
        when = self.config.when
        if when.tags is not None and not ctx.tags.intersection(when.tags):
            return False
        if when.min_prompt_tokens is not None and ctx.prompt_tokens < when.min_prompt_tokens:
            return False
        if when.max_prompt_tokens is not None and ctx.prompt_tokens > when.max_prompt_tokens:
            return False
        return not (self.window is not None and not self.window.contains(ctx.now))


@dataclass(slots=True)
class Alias:
    name: str
    deployments: list[Deployment]
    strategy: Strategy
    baseline_price: Price | None
    config: ModelConfig
    rules: list[Rule]

    @property
    def fallbacks(self) -> list[str]:
        return self.config.fallbacks

    @property
    def max_attempts(self) -> int | None:
        return self.config.max_attempts


class Router:
    def __init__(
        self,
        config: Config,
        adapters: Mapping[str, Adapter],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        catalogue: Catalogue | None = None,
    ) -> None:
        self.clock = clock
        self.stats: dict[str, DeploymentStats] = {}
        self._top_prices: dict[str, Price] = {}
        self.aliases: dict[str, Alias] = {}
        self.sticky = any(model.sticky is not None for model in config.models.values())
        """Whether any alias keeps sticky sessions (else the pipeline never looks for one)."""
        self.unpriced: list[str] = []
        """Deployments neither the config nor the catalogue prices, in config order (each once)."""
        flag_unpriced = config.pricing.on_missing != "zero"
        for name, model in config.models.items():
            deps = []
            for d in model.deployments:
                provider = config.providers[d.provider]
                price = _price(d.price, d.model, catalogue)
                window = d.context_window
                if window is None and catalogue is not None:
                    window = catalogue.context_window(d.model)
                dep = Deployment(
                    provider=d.provider,
                    model=d.model,
                    adapter=adapters[d.provider],
                    price=price or Price(),
                    price_missing=price is None and flag_unpriced,
                    context_window=window,
                    weight=d.weight,
                    timeouts=provider.timeout,
                    on_unsupported=provider.on_unsupported,
                    quality=d.quality,
                    price_windows=[
                        (parse_window(w.window, w.timezone, w.days), w.price) for w in d.price_windows
                    ],
                    alias=name,
                )
                # One stats object per provider/model, shared by every alias that uses it.
                dep.stats = self.stats.setdefault(dep.id, dep.stats)
                if price is None and dep.id not in self.unpriced:
                    self.unpriced.append(dep.id)
                deps.append(dep)
            baseline = None
            if model.baseline is not None:
                first = config.models[model.baseline].deployments[0]
                baseline = _price(first.price, first.model, catalogue) or Price()
            rules = [
                Rule(
                    r,
                    parse_window(r.when.window.window, r.when.window.timezone, r.when.window.days)
                    if r.when.window
                    else None,
                )
                for r in model.rules
            ]
            strategy = STRATEGIES[model.strategy](deps, model)
            self.aliases[name] = Alias(name, deps, strategy, baseline, model, rules)

    def set_measured_quality(self, measured: Mapping[str, float]) -> None:
        """Measured quality by deployment id (``provider/model``), for every alias that uses it; a
        deployment not in ``measured`` falls back to its configured quality."""
        for alias in self.aliases.values():
            for dep in alias.deployments:
                dep.measured_quality = measured.get(dep.id)

    def context(self, body: dict[str, Any], header_tags: tuple[str, ...] = ()) -> RouteContext:
        return RouteContext(body, self.clock, header_tags)

    def alias(self, name: str) -> Alias:
        try:
            return self.aliases[name]
        except KeyError:
            raise NotFound(
                f"The model '{name}' does not exist. Available models: {', '.join(sorted(self.aliases))}.",
                param="model",
            ) from None

    def resolve(self, name: str, ctx: RouteContext, allowed: Collection[str] | None = None) -> Alias:
        """Follow the alias's rules to the alias that serves this request.

        With ``allowed`` (a key's model restriction), a rule that would hand the request to an
        alias outside it does not match, so a restricted key stays on aliases it may use.
        """
        alias = self.alias(name)
        for _ in range(_MAX_RULE_HOPS):
            target = next(
                (
                    r.config.use
                    for r in alias.rules
                    if (allowed is None or r.config.use in allowed) and r.matches(ctx)
                ),
                None,
            )
            if target is None:
                return alias
            alias = self.aliases[target]
        return alias

    def plan(
        self,
        name: str,
        ctx: RouteContext | None = None,
        allowed: Collection[str] | None = None,
        pinned: str | None = None,
    ) -> tuple[Alias, list[Deployment]]:
        """The serving alias and the deployments to try, in order.

        ``allowed`` is the caller's model restriction: every alias the plan reaches (through
        rules, fallbacks and so what preferences may reorder) must be in it. ``pinned`` is the
        deployment a sticky session is kept on: if the serving alias has it, it goes first and
        the strategy's own state (a weighted split's round-robin) does not move, so the split
        counts sessions, not requests.
        """
        ctx = ctx or self.context({})
        alias = self.resolve(name, ctx, allowed)
        first = next((d for d in alias.deployments if d.id == pinned), None) if pinned else None
        if first is not None:
            plan = [first, *(d for d in alias.strategy.peek(ctx) if d is not first)]
        else:
            plan = alias.strategy.order(ctx)
        if alias.fallbacks:
            seen = {d.id for d in plan}
            for fallback in alias.fallbacks:
                if allowed is not None and fallback not in allowed:
                    continue
                for dep in self.aliases[fallback].strategy.peek(ctx):
                    if dep.id not in seen:
                        seen.add(dep.id)
                        plan.append(dep)
        if allowed is not None:
            plan = [d for d in plan if d.alias in allowed]
        plan = fitting(plan, ctx)
        options = ctx.body.get("hedge")
        if isinstance(options, dict) and options:
            plan = apply_preferences(plan, options, ctx)
        return alias, plan

    def max_cost(self, name: str, ctx: RouteContext, reserve_output_tokens: int) -> float:
        """An upper bound of the request's cost, reserved against a key's budget while it runs: the
        prompt estimate at the dearest input price and ``max_tokens`` (or ``reserve_output_tokens``)
        at the dearest output price among the deployments the alias may reach (rules, fallbacks,
        escalation), in every price window, token class, long-context and service tier, plus the
        dearest per-request fee. ``n`` choices multiply the output."""
        top = self._top_prices.get(name)
        if top is None:
            top = self._top_prices[name] = self._reachable_top_price(name)
        output = ctx.max_tokens
        if output is None:
            output = reserve_output_tokens
        n = ctx.body.get("n")
        if isinstance(n, int) and not isinstance(n, bool) and n > 1:
            output *= n
        return (ctx.prompt_tokens * top.input + output * top.output) / 1_000_000 + top.per_request

    def _reachable_top_price(self, name: str) -> Price:
        seen: set[str] = set()
        todo = [name]
        top_in = top_out = top_fee = 0.0
        while todo:
            current = todo.pop()
            if current in seen or current not in self.aliases:
                continue
            seen.add(current)
            alias = self.aliases[current]
            for dep in alias.deployments:
                for price in (dep.price, *(p for _, p in dep.price_windows)):
                    inp, out, fee = _dearest(price)
                    top_in, top_out, top_fee = max(top_in, inp), max(top_out, out), max(top_fee, fee)
            todo += alias.fallbacks
            todo += [r.config.use for r in alias.rules]
            if alias.config.escalate is not None:
                todo.append(alias.config.escalate.to)
        return Price(input=top_in, output=top_out, per_request=top_fee)


def _dearest(price: Price) -> tuple[float, float, float]:
    """The dearest prompt-token, completion-token and per-request prices of ``price`` in any of its
    token classes, long-context tiers and service tiers: what a budget reservation must assume."""
    overrides = [*price.tiers, *price.service_tiers.values()]
    inputs = [price.input, price.cached_input or 0.0, price.cache_write_input or 0.0]
    outputs = [price.output, price.reasoning or 0.0]
    fees = [price.per_request]
    for o in overrides:
        inputs += [o.input or 0.0, o.cached_input or 0.0, o.cache_write_input or 0.0]
        outputs += [o.output or 0.0, o.reasoning or 0.0]
        fees.append(o.per_request or 0.0)
    return max(inputs), max(outputs), max(fees)


def _price(configured: Price | None, model: str, catalogue: Catalogue | None) -> Price | None:
    """The deployment's price: its config's, else the catalogue's; None when neither has one."""
    if configured is not None:
        return configured
    return catalogue.lookup(model) if catalogue is not None else None


def fitting(plan: list[Deployment], ctx: RouteContext) -> list[Deployment]:
    """The plan without the deployments whose context window (the config's or the catalogue's) the
    prompt estimate exceeds, as they would only answer ``context_length_exceeded``; when none fits,
    the plan as it is (the estimate is rough: let the upstreams judge)."""
    if not any(d.context_window for d in plan):
        return plan
    need = ctx.prompt_tokens
    fits = [d for d in plan if d.context_window is None or d.context_window >= need]
    return fits or plan


def _matches(dep: Deployment, names: list[str]) -> bool:
    return dep.provider in names or dep.id in names


def apply_preferences(plan: list[Deployment], options: dict[str, Any], ctx: RouteContext) -> list[Deployment]:
    """Per-request routing preferences, as OpenRouter's ``provider`` object defines them."""
    only, ignore, order = options.get("only"), options.get("ignore"), options.get("order")
    if only:
        plan = [d for d in plan if _matches(d, only)]
    if ignore:
        plan = [d for d in plan if not _matches(d, ignore)]
    max_price = options.get("max_price")
    if isinstance(max_price, dict):
        limit_in, limit_out = max_price.get("input"), max_price.get("output")
        plan = [
            d
            for d in plan
            if (limit_in is None or d.price_at(ctx.now).input <= limit_in)
            and (limit_out is None or d.price_at(ctx.now).output <= limit_out)
        ]
    sort = options.get("sort")
    if sort == "price":
        plan = sorted(plan, key=lambda d: expected_cost(d, ctx))
    elif sort == "latency":
        plan = sorted(plan, key=lambda d: d.stats.ewma_latency_ms or 0.0)
    if order:
        ranked = [d for name in order for d in plan if _matches(d, [name])]
        rest = [d for d in plan if d not in ranked]
        plan = ranked + ([] if options.get("allow_fallbacks") is False else rest)
    elif options.get("allow_fallbacks") is False:
        plan = plan[:1]
    if not plan:
        raise InvalidRequest(
            "No deployment satisfies the request's routing preferences (hedge.only/ignore/order/max_price).",
            param="hedge",
            code="no_matching_deployment",
        )
    return plan
