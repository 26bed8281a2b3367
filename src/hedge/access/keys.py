"""Virtual keys: stored hashed, shown once, looked up by hash with a short cache.

Keys are 192-bit random secrets, so a fast SHA-256 is the right hash (no
password stretching needed); the stored hash is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import orjson

from hedge.access.coalesce import Coalescer
from hedge.store.db import Database

Period = Literal["day", "week", "month", "total"]
PERIODS: tuple[str, ...] = ("day", "week", "month", "total")
SECRET_PREFIX = "sk-hedge-"
_FIELDS = (
    "name",
    "team",
    "models",
    "budget_usd",
    "budget_period",
    "hard_budget_usd",
    "budget_fallback",
    "rpm",
    "tpm",
    "expires_at",
)
MAX_LIMIT = 2**31 - 1
"""Largest rpm/tpm: the columns are 32-bit INTEGERs."""
MAX_TEXT = 200


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(slots=True)
class VirtualKey:
    id: str
    name: str
    key_prefix: str
    created_at: float
    team: str | None = None
    models: list[str] | None = None
    budget_usd: float | None = None
    budget_period: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    expires_at: float | None = None
    revoked_at: float | None = None
    key_hash: str = ""
    hard_budget_usd: float | None = None
    """Past this the key is refused (429), fallback or not."""
    budget_fallback: str | None = None
    """The alias that serves the key's requests once it is past ``budget_usd`` (until the hard limit)."""

    def public(self) -> dict[str, Any]:
        """What the admin API shows: everything but the hash."""
        data = asdict(self)
        data.pop("key_hash")
        return data

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> VirtualKey:
        models = orjson.loads(row["models"]) if row.get("models") else None
        return cls(
            id=row["id"],
            name=row["name"],
            key_prefix=row["key_prefix"],
            created_at=row["created_at"],
            team=row.get("team"),
            models=models,
            budget_usd=row.get("budget_usd"),
            budget_period=row.get("budget_period"),
            rpm=row.get("rpm"),
            tpm=row.get("tpm"),
            expires_at=row.get("expires_at"),
            revoked_at=row.get("revoked_at"),
            key_hash=row["key_hash"],
            hard_budget_usd=row.get("hard_budget_usd"),
            budget_fallback=row.get("budget_fallback"),
        )


def validate_fields(
    fields: dict[str, Any],
    creating: bool,
    aliases: Collection[str] | None = None,
    allowed: Sequence[str] = _FIELDS,
) -> dict[str, Any]:
    """Check a create/update payload; raise ValueError naming the field. With ``aliases`` (the
    configured models), a ``budget_fallback`` must be one of them."""
    unknown = set(fields) - set(allowed)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    if creating and not fields.get("name"):
        raise ValueError("name: required")
    for key, value in fields.items():
        if value is None:
            if key == "name":
                raise ValueError("name: must be a non-empty string")
            out[key] = None
            continue
        if key in ("name", "team", "budget_fallback") and not (isinstance(value, str) and value.strip()):
            raise ValueError(f"{key}: must be a non-empty string")
        if key in ("name", "team", "budget_fallback"):
            _storable(key, value)
        if key == "budget_fallback" and aliases is not None and value not in aliases:
            raise ValueError(
                f"budget_fallback: unknown model alias {value!r} (known: {', '.join(sorted(aliases))})"
            )
        if key == "models":
            if isinstance(value, str):
                value = [m.strip() for m in value.split(",") if m.strip()]
            if not (isinstance(value, list) and all(isinstance(m, str) and m for m in value)):
                raise ValueError("models: must be a list of model aliases")
            for model in value:
                _storable(key, model)
        if key in ("budget_usd", "hard_budget_usd") and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf
        ):
            raise ValueError(f"{key}: must be a number >= 0")
        if key == "budget_period" and value not in PERIODS:
            raise ValueError(f"budget_period: must be one of {', '.join(PERIODS)}")
        if key in ("rpm", "tpm") and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT
        ):
            raise ValueError(f"{key}: must be an integer from 1 to {MAX_LIMIT}")
        if key == "expires_at":
            value = parse_expiry(value)
        out[key] = value
    budgeted = out.get("budget_usd") is not None or out.get("hard_budget_usd") is not None
    if creating and budgeted and not out.get("budget_period"):
        out["budget_period"] = "total"
    return out


def _storable(field: str, text: str) -> None:
    """Refuse text the database cannot store (PostgreSQL rejects U+0000) with a 400 naming the field."""
    if "\x00" in text:
        raise ValueError(f"{field}: must not contain NUL (U+0000) characters")
    if len(text) > MAX_TEXT:
        raise ValueError(f"{field}: must be at most {MAX_TEXT} characters")


def parse_expiry(value: Any) -> float:
    """Epoch seconds, an ISO-8601 date/time, or a duration from now like ``30d``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        units = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
        if text[:-1].replace(".", "", 1).isdigit() and text[-1:] in units:
            return time.time() + float(text[:-1]) * units[text[-1]]
        from datetime import UTC, datetime

        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    raise ValueError("expires_at: expected epoch seconds, an ISO date/time or a duration like 30d")


class KeyStore:
    def __init__(
        self, db: Database, cache_ttl_s: float = 2.0, aliases: Collection[str] | None = None
    ) -> None:
        self.db = db
        self.aliases = aliases
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, VirtualKey | None]] = {}
        self._loading: Coalescer[VirtualKey | None] = Coalescer()

    async def create(self, fields: dict[str, Any]) -> tuple[VirtualKey, str]:
        values = validate_fields(fields, creating=True, aliases=self.aliases)
        secret = SECRET_PREFIX + secrets.token_urlsafe(24)
        key = VirtualKey(
            id="key_" + secrets.token_hex(8),
            name=values["name"],
            key_prefix=secret[:13] + "...",
            created_at=time.time(),
            team=values.get("team"),
            models=values.get("models"),
            budget_usd=values.get("budget_usd"),
            budget_period=values.get("budget_period"),
            rpm=values.get("rpm"),
            tpm=values.get("tpm"),
            expires_at=values.get("expires_at"),
            key_hash=hash_secret(secret),
            hard_budget_usd=values.get("hard_budget_usd"),
            budget_fallback=values.get("budget_fallback"),
        )
        await self.db.execute(
            "INSERT INTO hedge_keys (id, name, team, key_hash, key_prefix, models, budget_usd, "
            "budget_period, rpm, tpm, expires_at, created_at, hard_budget_usd, budget_fallback) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                key.id,
                key.name,
                key.team,
                key.key_hash,
                key.key_prefix,
                orjson.dumps(key.models).decode() if key.models else None,
                key.budget_usd,
                key.budget_period,
                key.rpm,
                key.tpm,
                key.expires_at,
                key.created_at,
                key.hard_budget_usd,
                key.budget_fallback,
            ],
        )
        return key, secret

    async def get(self, key_id: str) -> VirtualKey | None:
        rows = await self.db.fetch("SELECT * FROM hedge_keys WHERE id = ?", [key_id])
        return VirtualKey.from_row(rows[0]) if rows else None

    async def list(self) -> list[VirtualKey]:
        return [
            VirtualKey.from_row(r)
            for r in await self.db.fetch("SELECT * FROM hedge_keys ORDER BY created_at")
        ]

    async def update(self, key_id: str, fields: dict[str, Any]) -> VirtualKey | None:
        values = validate_fields(fields, creating=False, aliases=self.aliases)
        if values:
            if "models" in values and values["models"] is not None:
                values["models"] = orjson.dumps(values["models"]).decode()
            sets = ", ".join(f"{k} = ?" for k in values)
            await self.db.execute(f"UPDATE hedge_keys SET {sets} WHERE id = ?", [*values.values(), key_id])
        self._cache.clear()
        return await self.get(key_id)

    async def revoke(self, key_id: str) -> VirtualKey | None:
        await self.db.execute(
            "UPDATE hedge_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", [time.time(), key_id]
        )
        self._cache.clear()
        return await self.get(key_id)

    async def _load(self, digest: str, now: float) -> VirtualKey | None:
        rows = await self.db.fetch("SELECT * FROM hedge_keys WHERE key_hash = ?", [digest])
        key = VirtualKey.from_row(rows[0]) if rows else None
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[digest] = (now, key)
        return key

    async def find(self, secret: str) -> VirtualKey | None:
        """The key whose secret this is, from a cache trusted for ``cache_ttl_s``."""
        digest = hash_secret(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self.cache_ttl_s:
            key = cached[1]
        else:
            # A burst of one key's requests shares one lookup instead of queueing for the pool.
            key = await self._loading.run(digest, lambda: self._load(digest, now))
        if key is None or not hmac.compare_digest(key.key_hash, digest):
            return None
        return key
