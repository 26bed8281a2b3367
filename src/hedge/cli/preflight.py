"""Before serving: can the gateway reach what its config names? One line per problem, no traceback.

``hedge serve`` runs the state checks first, so an unreachable PostgreSQL, an unreachable Redis or
an unwritable ``state.dir`` is a one-line error naming the setting, not a 40-line traceback from
inside the server's start-up. ``hedge serve --check`` also tries each provider's address, prints
what it found, and exits (0: all reachable).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from hedge.config import Config
from hedge.cost import catalogue
from hedge.gateway.runtime import database_url
from hedge.store.db import connect
from hedge.store.redis import connect_redis

PROBE_TIMEOUT_S = 5.0


def price_problems(config: Config) -> list[str]:
    """With ``pricing.on_missing: reject``, the deployments that have no price (one line naming them)."""
    if config.pricing.on_missing != "reject":
        return []
    unpriced = catalogue.unpriced(config, catalogue.load(config.state.dir))
    return [catalogue.missing_prices(unpriced, "reject")] if unpriced else []


def shown(url: str) -> str:
    """A URL fit for a terminal: any password (and query string, which may hold one) left out."""
    parts = urlsplit(url)
    if parts.password is None and not parts.query:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, "", ""))


def why(exc: BaseException) -> str:
    """The short reason: the OS error's text, or the exception's first line."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {PROBE_TIMEOUT_S:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


async def state_problems(config: Config) -> list[str]:
    """What keeps the state stores from working, one line each, naming the setting to fix."""
    state = config.state
    problems = _directory_problems(Path(state.dir))
    url = database_url(config)
    if state.database_url or not problems:  # the default SQLite file lives in state.dir
        setting = "state.database_url" if state.database_url else "state.dir"
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                db = await connect(url, state.db_timeout_s)
                try:
                    await db.fetch("SELECT 1")  # a pool may connect lazily: ask it something
                finally:
                    await db.close()
        except Exception as exc:
            problems.append(f"{setting}: cannot open the database {shown(url)}: {why(exc)}")
    if state.redis_url:
        redis = connect_redis(state.redis_url, timeout_s=PROBE_TIMEOUT_S)
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await redis.ping()
        except Exception as exc:
            problems.append(f"state.redis_url: cannot reach Redis at {shown(state.redis_url)}: {why(exc)}")
        finally:
            await redis.aclose()
    return problems


def _directory_problems(directory: Path) -> list[str]:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".hedge-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return [f"state.dir: cannot write to {directory}: {why(exc)}"]
    return []


async def provider_problems(config: Config) -> list[str]:
    """Providers whose address does not accept a TCP connection (nothing is sent to them)."""

    async def probe(name: str, base_url: str) -> str | None:
        parts = urlsplit(base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                _, writer = await asyncio.open_connection(parts.hostname, port)
            writer.close()
            await writer.wait_closed()
        except Exception as exc:
            return f"providers.{name}.base_url: cannot connect to {parts.hostname}:{port}: {why(exc)}"
        return None

    found = await asyncio.gather(*(probe(n, p.base_url) for n, p in config.providers.items()))
    return [problem for problem in found if problem is not None]
