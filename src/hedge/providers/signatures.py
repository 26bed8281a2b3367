"""Where Gemini's thought signatures wait between the turns of a conversation.

Gemini 3 signs each function call it makes (``thoughtSignature``, an opaque base64 blob of 100
to several thousand characters) and refuses the next turn if a call comes back without it. The
signature must not ride in the tool call id: every other provider validates ids (Anthropic
``^[a-zA-Z0-9_-]+$``, OpenAI at most 40 characters), so a conversation begun on Gemini could not
move to them. It travels two ways instead:

* in the tool call itself, as ``extra_content.google.thought_signature`` (the field Google's own
  OpenAI-compatible endpoint uses); the openai SDK keeps unknown fields of a message it sends
  back, so a client that appends the assistant message as it came round-trips it untouched;
* in this process-wide memory, keyed by the (short, deterministic) tool call id, for clients
  that rebuild the message and drop fields they do not know (LangChain, the Anthropic SDK on
  ``/v1/messages``, the Responses API face).

With several replicas behind a load balancer, the next turn may reach a replica that did not see
the answer: with ``state.redis_url`` set, :class:`hedge.store.signatures.SharedSignatures` publishes
what this memory learns (:meth:`Signatures.fresh`) and fills it, before a request is routed, with
what the other replicas issued.

The memory is bounded (entries and characters) and forgets after :data:`TTL_S`; a call whose
signature is in neither place gets Google's documented "skip validation" sentinel, so a
conversation degrades (the model loses its earlier reasoning) but never fails. Only the Gemini
adapter reads or writes here; every other adapter drops ``extra_content`` from what it sends.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

TTL_S = 6 * 3600.0
"""How long a signature is kept after it was issued: longer than a tool loop plausibly pauses."""
MAX_ENTRIES = 50_000
MAX_CHARS = 64 * 1024 * 1024
"""The most signature text kept (the oldest entries go first): a bound on memory, not a policy."""


class Signatures:
    """Tool call id -> thought signature, least recently issued forgotten first."""

    __slots__ = ("_chars", "_entries", "_fresh", "max_chars", "max_entries", "on_fresh", "ttl_s")

    def __init__(
        self, ttl_s: float = TTL_S, max_entries: int = MAX_ENTRIES, max_chars: int = MAX_CHARS
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._chars = 0
        self._fresh: list[tuple[str, str]] | None = None
        self.on_fresh: Callable[[], None] | None = None
        """Called when an answer's signature is learnt and someone publishes them (:meth:`publish`)."""

    def publish(self, on_fresh: Callable[[], None] | None) -> None:
        """From now on keep what answers issue for :meth:`fresh` and call ``on_fresh`` on each
        (``None``: stop keeping them)."""
        self._fresh = None if on_fresh is None else []
        self.on_fresh = on_fresh

    def fresh(self) -> list[tuple[str, str]]:
        """The ``(call id, signature)`` pairs issued since the last call (none unless published)."""
        if self._fresh is None:
            return []
        out, self._fresh = self._fresh, []
        return out

    def issued(self, call_id: str, signature: str) -> None:
        """A signature an upstream answer just issued: remembered, and published if someone does."""
        self.remember(call_id, signature)
        if self._fresh is not None:
            if len(self._fresh) >= self.max_entries:
                del self._fresh[0]  # no one is draining: keep the newest
            self._fresh.append((call_id, signature))
            if self.on_fresh is not None:
                self.on_fresh()

    def remember(self, call_id: str, signature: str, now: float | None = None) -> None:
        if not call_id or not signature or len(signature) > self.max_chars:
            return
        now = time.monotonic() if now is None else now
        old = self._entries.pop(call_id, None)
        if old is not None:
            self._chars -= len(old[1])
        self._entries[call_id] = (now + self.ttl_s, signature)
        self._chars += len(signature)
        while self._entries and (
            len(self._entries) > self.max_entries
            or self._chars > self.max_chars
            or next(iter(self._entries.values()))[0] <= now
        ):
            self._forget_oldest()

    def recall(self, call_id: str, now: float | None = None) -> str | None:
        entry = self._entries.get(call_id)
        if entry is None:
            return None
        now = time.monotonic() if now is None else now
        if entry[0] <= now:
            del self._entries[call_id]
            self._chars -= len(entry[1])
            return None
        return entry[1]

    def __len__(self) -> int:
        return len(self._entries)

    def _forget_oldest(self) -> None:
        _, (_, signature) = self._entries.popitem(last=False)
        self._chars -= len(signature)


SIGNATURES = Signatures()
"""The process's memory, shared by every Gemini deployment (a failover between two Gemini
providers must find the signature the other one issued)."""


THINKING = Signatures()
"""Claude's thinking blocks (a JSON list of ``reasoning_details`` entries) keyed by the first tool
call id of the turn that made them: Claude with extended thinking refuses a tool result whose turn
comes back without its thinking block, and clients that rebuild the assistant message drop the
``reasoning_details`` that carry them (see :mod:`hedge.providers.anthropic`). Shared between
replicas through Redis like Gemini's signatures (:mod:`hedge.store.signatures`)."""
