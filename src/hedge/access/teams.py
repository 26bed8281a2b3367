"""Teams: a budget shared by every key whose ``team`` is the team's name.

A key's team was only a reporting label; a team created here also has a budget (soft, with an
optional fallback alias, and hard), which the gate enforces together with each key's own: a
request is admitted only if both the key and its team have room, and served by a fallback alias
if either is past its soft budget. Teams are looked up by name through a short cache, as keys are.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

from hedge.access.coalesce import Coalescer
from hedge.access.keys import validate_fields
from hedge.store.db import Database

TEAM_FIELDS = ("name", "budget_usd", "budget_period", "hard_budget_usd", "budget_fallback")


@dataclass(slots=True)
class Team:
    name: str
    created_at: float
    budget_usd: float | None = None
    budget_period: str | None = None
    hard_budget_usd: float | None = None
    budget_fallback: str | None = None

    def public(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Team:
        return cls(
            name=row["name"],
            created_at=row["created_at"],
            budget_usd=row.get("budget_usd"),
            budget_period=row.get("budget_period"),
            hard_budget_usd=row.get("hard_budget_usd"),
            budget_fallback=row.get("budget_fallback"),
        )


class TeamExists(ValueError):
    """A team of that name exists already."""


class TeamStore:
    def __init__(
        self, db: Database, cache_ttl_s: float = 2.0, aliases: Collection[str] | None = None
    ) -> None:
        self.db = db
        self.cache_ttl_s = cache_ttl_s
        self.aliases = aliases
        self._cache: dict[str, tuple[float, Team | None]] = {}
        self._loading: Coalescer[Team | None] = Coalescer()

    async def create(self, fields: dict[str, Any]) -> Team:
        values = validate_fields(fields, creating=True, aliases=self.aliases, allowed=TEAM_FIELDS)
        if await self.get(values["name"]) is not None:
            raise TeamExists(f"name: a team named {values['name']!r} exists already")
        team = Team(
            name=values["name"],
            created_at=time.time(),
            budget_usd=values.get("budget_usd"),
            budget_period=values.get("budget_period"),
            hard_budget_usd=values.get("hard_budget_usd"),
            budget_fallback=values.get("budget_fallback"),
        )
        await self.db.execute(
            "INSERT INTO hedge_teams (name, budget_usd, budget_period, hard_budget_usd, budget_fallback, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                team.name,
                team.budget_usd,
                team.budget_period,
                team.hard_budget_usd,
                team.budget_fallback,
                team.created_at,
            ],
        )
        self._cache.clear()
        return team

    async def get(self, name: str) -> Team | None:
        rows = await self.db.fetch("SELECT * FROM hedge_teams WHERE name = ?", [name])
        return Team.from_row(rows[0]) if rows else None

    async def list(self) -> list[Team]:
        return [Team.from_row(r) for r in await self.db.fetch("SELECT * FROM hedge_teams ORDER BY name")]

    async def update(self, name: str, fields: dict[str, Any]) -> Team | None:
        if "name" in fields:
            raise ValueError("name: a team cannot be renamed (keys name it)")
        values = validate_fields(fields, creating=False, aliases=self.aliases, allowed=TEAM_FIELDS)
        if values:
            sets = ", ".join(f"{k} = ?" for k in values)
            await self.db.execute(f"UPDATE hedge_teams SET {sets} WHERE name = ?", [*values.values(), name])
        self._cache.clear()
        return await self.get(name)

    async def find(self, name: str) -> Team | None:
        """The team called ``name``, from a cache trusted for ``cache_ttl_s``."""
        now = time.monotonic()
        cached = self._cache.get(name)
        if cached is not None and now - cached[0] < self.cache_ttl_s:
            return cached[1]
        return await self._loading.run(name, lambda: self._load(name, now))

    async def _load(self, name: str, now: float) -> Team | None:
        team = await self.get(name)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[name] = (now, team)
        return team
