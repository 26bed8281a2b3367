"""How a serving process treats its heap: collect once at start, freeze it, collect the young rarely.

CPython's collector walks every tracked container of a generation it collects. Hedge starts with
a large heap that lives as long as the process (the configuration, the price catalogue, the
routers, the imported libraries), and at a few thousand requests a second the request records
waiting for the ledger survive into the old generation, which sets off a full collection every
second or so: one that walks the whole start-up heap each time. Measured with
``bench/tail.py`` (``hedge_gc_pause_seconds``), those full collections held the event loop for
about 70 ms each, and they were the p99 at concurrency 32.

:func:`settle` is called once a server has started: everything alive then is collected and
frozen (:func:`gc.freeze`: later collections skip it), and the youngest generation is collected
after more allocations than the default 700, since a request allocates hundreds of containers
and almost all of them are freed by reference counting long before any collection. Cycles are
still collected, only less often. Not for a test process that builds many gateways: what is
frozen is never collected, so only ``hedge serve`` calls it.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Allocations (net of frees) of tracked objects between two collections of the young generation."""


def settle() -> None:
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
