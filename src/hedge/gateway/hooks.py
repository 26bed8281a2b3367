"""The seam through which an experiment splits an alias's traffic, without the pipeline knowing
experiments.

The pipeline asks the runtime's :class:`Assigner` (if one is set, by whatever sits above the
gateway: ``hedge.experiments``) which arm a request belongs to before it plans the request;
the arm names the alias that serves it. The assigner is synchronous and must not do I/O: it
reads weights it keeps in memory, so asking costs a hash per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from hedge.access.keys import VirtualKey


@dataclass(frozen=True, slots=True)
class Arm:
    """Where an experiment sends one request: ``use`` is the alias that serves it."""

    experiment: str
    arm: str
    use: str


class Assigner(Protocol):
    def assign(
        self, alias: str, key: VirtualKey | None, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> Arm | None:
        """The arm of the experiment on ``alias`` this request belongs to, or ``None`` (no experiment)."""
        ...
