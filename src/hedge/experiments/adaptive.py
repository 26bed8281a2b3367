"""Where an adaptive experiment's traffic should go next, and why: a pure function of the arms'
results and the current weights, so it is tested without a server, a database or a clock.

The target is the cheapest arm (per request) that *qualifies*: it and control have at least
``min_samples`` metric values, it is not worse than control by more than ``margin``
(non-inferiority at ``confidence``, when a margin is set) and the lower bound of its metric is
at or above ``bar`` (when a bar is set). Control qualifies on the bar alone. Up to ``max_step``
percentage points then move to the target from the other arms, in proportion to their shares,
never taking control below ``control_floor``. No target, or a target of control while a cheaper
arm still lacks samples, changes nothing (starving an arm of traffic would stop its evidence).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hedge.config import AdaptiveConfig, ExperimentConfig
from hedge.experiments.arms import arm_order
from hedge.experiments.stats import Sample, lower_bound, non_inferior

EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class ArmEvidence:
    arm: str
    sample: Sample
    cost_per_request: float | None


@dataclass(frozen=True, slots=True)
class Decision:
    weights: dict[str, float]
    """The new shares (percent, summing to 100)."""
    evidence: dict[str, Any]


def qualifies(
    arm: ArmEvidence, control: ArmEvidence, config: ExperimentConfig, min_samples: int, confidence: float
) -> bool | None:
    """Whether ``arm`` may take traffic from control; ``None``: not enough samples to say."""
    if arm.sample.n < min_samples or control.sample.n < min_samples:
        return None
    if (
        config.margin is not None
        and arm.arm != "control"
        and not non_inferior(arm.sample, control.sample, config.margin, confidence)
    ):
        return False
    if config.bar is not None:
        low = lower_bound(arm.sample, confidence)
        if low is None or low < config.bar:
            return False
    return True


def decide(
    config: ExperimentConfig, adaptive: AdaptiveConfig, weights: Mapping[str, float], arms: list[ArmEvidence]
) -> Decision | None:
    """The change of weights the evidence calls for, or ``None`` (nothing should move)."""
    by_arm = {a.arm: a for a in arms}
    for name in config.arms:
        by_arm.setdefault(name, ArmEvidence(name, Sample(0, 0.0, 0.0), None))
    control = by_arm["control"]
    verdicts = {
        name: qualifies(by_arm[name], control, config, adaptive.min_samples, adaptive.confidence)
        for name in arm_order(config.arms)
    }
    costs = {name: by_arm[name].cost_per_request for name in verdicts}
    eligible = [n for n, ok in verdicts.items() if ok and costs[n] is not None]
    evidence: dict[str, Any] = {
        "arms": {
            name: {
                "n": by_arm[name].sample.n,
                "mean": by_arm[name].sample.mean,
                "cost_per_request_usd": costs[name],
                "qualifies": verdicts[name],
            }
            for name in verdicts
        },
        "margin": config.margin,
        "bar": config.bar,
        "confidence": adaptive.confidence,
        "min_samples": adaptive.min_samples,
        "before": dict(weights),
    }
    if not eligible:
        return None
    target = min(eligible, key=lambda n: (costs[n], n != "control", n))
    if target == "control":
        control_cost = costs["control"] or 0.0
        undecided = [
            n
            for n, ok in verdicts.items()
            if ok is None and n != "control" and (costs[n] or 0.0) < control_cost
        ]
        if undecided:
            return None
    moved = _move(weights, target, adaptive.max_step, adaptive.control_floor)
    if moved is None:
        return None
    evidence["target"] = target
    evidence["after"] = moved
    return Decision(moved, evidence)


def _move(weights: Mapping[str, float], target: str, step: float, floor: float) -> dict[str, float] | None:
    """Up to ``step`` points to ``target`` from the others, in proportion to what each can give."""
    spare = {
        arm: max(0.0, share - (floor if arm == "control" else 0.0))
        for arm, share in weights.items()
        if arm != target
    }
    available = sum(spare.values())
    take = min(step, available)
    if take <= EPSILON:
        return None
    moved = {arm: weights[arm] - (take * spare[arm] / available if arm != target else 0.0) for arm in weights}
    moved[target] = weights[target] + take
    return {arm: round(share, 6) for arm, share in moved.items()}
