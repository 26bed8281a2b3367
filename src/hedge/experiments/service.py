"""Experiments in a running gateway: the arm assigner the pipeline asks, the adaptive loop, the
shadow copies, feedback and the results every surface shows.

One :class:`Experiments` per runtime. It is the runtime's :class:`~hedge.gateway.hooks.Assigner`
(from weights it keeps in memory) and refreshes those weights from the state database every
few seconds, so every replica assigns alike. :meth:`tick` is one round of the loop (refresh,
then for each adaptive experiment whose decision slot has come, decide and record); the
background task calls it, tests call it with a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from hedge.access.keys import VirtualKey
from hedge.config import ConfigError, ExperimentConfig
from hedge.experiments.adaptive import ArmEvidence, decide, qualifies
from hedge.experiments.arms import arm_order, pick, point, shares, unit_of
from hedge.experiments.shadow import Shadows, config_problems
from hedge.experiments.stats import Sample, difference, lower_bound, mean_interval
from hedge.gateway.hooks import Arm
from hedge.gateway.runtime import Runtime
from hedge.store.experiments import ArmAggregate, ExperimentStore, PairAggregate
from hedge.tasks import stop

log = logging.getLogger("hedge.experiments")
REFRESH_S = 5.0
"""How often a replica re-reads the shared weights (and checks whether a decision is due)."""


def config_hash(config: ExperimentConfig) -> str:
    """Identifies the arms a weight change was made for: a changed config starts from its own weights."""
    arms = {name: [arm.use, arm.weight] for name, arm in sorted(config.arms.items())}
    raw = orjson.dumps({"alias": config.alias, "arms": arms}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()[:16]


class Experiments:
    def __init__(
        self,
        runtime: Runtime,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        problems = config_problems(runtime.config)
        if problems:
            raise ConfigError("; ".join(problems))
        self.runtime = runtime
        self.configs: dict[str, ExperimentConfig] = dict(runtime.config.experiments)
        self.store = ExperimentStore(runtime.db)
        self.shadows = Shadows(runtime, self.store, clock, rng)
        self._clock = clock
        self._by_alias = {exp.alias: name for name, exp in self.configs.items()}
        self._hash = {name: config_hash(exp) for name, exp in self.configs.items()}
        self.weights: dict[str, dict[str, float]] = {
            name: shares({arm: spec.weight for arm, spec in exp.arms.items()})
            for name, exp in self.configs.items()
        }
        """Each experiment's current shares of traffic (percent)."""
        self._decided: dict[str, int] = {}
        """The last decision slot each adaptive experiment was decided for, on this replica."""
        self._task: asyncio.Task[None] | None = None
        if self.configs:
            runtime.assigner = self

    # -- the pipeline's assigner -------------------------------------------------------------------

    def assign(
        self, alias: str, key: VirtualKey | None, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> Arm | None:
        name = self._by_alias.get(alias)
        if name is None:
            return None
        config = self.configs[name]
        if key is not None and key.models and any(arm.use not in key.models for arm in config.arms.values()):
            return None  # a key that may not use every arm stays out: on one arm only, it would bias it
        arm = pick(self.weights[name], point(name, unit_of(config, key, body, headers)))
        return Arm(name, arm, config.arms[arm].use)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the shared weights; with experiments configured, keep them fresh in the background."""
        self.shadows.open()
        if not self.configs:
            return
        with contextlib.suppress(Exception):  # a database that is down now is retried by the loop
            await self.refresh()
        self._task = asyncio.ensure_future(self._loop())

    async def close(self) -> None:
        await stop(self._task)
        await self.shadows.close(self.runtime.config.state.shutdown_timeout_s)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.tick()
            except Exception as exc:
                log.warning("experiments: could not refresh weights (%s)", type(exc).__name__)

    async def refresh(self) -> None:
        """Adopt the latest recorded weights of each experiment (another replica's change included)."""
        for name in self.configs:
            changes = await self.store.changes(name, self._hash[name], limit=1)
            if changes:
                self._adopt(name, changes[0].weights)

    def _adopt(self, name: str, weights: Mapping[str, float]) -> None:
        arms = self.configs[name].arms
        if set(weights) == set(arms):
            self.weights[name] = {arm: float(weights[arm]) for arm in arm_order(arms)}

    async def tick(self) -> None:
        """One round: refresh the weights, then decide each adaptive experiment whose slot has come."""
        await self.refresh()
        await self.runtime.ledger.flush()  # this replica's latest requests count in the decision
        now = self._clock()
        for name, config in self.configs.items():
            adaptive = config.adaptive
            if adaptive is None:
                continue
            slot = int(now // adaptive.interval_s)
            if self._decided.get(name) == slot:
                continue
            self._decided[name] = slot
            aggregates = await self.store.arms(name, config.metric)
            decision = decide(config, adaptive, self.weights[name], [_evidence(a) for a in aggregates])
            if decision is None:
                continue
            change = await self.store.add_change(
                name, slot, self._hash[name], decision.weights, decision.evidence, now
            )
            self._adopt(name, change.weights)
            log.info(
                "experiment %s: weights now %s (%s)", name, change.weights, change.evidence.get("target")
            )

    # -- feedback ----------------------------------------------------------------------------------

    async def feedback(self, request_id: str, metric: str, value: float, key: VirtualKey | None) -> bool:
        """Store a metric value for a request the caller made; ``False``: no such request of theirs."""
        found, owner = await self.store.request_owner(request_id)
        if not found:  # it may still wait in this replica's ledger buffer
            await self.runtime.ledger.flush()
            found, owner = await self.store.request_owner(request_id)
        if not found or owner != (key.id if key is not None else None):
            return False
        await self.store.put_feedback(request_id, metric, value, owner, self._clock())
        return True

    # -- results -----------------------------------------------------------------------------------

    async def report(self, name: str, changes: int = 20) -> dict[str, Any]:
        """An experiment's per-arm results, its current weights, recommendation and recent changes."""
        config = self.configs[name]
        aggregates = {a.arm: a for a in await self.store.arms(name, config.metric)}
        adaptive = config.adaptive
        confidence = adaptive.confidence if adaptive is not None else 0.95
        min_samples = adaptive.min_samples if adaptive is not None else 2
        evidence = {arm: _evidence(aggregates.get(arm) or _empty(arm)) for arm in config.arms}
        control = evidence["control"]
        arms = []
        recommended: str | None = None
        best_cost = math.inf
        for arm in arm_order(config.arms):
            agg = aggregates.get(arm) or _empty(arm)
            ev = evidence[arm]
            interval = mean_interval(ev.sample)
            diff = difference(ev.sample, control.sample) if arm != "control" else None
            verdict = qualifies(ev, control, config, min_samples, confidence)
            low = lower_bound(ev.sample, confidence)
            cost = ev.cost_per_request
            control_cost = control.cost_per_request
            arms.append(
                {
                    "arm": arm,
                    "use": config.arms[arm].use,
                    "weight": round(self.weights[name][arm], 4),
                    "requests": agg.requests,
                    "n": agg.n,
                    "metric_mean": None if interval is None else interval.estimate,
                    "ci_low": None if interval is None else interval.low,
                    "ci_high": None if interval is None else interval.high,
                    "cost_per_request_usd": cost,
                    "cost_usd": agg.cost_usd,
                    "latency_ms": agg.latency_ms,
                    "diff_to_control": None if diff is None else diff.estimate,
                    "diff_ci_low": None if diff is None else diff.low,
                    "diff_ci_high": None if diff is None else diff.high,
                    "savings_vs_control": (
                        1 - cost / control_cost if cost is not None and control_cost else None
                    ),
                    "meets_bar": None if config.bar is None or low is None else low >= config.bar,
                    "qualifies": verdict,
                }
            )
            if verdict and cost is not None and cost < best_cost:
                recommended, best_cost = arm, cost
        recent = await self.store.changes(name, self._hash[name], limit=changes)
        return {
            "name": name,
            "alias": config.alias,
            "metric": config.metric,
            "assign_by": config.assign_by,
            "bar": config.bar,
            "margin": config.margin,
            "confidence": confidence,
            "adaptive": None if adaptive is None else adaptive.model_dump(),
            "weights": dict(self.weights[name]),
            "arms": arms,
            "recommended": recommended,
            "changes": [{"ts": c.ts, "weights": c.weights, "evidence": c.evidence} for c in recent],
        }

    async def shadow_summary(self, alias: str | None = None, since: float = 0.0) -> list[dict[str, Any]]:
        """Per alias and target: pairs, grader errors, the score with its interval, cost and latency."""
        await self.shadows.flush()
        return [_pairs_json(p) for p in await self.store.pair_summary(since, alias)]

    async def overview(self) -> dict[str, Any]:
        """Every experiment with its results, and every shadow target's pairs."""
        await self.runtime.ledger.flush()
        return {
            "experiments": [await self.report(name, changes=5) for name in self.configs],
            "shadow": await self.shadow_summary(),
            "shadow_copies": self.shadows.counts(),
        }


def _empty(arm: str) -> ArmAggregate:
    return ArmAggregate(arm, 0, 0.0, None, 0, 0.0, 0.0, True)


def _evidence(agg: ArmAggregate) -> ArmEvidence:
    cost = agg.cost_usd / agg.requests if agg.requests else None
    return ArmEvidence(agg.arm, Sample(agg.n, agg.total, agg.squares, agg.binary), cost)


def _pairs_json(p: PairAggregate) -> dict[str, Any]:
    interval = mean_interval(Sample(p.graded, p.total, p.squares, p.binary))
    return {
        "alias": p.alias,
        "target": p.target,
        "grader": p.grader,
        "pairs": p.pairs,
        "graded": p.graded,
        "errors": p.errors,
        "score": None if interval is None else interval.estimate,
        "ci_low": None if interval is None else interval.low,
        "ci_high": None if interval is None else interval.high,
        "primary_cost_usd": p.primary_cost_usd,
        "shadow_cost_usd": p.shadow_cost_usd,
        "savings": 1 - p.shadow_cost_usd / p.primary_cost_usd if p.primary_cost_usd else None,
        "primary_latency_ms": p.primary_latency_ms,
        "shadow_latency_ms": p.shadow_latency_ms,
    }
