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

# Each pattern with the lowercase words one of which a match must contain: Python's ``re`` has no
# literal prefix to skip ahead with for a case-insensitive alternation behind ``\b``, so the first
# pattern alone scanned a 140-character access line in 14 µs. Checking the words first (a few
# substring searches of the lowered text) makes a line without any of them cost about 1 µs, and
# the patterns still decide every line that has one. Only for ASCII text: there ``str.lower`` and
# ``re.IGNORECASE`` agree exactly; other text (where ``re`` also folds e.g. the Kelvin sign to
# ``k``) always takes every pattern.
_PATTERNS: list[tuple[tuple[str, ...], re.Pattern[str], str]] = [
    # key=..., api_key: ..., x-api-key: ..., Authorization: Bearer ... in URLs, headers and messages
    (
        (
            *("apikey", "api_key", "api-key", "accesstoken", "access_token", "access-token"),
            *("secret", "password", "authorization", "?key=", "&key="),
        ),
        re.compile(
            r"(?i)(\b(?:api[_-]?key|x-api-key|x-goog-api-key|access[_-]?token|secret|password|authorization)"
            r"[\"']?\s*[=:]\s*[\"']?|[?&]key=)(?:(?:bearer|basic)\s+)?[^\s\"'&,;]+"
        ),
        r"\1" + MASK,
    ),
    # Bearer <token> anywhere else
    (("bearer",), re.compile(r"(?i)\b(bearer)\s+(?!\*\*\*)[^\s\"',;]+"), r"\1 " + MASK),
    # OpenAI / Anthropic style keys: sk-..., sk-proj-..., sk-ant-...
    (("sk-",), re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"), "sk-" + MASK),
    # Google API keys
    (("aiza",), re.compile(r"\bAIza[0-9A-Za-z_\-]{20,}"), "AIza" + MASK),
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
    if not text.isascii():
        return redact_slowly(text)
    if _secret_re is not None:
        text = _secret_re.sub(MASK, text)
    lowered = text.lower()
    for words, pattern, replacement in _PATTERNS:
        for word in words:
            if word in lowered:
                text = pattern.sub(replacement, text)
                lowered = text.lower()
                break
    return text


def redact_slowly(text: str) -> str:
    """:func:`redact` without the word checks: every pattern on every text (what the tests compare with)."""
    if _secret_re is not None:
        text = _secret_re.sub(MASK, text)
    for _, pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
