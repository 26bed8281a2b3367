"""A deployment is one (provider, upstream model) pair that can serve an alias."""

from __future__ import annotations

from dataclasses import dataclass

from hedge.config import Price, Timeouts
from hedge.providers.base import Adapter


@dataclass(slots=True, eq=False)
class Deployment:
    provider: str
    model: str
    adapter: Adapter
    price: Price
    weight: float
    timeouts: Timeouts

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.model}"
