"""Cache-warm routing: what identifies a sticky session, and the name its pin is kept under.

Provider prompt caches are per deployment: a conversation whose turns are spread over several
deployments by an exact weighted split finds a cold cache on almost every turn. An alias with
``sticky`` keeps each session on the deployment that first served it (see
:mod:`hedge.store.affinity` for where pins live); new sessions take the strategy's next pick, so
a weighted split holds across sessions. Nothing here reads the network: it only turns a request
into a session name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from hedge.config import StickyConfig

_SYSTEM_ROLES = ("system", "developer")


def session_of(sticky: StickyConfig, body: dict[str, Any], headers: Mapping[str, str]) -> str | None:
    """The request's session identity under ``sticky.by``, or None (then it is routed as usual)."""
    by = sticky.by
    value: Any
    if by == "user":
        value = body.get("user") or body.get("safety_identifier")
        meta = body.get("metadata")
        if not value and isinstance(meta, dict):
            value = meta.get("user_id")
    elif by == "prompt_cache_key":
        value = body.get("prompt_cache_key")
    elif by == "prefix":
        return _prefix(body)
    else:
        value = headers.get(by.removeprefix("header:"))
    if isinstance(value, str) and value:
        return value
    return None


def _prefix(body: dict[str, Any]) -> str | None:
    """The part of the prompt every turn of one conversation repeats: system and developer
    messages, the tools, and the first user message (later turns only append)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    kept: list[Any] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        kept.append([message.get("role"), message.get("content")])
        if message.get("role") not in _SYSTEM_ROLES:
            break
    if not kept:
        return None
    return orjson.dumps([kept, body.get("tools")], option=orjson.OPT_SORT_KEYS).decode()


def pin_name(alias: str, session: str) -> str:
    """Where the session's pin is kept: hashed, so no user id or prompt text reaches the store."""
    digest = hashlib.sha256(f"{alias}\x00{session}".encode()).hexdigest()[:32]
    return f"{alias}:{digest}"
