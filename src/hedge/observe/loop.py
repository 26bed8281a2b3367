"""What stalls the event loop: its lag, the garbage collector's pauses, the ledger's flushes.

One event loop serves every request of a worker, so anything that holds it (a long
synchronous step, a full garbage collection, a large batch of rows built at once) is
added to every request waiting behind it: that is where a latency tail comes from.
:class:`LoopWatch` measures the three usual suspects and hands them to
:class:`~hedge.observe.metrics.Metrics` as histograms, so an operator sees them at
``/metrics`` and ``bench/tail.py`` reads them after a load run:

* ``hedge_event_loop_lag_seconds``: how late a timer that should fire every
  ``interval_s`` fires (a stall of the loop, whatever its cause);
* ``hedge_gc_pause_seconds{generation}``: every collection, timed with
  :data:`gc.callbacks`;
* ``hedge_ledger_flush_seconds``: each batch the request ledger writes (rows built on the
  loop, then written).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable
from typing import Any

from hedge.tasks import stop

Observe = Callable[[float], None]


class LoopWatch:
    def __init__(
        self,
        on_lag: Observe,
        on_gc: Callable[[int, float], None],
        *,
        interval_s: float = 0.05,
    ) -> None:
        self._on_lag = on_lag
        self._on_gc = on_gc
        self._interval = interval_s
        self._task: asyncio.Task[None] | None = None
        self._gc_started: float | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._sample())
            gc.callbacks.append(self._gc)

    async def close(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._gc)
        task, self._task = self._task, None
        await stop(task)

    async def _sample(self) -> None:
        clock = time.perf_counter
        while True:
            due = clock() + self._interval
            await asyncio.sleep(self._interval)
            self._on_lag(max(0.0, clock() - due))

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started is not None:
            self._on_gc(int(info.get("generation", 0)), time.perf_counter() - self._gc_started)
            self._gc_started = None
