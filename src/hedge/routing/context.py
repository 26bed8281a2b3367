"""What routing may look at in a request: tags, prompt size, time, streaming."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class RouteContext:
    """Everything is computed on first use: most requests need none of it."""

    body: dict[str, Any]
    clock: Callable[[], datetime] = _utc_now
    header_tags: tuple[str, ...] = ()
    _now: datetime | None = None
    _tags: frozenset[str] | None = None
    _prompt_tokens: int | None = None

    @property
    def now(self) -> datetime:
        """The routing time, read once per request so every decision sees the same instant."""
        if self._now is None:
            self._now = self.clock()
        return self._now

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def tags(self) -> frozenset[str]:
        """Tags from the ``x-hedge-tags`` header and ``metadata.tags`` in the body."""
        if self._tags is None:
            tags = set(self.header_tags)
            meta = self.body.get("metadata")
            body_tags = meta.get("tags") if isinstance(meta, dict) else None
            if isinstance(body_tags, list):
                tags.update(str(t) for t in body_tags)
            elif isinstance(body_tags, str):
                tags.update(t.strip() for t in body_tags.split(",") if t.strip())
            self._tags = frozenset(tags)
        return self._tags

    @property
    def prompt_tokens(self) -> int:
        """A cheap estimate (about four characters a token), computed only if a rule or strategy asks."""
        if self._prompt_tokens is None:
            chars = 0
            messages = self.body.get("messages") or ()
            for m in messages:
                content = m.get("content") if isinstance(m, dict) else None
                if isinstance(content, str):
                    chars += len(content)
                elif isinstance(content, list):
                    chars += sum(
                        len(p["text"])
                        for p in content
                        if isinstance(p, dict) and isinstance(p.get("text"), str)
                    )
            inp = self.body.get("input")
            if isinstance(inp, str):
                chars += len(inp)
            self._prompt_tokens = chars // 4 + 4 * len(messages)
        return self._prompt_tokens

    @property
    def max_tokens(self) -> int | None:
        value = self.body.get("max_completion_tokens") or self.body.get("max_tokens")
        return value if isinstance(value, int) else None
