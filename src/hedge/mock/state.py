"""State shared by every mock style: behaviour knobs, fault injection and counters.

Knobs can be changed at run time with ``POST /_mock/config`` so a test can make
a running upstream slow, flaky or down without restarting it; ``GET
/_mock/stats`` shows what the mock received (including the last request body
and headers, so tests can check what the gateway really sent).

A body larger than the ``max_body_bytes`` knob (32 MiB, Anthropic's documented
limit) is refused as soon as that is known, before it is read whole: each style
answers it with its API's own "too large" error.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import orjson
from starlette.requests import Request

from hedge.mock.behaviour import cut_depth

FailMode = Literal["status", "disconnect", "early-disconnect", "hang"]


@dataclass(slots=True)
class Knobs:
    latency_ms: float = 0.0
    fail_rate: float = 0.0
    fail_first: int = 0
    """Fail the next N requests for certain, then follow ``fail_rate`` (deterministic tests)."""
    fail_status: int = 500
    fail_mode: FailMode = "status"
    retry_after: float | str = 1.0
    """Seconds sent as Retry-After with a 429; a string is sent verbatim ("inf", an HTTP date, garbage)."""
    api_key: str | None = None
    quirks: list[str] = field(default_factory=list)
    max_body_bytes: int = 32 * 1024 * 1024
    """Bodies above this are refused unread (:class:`BodyTooLarge`)."""
    thought_signatures: bool = False
    """Gemini style: sign function calls as Gemini 3 does, and refuse a replayed call without its
    signature (or with one it did not issue for that call)."""
    finish_reason: str | None = None
    """Gemini style: end every candidate with this ``finishReason`` and no content (a failed
    generation: ``MALFORMED_FUNCTION_CALL``, ``SAFETY``, ``RECITATION`` ...)."""


class BodyTooLarge(Exception):
    """The request body exceeds ``Knobs.max_body_bytes``; each style renders its own error."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over {limit} bytes")
        self.limit = limit


@dataclass(slots=True)
class Stats:
    requests: int = 0
    failures_injected: int = 0
    streams_started: int = 0
    streams_completed: int = 0
    streams_cancelled: int = 0
    by_path: dict[str, int] = field(default_factory=dict)
    request_times: list[float] = field(default_factory=list)
    """Wall-clock arrival times of the last 100 requests."""
    last_body: Any = None
    last_headers: dict[str, str] = field(default_factory=dict)


class MockState:
    def __init__(self, style: str, knobs: Knobs, seed: int | None = None) -> None:
        self.style = style
        self.knobs = knobs
        self.stats = Stats()
        self._seed = seed
        self.rng = random.Random(seed)

    def reset(self) -> None:
        self.stats = Stats()
        self.rng = random.Random(self._seed)

    def configure(self, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if key not in Knobs.__slots__:
                raise ValueError(f"unknown mock setting {key!r}")
            setattr(self.knobs, key, value)
        if "seed" in changes:
            self.rng = random.Random(changes["seed"])

    def note(self, request: Request, body: Any) -> None:
        s = self.stats
        s.requests += 1
        s.by_path[request.url.path] = s.by_path.get(request.url.path, 0) + 1
        s.last_body = body
        s.request_times.append(time.time())
        del s.request_times[:-100]
        s.last_headers = dict(request.headers)

    def should_fail(self) -> bool:
        if self.knobs.fail_first > 0:
            self.knobs.fail_first -= 1
            self.stats.failures_injected += 1
            return True
        rate = self.knobs.fail_rate
        if rate > 0 and (rate >= 1 or self.rng.random() < rate):
            self.stats.failures_injected += 1
            return True
        return False

    async def read(self, request: Request) -> Any:
        """The request's JSON body (None if it is not JSON), noted in the stats.

        Raises :class:`BodyTooLarge` (the request still noted) past ``max_body_bytes``.
        """
        limit = self.knobs.max_body_bytes
        declared = request.headers.get("content-length", "")
        too_large = declared.isdigit() and int(declared) > limit
        chunks: list[bytes] = []
        size = 0
        if not too_large:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    too_large = True
                    break
                chunks.append(chunk)
        if too_large:
            self.note(request, None)
            raise BodyTooLarge(limit)
        raw = b"".join(chunks)
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        self.note(request, body)
        return body

    async def fault(self, body: dict[str, Any], stream: bool) -> int | None:
        """Inject the configured failure, if this request draws one: the error status to answer, if any.

        ``hang`` never answers; a stream under ``disconnect`` modes is marked to be cut
        by the style's stream writer instead of failing with a status.
        """
        if not self.should_fail():
            return None
        if self.knobs.fail_mode == "hang":
            await asyncio.sleep(3600)
        if self.knobs.fail_mode == "status" or not stream:
            return self.knobs.fail_status
        body["_mock_disconnect"] = True
        return None

    def quirk(self, name: str) -> bool:
        return name in self.knobs.quirks

    async def delay(self, fraction: float = 1.0) -> None:
        ms = self.knobs.latency_ms * fraction
        if ms > 0:
            await asyncio.sleep(ms / 1000.0)

    def snapshot(self) -> dict[str, Any]:
        # Not asdict(stats): it would deep-copy last_body, recursively (a deeply nested body overflows).
        stats = {f.name: getattr(self.stats, f.name) for f in fields(self.stats)}
        return {"style": self.style, "knobs": asdict(self.knobs), "stats": stats}

    def snapshot_json(self) -> bytes:
        """:meth:`snapshot` as JSON; a last body nested past what orjson writes is shown cut."""
        data = self.snapshot()
        try:
            return orjson.dumps(data)
        except orjson.JSONEncodeError:
            data["stats"]["last_body"] = cut_depth(data["stats"]["last_body"])
            return orjson.dumps(data)
