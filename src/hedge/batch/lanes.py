"""Where a batch runs: a provider's native batch API, or scheduled lines through the pipeline.

:func:`native_lane` is the one decision between the two. A batch goes to a native batch API
(OpenAI ``/v1/batches``, Anthropic ``/v1/messages/batches`` ...) when the first deployment its
alias would route to belongs to a provider with one, the deadline leaves the provider its whole
completion window (24 hours), and a line costs less there, at the batch price
(:func:`hedge.cost.pricing.batch_price`), than at the cheapest window the scheduler found.
Otherwise its lines run as scheduled interactive requests.

The native clients themselves are not this package's: the worker is handed a
:class:`NativeSupport` (a factory with the signature of ``native_batches(transport,
provider_name, provider_config)`` and the line type it submits), and without one every batch
runs as scheduled lines. What the worker needs of a client is :class:`NativeClient`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hedge.config import Price, ProviderConfig
from hedge.cost.pricing import batch_price
from hedge.errors import HedgeError
from hedge.gateway.runtime import Runtime
from hedge.routing.context import RouteContext
from hedge.routing.deployment import Deployment
from hedge.routing.strategies import DEFAULT_COMPLETION_TOKENS
from hedge.transport import Transport

NATIVE_WINDOW_S = 24 * 3600.0
"""The completion window the providers' batch APIs promise: a batch due sooner is not sent there."""


class NativeClient(Protocol):
    """A provider's batch API, as the worker uses it (``hedge.batch.native.NativeBatches``).

    ``poll`` returns a progress with ``status`` (``running``, ``ended``, ``failed``,
    ``cancelled``, ``expired``); ``results`` the lines' outcomes, each with ``custom_id``,
    ``status`` (the HTTP status the line would have had interactively, None if it never ran),
    ``body`` (a chat completion or an OpenAI error), ``usage`` and ``retryable``.
    """

    async def submit(self, lines: Sequence[Any]) -> str: ...

    async def poll(self, upstream_id: str) -> Any: ...

    async def results(self, upstream_id: str) -> Sequence[Any]: ...

    async def cancel(self, upstream_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class NativeSupport:
    clients: Callable[[Transport, str, ProviderConfig], NativeClient | None]
    """``native_batches``: the provider's batch client, or None when it has none."""
    line: Callable[[str, dict[str, Any]], Any]
    """``NativeLine(custom_id, body)``: one line as ``submit`` takes it."""


@dataclass(frozen=True, slots=True)
class NativeLane:
    deployment: Deployment
    client: NativeClient
    line: Callable[[str, dict[str, Any]], Any]


def line_cost(price: Price, ctx: RouteContext, dep: Deployment) -> float:
    """A line's expected cost at ``price`` (tokens estimated as the router estimates them)."""
    completion = ctx.max_tokens or dep.stats.avg_completion_tokens or DEFAULT_COMPLETION_TOKENS
    return (ctx.prompt_tokens * price.input + completion * price.output) / 1_000_000


def native_lane(
    runtime: Runtime,
    support: NativeSupport | None,
    sample: dict[str, Any],
    time_left_s: float,
    scheduled_cost: float,
) -> NativeLane | None:
    """The native batch API a batch of lines like ``sample`` should go to, or None: run its lines
    as scheduled interactive requests (``scheduled_cost``: a line's expected cost that way)."""
    if support is None or time_left_s < NATIVE_WINDOW_S:
        return None
    router = runtime.router
    ctx = router.context(sample, ("batch",))
    try:
        plan = router.resolve(str(sample.get("model")), ctx).strategy.peek(ctx)
    except HedgeError:
        return None
    if not plan:
        return None
    dep = plan[0]
    client = support.clients(runtime.transport, dep.provider, runtime.config.providers[dep.provider])
    if client is None or line_cost(batch_price(dep.price), ctx, dep) >= scheduled_cost:
        return None
    return NativeLane(dep, client, support.line)
