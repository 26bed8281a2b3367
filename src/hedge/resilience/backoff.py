"""Exponential backoff with full jitter, never shorter than a provider's Retry-After."""

from __future__ import annotations

import random

from hedge.config import BackoffConfig


def backoff_seconds(
    round_no: int, config: BackoffConfig, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """Delay before retry round ``round_no`` (1 = first retry round)."""
    cap = min(config.max_ms, config.base_ms * (2 ** max(0, round_no - 1)))
    jittered = (rng or random).uniform(0, cap) / 1000.0
    return max(jittered, retry_after or 0.0)
