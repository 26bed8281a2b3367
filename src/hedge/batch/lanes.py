"""Where a batch runs: a provider's native batch API, or scheduled lines through the pipeline.

The one decision point between the two lanes. Native provider batches (``providers.X.batch:
true``: OpenAI ``/v1/batches``, Anthropic ``/v1/messages/batches`` ...) are not wired into the
worker yet, so every batch runs as scheduled interactive lines; :func:`native_lane` is where a
native client will be chosen for a batch's alias, and the worker already asks it first.
Native lines are to be booked at :func:`hedge.cost.pricing.batch_price`.
"""

from __future__ import annotations

from typing import Protocol

from hedge.gateway.runtime import Runtime


class NativeLane(Protocol):
    """A provider's own batch API for one deployment (submit, poll, results, cancel)."""

    deployment: str


def native_lane(runtime: Runtime, model: str | None) -> NativeLane | None:
    """The native batch API that should take a batch of ``model`` lines, or None: run its lines as
    scheduled interactive requests. Always None for now (no native client is wired in)."""
    return None
