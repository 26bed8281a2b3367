"""Background tasks: the one way a component stops the loop it started.

Hedge's long-lived parts (the prober, the shared breakers, the gate's flusher, the response pruner
...) each run one task until closed. Stopping it is always the same: cancel it and wait until it has
finished, so nothing of it runs after ``close()`` returns, without its cancellation escaping.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def stop(task: asyncio.Task[Any] | asyncio.Future[Any] | None) -> None:
    """Cancel ``task`` (None: nothing to stop) and wait for it to end."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
