"""Shadow traffic: after a primary answer has reached its client, a sampled copy of the request
goes to a candidate through the same pipeline, and the pair is graded and kept.

A face decides, when the primary answer is ready, which shadows the request gets
(:meth:`Shadows.sample`), and hands them to :meth:`Shadows.start` only once the response (or
the stream) is complete, so a shadow is never on the primary's path. Each copy runs as its
own task, bounded in number (past ``max_in_flight`` a copy is dropped, not queued); it is an
:class:`~hedge.gateway.pipeline.Exchange` marked ``shadow`` and tagged ``shadow``, served with
the master key's rights, so the ledger books it as shadow spend and no key's budget pays for it.
A day's shadow spend per alias and target stops at ``max_usd_per_day`` (read from the shared
pairs table, so replicas share it; copies already running when the cap is reached may pass it
by what they cost, and other replicas' spend is seen within ``SPEND_REFRESH_S`` plus a flush).
Pairs are written in batches, like the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from hedge.config import Config, ShadowConfig
from hedge.errors import HedgeError
from hedge.experiments.grading import check_spec, grade_pair
from hedge.gateway.pipeline import Completion, Exchange
from hedge.gateway.runtime import Runtime
from hedge.gateway.stream import Stream
from hedge.record import RequestRecord, new_request_id
from hedge.store.experiments import ExperimentStore, PairLog
from hedge.wire.sse import chunks

log = logging.getLogger("hedge.shadow")
DAY = 86400
SPEND_REFRESH_S = 10.0
"""How long a replica trusts its running total of a target's daily shadow spend before re-reading
the shared one (its own copies are added as they end)."""


def answer_text(message: Any) -> str:
    """What is graded of a chat answer: its text, or its tool calls as JSON when it has no text."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str) and content:
        return content
    calls = message.get("tool_calls")
    if calls:
        return orjson.dumps(calls, option=orjson.OPT_SORT_KEYS).decode()
    return content if isinstance(content, str) else ""


def completion_text(body: bytes) -> str:
    try:
        data = orjson.loads(body)
        return answer_text(data["choices"][0]["message"])
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return ""


class StreamText:
    """The text of a streamed chat answer, gathered from its OpenAI events as they pass (first choice)."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def feed(self, events: Iterable[bytes]) -> None:
        for chunk in chunks(events):
            choices = chunk.get("choices") if isinstance(chunk, dict) else None
            if not choices or not isinstance(choices[0], dict):
                continue
            delta = choices[0].get("delta") or {}
            text = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(text, str):
                self._parts.append(text)

    @property
    def text(self) -> str:
        return "".join(self._parts)


def config_problems(config: Config) -> list[str]:
    """Shadow settings the gateway cannot honour (a grader it does not have)."""
    return [
        f"models.{alias}.shadow[{i}].grader: {problem}"
        for alias, model in config.models.items()
        for i, shadow in enumerate(model.shadow)
        if (problem := check_spec(shadow.grader)) is not None
    ]


@dataclass(slots=True)
class Primary:
    """What a shadow copy needs of the request it copies, taken when the primary was answered."""

    record: RequestRecord
    body: dict[str, Any]
    alias: str


class Shadows:
    def __init__(
        self,
        runtime: Runtime,
        store: ExperimentStore,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        max_in_flight: int = 16,
    ) -> None:
        self.runtime = runtime
        self.store = store
        state = runtime.config.state
        self.pairs = PairLog(
            runtime.db,
            state.flush_interval_s,
            state_dir=state.dir,
            shutdown_timeout_s=state.shutdown_timeout_s,
        )
        self._spent: dict[tuple[str, str], tuple[float, float, float]] = {}
        """(alias, target) -> (day start, spend that day, when it was read from the database)."""
        self._clock = clock
        self._rng = rng
        self.max_in_flight = max_in_flight
        self._tasks: set[asyncio.Task[None]] = set()
        self._owner = {
            f"{d.provider}/{d.model}": alias
            for alias, model in reversed(list(runtime.config.models.items()))
            for d in model.deployments
        }
        """A deployment id -> the (first) alias that declares it: how a shadow reaches one deployment."""
        self.dropped = 0
        """Copies not sent because ``max_in_flight`` were already running."""
        self.capped = 0
        """Copies not sent because their target's daily cap was reached."""
        self.sent = 0
        """Copies sent (whatever came of them)."""

    def sample(self, exchange: Exchange, result: Completion | Stream) -> list[ShadowConfig]:
        """The shadows this request gets (sampled now, sent after the response): none for a shadow,
        a failure, embeddings, or an answer in another API than chat, and none to the alias or
        deployment that served it (an experiment arm may already be the candidate)."""
        rec, body = exchange.record, exchange.body
        if rec.shadow or body is None or exchange.kind != "chat" or rec.status >= 400 or result.native:
            return []
        model = self.runtime.config.models.get(str(body.get("model")))
        if model is None or not model.shadow:
            return []
        served = (rec.alias, rec.deployment)
        return [s for s in model.shadow if s.to not in served and s.sample > 0 and self._rng() < s.sample]

    def start(self, exchange: Exchange, shadows: list[ShadowConfig], primary_text: str) -> None:
        """Send the copies (the primary's response is complete). Never raises; never waits."""
        rec, body = exchange.record, exchange.body
        if body is None or rec.status >= 400:
            return
        primary = Primary(rec, body, str(body.get("model")))
        for shadow in shadows:
            if len(self._tasks) >= self.max_in_flight:
                self.dropped += 1
                continue
            task = asyncio.ensure_future(self._run(primary, shadow, primary_text))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def counts(self) -> dict[str, int]:
        """This replica's copies: running now, and since start sent, dropped and stopped by a cap."""
        return {
            "running": len(self._tasks),
            "sent": self.sent,
            "dropped": self.dropped,
            "capped": self.capped,
        }

    def open(self) -> None:
        """Start writing pairs (once the database is connected)."""
        self.pairs.start()

    async def flush(self) -> None:
        """Write the pairs that wait, so a report sees them."""
        await self.pairs.flush()

    async def close(self, timeout_s: float) -> None:
        """Let running copies finish for up to ``timeout_s``, cancel the rest, write their pairs."""
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.pairs.close()

    async def _spent_today(self, alias: str, target: str, now: float) -> float:
        day = now - now % DAY
        cached = self._spent.get((alias, target))
        if cached is not None and cached[0] == day and now - cached[2] < SPEND_REFRESH_S:
            return cached[1]
        await self.pairs.flush()  # this replica's own pairs count too
        spent = await self.store.shadow_spent(alias, target, day)
        self._spent[(alias, target)] = (day, spent, now)
        return spent

    def _booked(self, alias: str, target: str, now: float, cost: float) -> None:
        day = now - now % DAY
        cached = self._spent.get((alias, target))
        if cached is not None and cached[0] == day:
            self._spent[(alias, target)] = (day, cached[1] + cost, cached[2])

    def _body(self, primary: Primary, shadow: ShadowConfig) -> dict[str, Any]:
        # Not streamed; and the client's routing preferences named the primary's deployments, not these.
        body = {k: v for k, v in primary.body.items() if k not in ("stream", "stream_options", "hedge")}
        if shadow.to in self.runtime.config.models:
            body["model"] = shadow.to
        else:  # one deployment: its alias, held to it
            body["model"] = self._owner[shadow.to]
            body["hedge"] = {"only": [shadow.to], "allow_fallbacks": False}
        return body

    async def _run(self, primary: Primary, shadow: ShadowConfig, primary_text: str) -> None:
        try:
            now = self._clock()
            if await self._spent_today(primary.alias, shadow.to, now) >= shadow.max_usd_per_day:
                self.capped += 1
                return
            self.sent += 1
            await self._pair(primary, shadow, primary_text, now)
        except asyncio.CancelledError:
            raise
        except Exception:  # a shadow must never disturb the gateway
            log.exception("shadow copy of %s to %s failed", primary.record.request_id, shadow.to)

    async def _pair(self, primary: Primary, shadow: ShadowConfig, primary_text: str, now: float) -> None:
        exchange = Exchange(self.runtime, "chat", new_request_id(), {}, shadow=True)
        text, error = "", None
        try:
            answer = await exchange.serve(self._body(primary, shadow), None, ("shadow",))
        except HedgeError as exc:
            error = f"candidate failed: {exc.message}"
        else:
            if isinstance(answer, Completion):
                text = completion_text(answer.body)
            else:  # never: shadow bodies do not stream
                await answer.close()
                error = "candidate answered with a stream"
        rec = exchange.record
        if error is None:
            grade = await grade_pair(shadow.grader, primary_text, text)
            score, error = grade.score, grade.error
        else:
            score = None
        self._booked(primary.alias, shadow.to, now, rec.cost_usd)
        self.pairs.add(
            {
                "shadow_request_id": rec.request_id,
                "primary_request_id": primary.record.request_id,
                "ts": now,
                "alias": primary.alias,
                "target": shadow.to,
                "grader": shadow.grader,
                "status": rec.status,
                "score": score,
                "grade_error": error,
                "primary_answer": primary_text,
                "shadow_answer": text,
                "primary_cost_usd": primary.record.cost_usd,
                "shadow_cost_usd": rec.cost_usd,
                "primary_latency_ms": primary.record.latency_ms,
                "shadow_latency_ms": rec.latency_ms,
            }
        )
