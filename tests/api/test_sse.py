"""Watching for a client that leaves: through the server protocol's Departure, or a watcher task."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hedge.api.cycle import Departure
from hedge.api.sse import ClientGone, unless_client_leaves

Message = dict[str, Any]


def client(disconnect: asyncio.Event) -> Callable[[], Awaitable[Message]]:
    """An ASGI receive whose only message, once ``disconnect`` is set, is the disconnect."""

    async def receive() -> Message:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    return receive


@pytest.mark.parametrize("how", ["departure", "watcher"])
async def test_the_work_is_cancelled_when_the_client_leaves(how: str) -> None:
    left = asyncio.Event()
    departure = Departure() if how == "departure" else None
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def work() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    async def leave() -> None:
        await started.wait()
        if departure is not None:
            departure.leave()
        else:
            left.set()

    leaving = asyncio.ensure_future(leave())
    with pytest.raises(ClientGone):
        await unless_client_leaves(client(left), work(), departure)
    await leaving
    assert cancelled.is_set()
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("how", ["departure", "watcher"])
async def test_work_that_ends_first_returns_and_stops_watching(how: str) -> None:
    departure = Departure() if how == "departure" else None

    async def work() -> str:
        await asyncio.sleep(0)
        return "done"

    assert await unless_client_leaves(client(asyncio.Event()), work(), departure) == "done"
    if departure is not None:
        assert departure.on_leave is None
        departure.leave()  # a late departure touches nothing
    await asyncio.sleep(0)


async def test_a_client_gone_before_the_work_starts_never_runs_it() -> None:
    departure = Departure()
    departure.leave()
    ran = False

    async def work() -> None:
        nonlocal ran
        ran = True

    with pytest.raises(ClientGone):
        await unless_client_leaves(client(asyncio.Event()), work(), departure)
    assert not ran


async def test_a_cancel_from_outside_is_not_mistaken_for_a_departure() -> None:
    departure = Departure()
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.ensure_future(unless_client_leaves(client(asyncio.Event()), work(), departure))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
