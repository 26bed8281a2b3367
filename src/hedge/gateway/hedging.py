"""Hedged requests: when the first deployment is slow to answer, ask the next one too.

An alias with ``hedge_after_ms`` runs its failover as usual (the *primary lane*); if that has not
answered (a stream: sent its first token) after the delay, the same request goes to the next
healthy deployment of the plan that the primary lane has not tried (the *hedge lane*), and the
first answer wins. The loser is cancelled: its connection is closed, its breaker told nothing
(slowness is no verdict), and its step on the route reads ``hedge_lost``. A hedge is a retry as
far as load goes, so each one spends the retry budget; with the budget spent the request just
waits for the primary lane.

The pipeline's attempt functions take part through a :class:`Race`: the first attempt to finish
claims it (and alone books its answer as the request's), an attempt that finishes after the race
was decided books what its provider will bill as a loss and raises :class:`LostRace`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TypeVar, overload

from hedge.errors import HedgeError
from hedge.record import Outcome, RouteStep
from hedge.resilience.failover import D, Failover

T = TypeVar("T")


class LostRace(Exception):
    """An attempt of a hedged request answered after the other lane had already won."""


class Race:
    """Who won one hedged request (``None`` until an attempt answers)."""

    __slots__ = ("winner",)

    def __init__(self) -> None:
        self.winner: str | None = None

    def claim(self, dep_id: str) -> bool:
        """``dep_id`` has an answer: True if it is the first (so it is the request's answer)."""
        if self.winner is None:
            self.winner = dep_id
            return True
        return self.winner == dep_id

    def lost(self, dep_id: str) -> bool:
        """Whether another deployment has won (so ``dep_id``'s attempt is a hedge's loss)."""
        return self.winner is not None and self.winner != dep_id


class _LivePlan(Sequence[D]):
    """The primary lane's plan, without the deployment the hedge lane took (read at each step, so
    a hedge sent while the primary lane is under way is not tried a second time by it)."""

    def __init__(self, plan: Sequence[D]) -> None:
        self._plan = plan
        self.taken: set[str] = set()
        self.tried: list[str] = []

    def __iter__(self) -> Iterator[D]:
        for dep in self._plan:
            if dep.id not in self.taken:
                yield dep

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @overload
    def __getitem__(self, index: int) -> D: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[D]: ...

    def __getitem__(self, index: int | slice) -> D | Sequence[D]:
        return list(self)[index]


async def hedged(
    failover: Failover,
    plan: Sequence[D],
    attempt: Callable[[D], Awaitable[T]],
    trace: list[RouteStep],
    max_attempts: int | None,
    after_s: float,
    race: Race,
) -> T:
    """Run ``plan`` through ``failover`` with one hedge after ``after_s`` seconds (see the module)."""
    live = _LivePlan(plan)

    async def tracked(dep: D) -> T:
        live.tried.append(dep.id)
        return await attempt(dep)

    primary_trace: list[RouteStep] = []
    hedge_trace: list[RouteStep] = []
    primary = asyncio.ensure_future(failover.run(live, tracked, primary_trace, max_attempts))
    lanes: list[asyncio.Future[T]] = [primary]
    try:
        done, _ = await asyncio.wait(lanes, timeout=after_s)
        if not done:
            target = _next(failover, plan, live.tried)
            if target is not None:
                if failover.budget.try_retry():
                    live.taken.add(target.id)
                    lanes.append(
                        asyncio.ensure_future(
                            failover.run([target], attempt, hedge_trace, 1, new_request=False)
                        )
                    )
                else:
                    hedge_trace.append(RouteStep(target.id, Outcome.RETRY_BUDGET_EXHAUSTED))
        return await _first_answer(lanes)
    finally:
        for lane in lanes:
            lane.cancel()
        for lane in lanes:
            with contextlib.suppress(BaseException):
                await lane
        trace.extend(_lost(primary_trace, race))
        trace.extend(_lost(hedge_trace, race))


async def _first_answer(lanes: list[asyncio.Future[T]]) -> T:
    """The first lane to answer; if every lane fails, the primary lane's error."""
    pending = set(lanes)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for lane in lanes:
            if lane in done and not lane.cancelled() and lane.exception() is None:
                return lane.result()
    for lane in lanes:
        if lane.cancelled():
            continue
        exc = lane.exception()
        if isinstance(exc, HedgeError):
            raise exc
    for lane in lanes:
        if not lane.cancelled() and (exc := lane.exception()) is not None and not isinstance(exc, LostRace):
            raise exc
    raise asyncio.CancelledError


def _next(failover: Failover, plan: Sequence[D], tried: list[str]) -> D | None:
    """The hedge's deployment: the first healthy one of the plan that the primary lane has not tried."""
    for dep in plan:
        if dep.id not in tried and failover.healthy(dep.id):
            return dep
    return None


def _lost(steps: list[RouteStep], race: Race) -> list[RouteStep]:
    """A lane's steps, its attempt cut off by the other lane's answer shown as ``hedge_lost``."""
    if race.winner is None:
        return steps
    return [
        RouteStep(s.target, Outcome.HEDGE_LOST)
        if s.outcome is Outcome.CANCELLED and race.lost(s.target)
        else s
        for s in steps
    ]
