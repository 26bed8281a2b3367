"""A deployment is one (provider, upstream model) pair that can serve an alias."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from hedge.config import Price, Timeouts
from hedge.providers.base import Adapter
from hedge.routing.stats import DeploymentStats
from hedge.windows import Window


@dataclass(slots=True, eq=False)
class Deployment:
    provider: str
    model: str
    adapter: Adapter
    price: Price
    weight: float
    timeouts: Timeouts
    on_unsupported: Literal["reject", "drop"] = "reject"
    quality: float | None = None
    """The configured quality (``models.*.deployments[].quality``)."""
    measured_quality: float | None = None
    """The lower bound of the quality ``hedge eval --apply`` measured (its 95% interval), if any."""
    price_windows: list[tuple[Window, Price]] = field(default_factory=list)
    stats: DeploymentStats = field(default_factory=DeploymentStats)
    alias: str = ""
    """The alias whose config declared this deployment: what a key's model restriction is checked against."""
    price_missing: bool = False
    """Neither the config nor the catalogue prices this model (``pricing.on_missing: warn``): it is
    booked at 0 and its records are flagged."""
    context_window: int | None = None
    """Tokens the model takes in (the config's ``context_window``, else the catalogue's)."""
    id: str = field(init=False)
    """``provider/model``: what routes, breakers and sessions call it (made once, read a few times a
    request; ``dataclasses.replace`` makes it again)."""

    def __post_init__(self) -> None:
        self.id = f"{self.provider}/{self.model}"

    @property
    def effective_quality(self) -> float | None:
        """What ``min_quality`` is checked against: a measurement beats a configured number."""
        return self.measured_quality if self.measured_quality is not None else self.quality

    @property
    def quality_source(self) -> str | None:
        """``measured``, ``configured``, or None when there is no quality at all."""
        if self.measured_quality is not None:
            return "measured"
        return "configured" if self.quality is not None else None

    def price_at(self, now: datetime) -> Price:
        """The price in force at ``now``: the first matching window's, else the base price."""
        for window, price in self.price_windows:
            if window.contains(now):
                return price
        return self.price
