"""The router maps a client's model alias to an ordered plan of deployments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hedge.config import Config, Price
from hedge.errors import NotFound
from hedge.providers.base import Adapter
from hedge.routing.deployment import Deployment
from hedge.routing.strategies import STRATEGIES, Strategy


@dataclass(slots=True)
class Alias:
    name: str
    deployments: list[Deployment]
    strategy: Strategy
    baseline_price: Price | None
    fallbacks: list[str]
    max_attempts: int | None


class Router:
    def __init__(self, config: Config, adapters: Mapping[str, Adapter]) -> None:
        self.aliases: dict[str, Alias] = {}
        for name, model in config.models.items():
            deps = [
                Deployment(
                    provider=d.provider,
                    model=d.model,
                    adapter=adapters[d.provider],
                    price=d.price,
                    weight=d.weight,
                    timeouts=config.providers[d.provider].timeout,
                )
                for d in model.deployments
            ]
            baseline = None
            if model.baseline is not None:
                baseline = config.models[model.baseline].deployments[0].price
            self.aliases[name] = Alias(
                name, deps, STRATEGIES[model.strategy](deps), baseline, model.fallbacks, model.max_attempts
            )

    def alias(self, name: str) -> Alias:
        try:
            return self.aliases[name]
        except KeyError:
            raise NotFound(
                f"The model '{name}' does not exist. Available models: {', '.join(sorted(self.aliases))}.",
                param="model",
            ) from None

    def plan(self, name: str) -> tuple[Alias, list[Deployment]]:
        """The alias and the deployments to try, in order: its own, then its fallback aliases'."""
        alias = self.alias(name)
        plan = alias.strategy.order()
        if alias.fallbacks:
            seen = {d.id for d in plan}
            for fallback in alias.fallbacks:
                for dep in self.aliases[fallback].strategy.order():
                    if dep.id not in seen:
                        seen.add(dep.id)
                        plan.append(dep)
        return alias, plan
