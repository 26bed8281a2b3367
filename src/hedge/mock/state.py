"""State shared by every mock style: behaviour knobs, fault injection and counters.

The ``quality`` knob makes the mock play a model of known quality: a user message ending in
``Answer with: X`` is answered ``X`` for that share of such requests, and with a near miss otherwise
(:meth:`MockState.graded_answer`). Which requests are right follows a low-discrepancy sequence
started by the seed, so over any run of N such requests the share of right answers is within a
few of ``quality * N`` (a test against a bar is stable), and the same seed and order give the
same answers.

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

from hedge.mock.batches import BatchBook
from hedge.mock.behaviour import Turn, answer_marker, cut_depth, near_miss

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
    batch_polls: int = 2
    """How many retrievals a batch takes to end (0: the first retrieval sees it ended); see
    :mod:`hedge.mock.batches`."""
    batch_fail_rate: float = 0.0
    """Share of batch lines that fail with a server error (drawn when the batch is created)."""
    batch_fail_ids: list[str] = field(default_factory=list)
    """``custom_id`` of batch lines that fail with a server error, for certain."""
    batch_expire: bool = False
    """Batches end as expired, with part of their lines never run."""
    quality: float | None = None
    """Share (0..1) of ``Answer with: X`` requests answered ``X``; None: such requests are echoed."""
    thought_signatures: bool = False
    """Gemini style: sign function calls as Gemini 3 does, and refuse a replayed call without its
    signature (or with one it did not issue for that call)."""
    finish_reason: str | None = None
    """Gemini style: end every candidate with this ``finishReason`` and no content (a failed
    generation: ``MALFORMED_FUNCTION_CALL``, ``SAFETY``, ``RECITATION`` ...)."""


def check_quality(value: Any) -> None:
    """``quality`` is None or a number from 0 to 1 (a share of right answers)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"quality must be a number from 0 to 1, got {value!r}")


_GOLDEN = (5**0.5 - 1) / 2


class _QualityDraws:
    """The k-th graded request is right iff ``frac(start + k * golden ratio) < quality``: a Weyl
    sequence, whose first N terms fall below ``quality`` within a few of ``quality * N`` times
    (unlike independent draws, whose count wanders by ``sqrt(N)``)."""

    __slots__ = ("_k", "_start")

    def __init__(self, seed: int | None) -> None:
        self._start = random.Random(seed).random() if seed is not None else 0.0
        self._k = 0

    def next(self, quality: float) -> tuple[bool, int]:
        self._k += 1
        u = (self._start + self._k * _GOLDEN) % 1.0
        return u < quality, self._k


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
    graded: int = 0
    """Requests that asked for an answer with ``Answer with: X`` while ``quality`` was set."""
    graded_right: int = 0


class MockState:
    def __init__(self, style: str, knobs: Knobs, seed: int | None = None) -> None:
        self.style = style
        self.knobs = knobs
        self.stats = Stats()
        self._seed = seed
        self.rng = random.Random(seed)
        self.batches = BatchBook()
        check_quality(knobs.quality)
        self._draws = _QualityDraws(seed)

    def reset(self) -> None:
        self.stats = Stats()
        self.rng = random.Random(self._seed)
        self._draws = _QualityDraws(self._seed)
        self.batches = BatchBook()

    def batch_line_fails(self, custom_id: str) -> bool:
        """Whether a batch line is one the knobs make fail (a server error instead of its answer)."""
        if custom_id in self.knobs.batch_fail_ids:
            return True
        rate = self.knobs.batch_fail_rate
        return rate > 0 and (rate >= 1 or self.rng.random() < rate)

    def configure(self, changes: dict[str, Any]) -> None:
        for key in changes:
            if key not in Knobs.__slots__ and key != "seed":
                raise ValueError(f"unknown mock setting {key!r}")
        if "quality" in changes:
            check_quality(changes["quality"])
        for key, value in changes.items():
            if key != "seed":
                setattr(self.knobs, key, value)
        if "seed" in changes:
            self._seed = changes["seed"]
            self.rng = random.Random(changes["seed"])
        if "seed" in changes or "quality" in changes:
            self._draws = _QualityDraws(self._seed)

    def graded_answer(self, turns: list[Turn]) -> str | None:
        """With the ``quality`` knob set and the last user message asking ``Answer with: X``: ``X``
        or, for the other share of such requests, a plausible wrong answer. Else None."""
        quality = self.knobs.quality
        if quality is None:
            return None
        last_user = next((t.text for t in reversed(turns) if t.role == "user"), "")
        expected = answer_marker(last_user)
        if expected is None:
            return None
        right, draw = self._draws.next(quality)
        self.stats.graded += 1
        if right:
            self.stats.graded_right += 1
            return expected
        return near_miss(expected, draw)

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
