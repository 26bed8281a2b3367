"""Sticky assignment: a unit (key, user or header value) hashed to an arm by the arms' weights.

The hash of ``experiment`` and the unit is a point in [0, 1); the arms, control first and the
others by name, cover [0, 1) in proportion to their weights, and the arm whose stretch holds the
point serves. So a unit keeps its arm for as long as the weights stay, with no state per unit;
when an adaptive experiment moves weight, only the units on the moved stretch change arm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from hedge.access.keys import VirtualKey
from hedge.config import ExperimentConfig


def arm_order(arms: Mapping[str, Any]) -> list[str]:
    """Control first, then the other arms by name: the order their stretches are laid out in."""
    return ["control", *sorted(a for a in arms if a != "control")]


def shares(weights: Mapping[str, float]) -> dict[str, float]:
    """Weights as percentages of traffic (summing to 100), in :func:`arm_order`."""
    total = sum(max(0.0, w) for w in weights.values())
    if total <= 0:
        return {arm: (100.0 if arm == "control" else 0.0) for arm in arm_order(weights)}
    return {arm: 100.0 * max(0.0, weights[arm]) / total for arm in arm_order(weights)}


def unit_of(
    config: ExperimentConfig, key: VirtualKey | None, body: Mapping[str, Any], headers: Mapping[str, str]
) -> str:
    """What is hashed: the key (``master`` for the master key), the body's ``user``, or a header's
    value; a request without the user or header it is assigned by falls back to its key."""
    by = config.assign_by
    if by == "user":
        user = body.get("user")
        if isinstance(user, str) and user:
            return "user:" + user
    elif by.startswith("header:"):
        value = headers.get(by.removeprefix("header:").lower())
        if value:
            return "header:" + value
    return "key:" + (key.id if key is not None else "master")


def point(experiment: str, unit: str) -> float:
    """The unit's place in [0, 1) for this experiment (independent across experiments)."""
    digest = hashlib.sha256(f"{experiment}\0{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick(weights: Mapping[str, float], at: float) -> str:
    """The arm whose stretch of [0, 1) holds ``at``."""
    edge = 0.0
    last = "control"
    for arm, share in shares(weights).items():
        if share <= 0:
            continue
        edge += share / 100.0
        last = arm
        if at < edge:
            return arm
    return last
