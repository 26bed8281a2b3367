"""Masking credentials in any text that leaves the gateway: log lines, client errors, stored errors.

A leaf module (it imports nothing of Hedge's) because everything that builds a
message from upstream text needs it: an upstream that echoes the gateway's
``Authorization`` or ``x-api-key`` in its error body must not hand the provider key
to a client, the ledger or a log. Two layers: the secrets the config holds
(registered at start-up, masked exactly wherever they appear) and patterns for
anything shaped like a credential (bearer tokens, ``sk-...``, ``AIza...``,
``api_key=...``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # key=..., api_key: ..., x-api-key: ..., Authorization: Bearer ... in URLs, headers and messages
    (
        re.compile(
            r"(?i)(\b(?:api[_-]?key|x-api-key|x-goog-api-key|access[_-]?token|secret|password|authorization)"
            r"[\"']?\s*[=:]\s*[\"']?|[?&]key=)(?:(?:bearer|basic)\s+)?[^\s\"'&,;]+"
        ),
        r"\1" + MASK,
    ),
    # Bearer <token> anywhere else
    (re.compile(r"(?i)\b(bearer)\s+(?!\*\*\*)[^\s\"',;]+"), r"\1 " + MASK),
    # OpenAI / Anthropic style keys: sk-..., sk-proj-..., sk-ant-...
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"), "sk-" + MASK),
    # Google API keys
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{20,}"), "AIza" + MASK),
]

_secrets: set[str] = set()
_secret_re: re.Pattern[str] | None = None

_SECRET_HEADER = re.compile(r"(?i)auth|key|token|secret|cookie")


def register_secrets(secrets: Iterable[str | None]) -> None:
    """Strings to mask wherever they appear in a log line (the master key, provider keys ...)."""
    global _secret_re
    new = {s for s in secrets if s and len(s) >= 4}
    if new <= _secrets:
        return
    _secrets.update(new)
    # Longest first, so a secret that contains another is masked whole.
    alternatives = "|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True))
    _secret_re = re.compile(alternatives)


def config_secrets(config: Any) -> list[str]:
    """The secrets a gateway config holds: the master key, provider keys and auth-like header values."""
    found: list[str] = [config.server.master_key]
    for provider in config.providers.values():
        if provider.api_key:
            found.append(provider.api_key)
        found.extend(v for k, v in provider.headers.items() if _SECRET_HEADER.search(k))
    return found


def redact(text: str) -> str:
    """Mask anything in ``text`` that looks like a credential or is a registered secret."""
    if _secret_re is not None:
        text = _secret_re.sub(MASK, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
