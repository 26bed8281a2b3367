"""The batch worker: claims lines and serves each through the gateway pipeline, when the plan says.

One per replica, started with the server. Every tick (``batch.poll_interval_s``, or at once when
a batch is created or cancelled here) it walks the active batches: starts new ones, asks the
scheduler whether an open batch runs now or waits for a cheaper window, claims as many lines as
the capacity share allows and serves each as an interactive request of its alias (tag ``batch``,
restricted with ``hedge.only`` to the deployments that have batch capacity left, so failover
stays among them), expires what the deadline left open, honours cancels, and finalizes batches
whose lines are all answered. Everything lives in the database, so any replica can do any step
and a restarted one carries on; a line is answered once (see :mod:`hedge.batch.store`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from hedge.access.gate import refuse_unusable
from hedge.access.keys import VirtualKey
from hedge.batch import scheduler
from hedge.batch.capacity import Capacity
from hedge.batch.lanes import NativeLane, NativeSupport, native_lane
from hedge.batch.lines import ENDPOINTS, answered, output_line
from hedge.batch.native import NativeLine, native_batches
from hedge.batch.store import ERRORED, SUCCEEDED, BatchRow, BatchStore, Claimed, Counts, FileRow
from hedge.cost.pricing import batch_price, cost_usd
from hedge.errors import AuthError, HedgeError
from hedge.gateway.booking import book
from hedge.gateway.pipeline import Exchange
from hedge.gateway.runtime import Runtime
from hedge.gateway.stream import Stream
from hedge.providers.base import Usage
from hedge.providers.responses_inbound import to_chat, to_response
from hedge.record import Outcome, RequestRecord, RouteStep
from hedge.routing.context import RouteContext
from hedge.routing.deployment import Deployment
from hedge.routing.strategies import expected_cost
from hedge.store.db import is_store_error, warn_store_unavailable
from hedge.tasks import stop

log = logging.getLogger("hedge.batch")

Clock = Callable[[], float]
RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504})
"""A line refused with one of these (after the pipeline's own retries and failover) runs again later."""
RETRY_AFTER_S = 30.0
TOTALS_EVERY_S = 5.0
_ALPHA = 0.2


def file_id(batch_id: str, kind: str) -> str:
    """A batch's output or error file id, derived from the batch: replicas that race agree on it."""
    return "file-" + hashlib.sha256(f"{batch_id}:{kind}".encode()).hexdigest()[:24]


NATIVE = NativeSupport(native_batches, NativeLine)
"""The native batch clients of every wire format (:mod:`hedge.batch.native`)."""


class BatchWorker:
    def __init__(
        self,
        runtime: Runtime,
        clock: Clock = time.time,
        replica: str | None = None,
        native: NativeSupport | None = NATIVE,
    ) -> None:
        """``native``: the provider batch clients, so batches can go to a provider's own batch API
        (``providers.X.batch: true``); None runs every batch as scheduled lines."""
        self.runtime = runtime
        self.native = native
        self.config = runtime.config.batch
        self.store = BatchStore(runtime.db)
        self.capacity = Capacity(runtime.config, runtime.counters, runtime.quotas)
        self.clock = clock
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.lease_s = self.config.lease_s or runtime.config.resilience.request_timeout_s + 60.0
        self.line_s: float | None = None
        """Observed seconds per line (moving average), the scheduler's throughput estimate."""
        self.totals = Counts()
        """Every batch's lines by state and their cost, as last read (for ``/metrics``)."""
        self._totals_at = -TOTALS_EVERY_S
        self._deployments = {
            dep.id: dep for alias in runtime.router.aliases.values() for dep in alias.deployments
        }
        self._windows = [
            *(w for dep in self._deployments.values() for w, _ in dep.price_windows),
            *(r.window for alias in runtime.router.aliases.values() for r in alias.rules if r.window),
        ]
        """Every price window and time-window rule: when what a line costs can change."""
        self._polled: dict[str, float] = {}
        """When each native batch was last polled by this replica."""
        self._lines: set[asyncio.Task[None]] = set()
        # Claims whose line has not ended yet, with their batch: what close() gives back when a
        # cancellation lands where a line cannot give itself back (between its claim and its task,
        # or while its answer is being booked).
        self._claims: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.ensure_future(self._run())

    def wake(self) -> None:
        """Look at the batches now (one was created or cancelled)."""
        self._wake.set()

    async def close(self) -> None:
        """Stop: lines in flight are cancelled and given back, for this or another replica to run."""
        await stop(self._loop)
        for task in list(self._lines):
            task.cancel()
        if self._lines:
            await asyncio.gather(*self._lines, return_exceptions=True)
        for claim, batch_id in list(self._claims.items()):
            with contextlib.suppress(Exception):
                await self.store.release_claim(batch_id, claim)
        self._claims.clear()

    def _line_ended(self, claim: str, task: asyncio.Task[None]) -> None:
        if not task.cancelled():  # it finished or gave itself back; a cancelled one is close()'s
            self._claims.pop(claim, None)

    async def idle(self) -> None:
        """Wait for the lines in flight (tests drive :meth:`tick` themselves)."""
        while self._lines:
            await asyncio.gather(*list(self._lines), return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_store_error(exc):  # the database is down: one line per interval, no traceback
                    warn_store_unavailable("batch worker", exc)
                else:
                    log.exception("batch worker tick failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll_interval_s)
            self._wake.clear()

    # -- one pass ----------------------------------------------------------------------------------

    async def tick(self) -> None:
        """One pass over every active batch."""
        for batch in await self.store.active():
            try:
                await self._advance(batch)
            except Exception as exc:
                if is_store_error(exc):
                    raise
                log.exception("batch %s could not be advanced; trying again", batch.id)
        now = time.monotonic()
        if now - self._totals_at >= TOTALS_EVERY_S:
            self._totals_at = now
            self.totals = await self.store.totals()

    async def _advance(self, batch: BatchRow) -> None:
        now = self.clock()
        if batch.status == "validating" and not await self.store.move(batch, "in_progress", now):
            return
        if batch.status == "finalizing":
            await self._finalize(batch, "completed", now)
            return
        if batch.native is not None and not batch.native.get("ended"):
            await self._native_poll(batch, now)
            return
        if batch.status == "cancelling":
            await self.store.close_pending(batch.id, "cancelled")
            if (await self.store.counts(batch.id)).by_state.get("running", 0) == 0:
                await self._finalize(batch, "cancelled", now)
            return
        if now >= batch.deadline:
            await self.store.close_pending(batch.id, "expired")
            if (await self.store.counts(batch.id)).by_state.get("running", 0) == 0:
                await self._finalize(batch, "expired", now)
            return
        counts = await self.store.counts(batch.id)
        if counts.open == 0:
            await self._finalize(batch, "completed", now)
            return
        if not counts.by_state.get("pending", 0):
            return  # every open line is in flight, here or on another replica
        plan = await self._plan(batch, counts, now)
        if batch.native is None and plan is not None and batch.endpoint == "/v1/chat/completions":
            sample = await self.store.sample_body(batch.id) or {}
            lane = native_lane(
                self.runtime, self.native, sample, batch.deadline - now, plan.cost_per_line_usd
            )
            if lane is not None:
                await self._native_submit(batch, lane, now)
                return
        if plan is not None and not plan.run_now:
            return
        await self._dispatch(batch, now)

    async def _plan(self, batch: BatchRow, counts: Counts, now: float) -> scheduler.Plan | None:
        sample = await self.store.sample_body(batch.id)
        if sample is None:
            return None
        line_s = self.line_s if self.line_s is not None else self.config.assumed_line_s
        needed = scheduler.needed_seconds(
            counts.open,
            line_s,
            self.config.max_concurrency,
            self.config.safety_factor,
            self.config.min_margin_s,
        )

        def cost_at(t: float) -> float:
            ctx = RouteContext(sample, lambda: datetime.fromtimestamp(t, UTC), ("batch",))
            try:
                alias = self.runtime.router.resolve(str(sample.get("model")), ctx)
            except HedgeError:
                return 0.0
            deployments = alias.strategy.peek(ctx)
            return expected_cost(deployments[0], ctx) if deployments else 0.0

        candidates = scheduler.boundaries(self._windows, now, batch.deadline)
        plan = scheduler.plan(now, batch.deadline, needed, cost_at, candidates)
        shown = plan.to_dict(counts.open)
        if batch.plan is None or {k: batch.plan.get(k) for k in ("start_at", "reason")} != {
            k: shown[k] for k in ("start_at", "reason")
        }:
            batch.plan = shown
            await self.store.save_plan(batch.id, shown)
        return plan

    async def _dispatch(self, batch: BatchRow, now: float) -> None:
        key = await self._key(batch)
        while self.capacity.free_slots() > 0:
            claim = f"{self.replica}:{os.urandom(6).hex()}"
            self._claims[claim] = batch.id
            lines = await self.store.claim(batch.id, claim, 1, now, now + self.lease_s)
            if not lines:
                del self._claims[claim]
                return
            for i, line in enumerate(lines):
                deployments = await self._with_room(line.body, key)
                if deployments is not None and not deployments:
                    for unsent in lines[i:]:  # every deployment is at its batch share: later
                        await self.store.release(batch.id, unsent.idx, claim, now, tried=False)
                    del self._claims[claim]
                    return
                first = deployments[0] if deployments else None
                if first is not None:
                    await self.capacity.started(first)
                task = asyncio.ensure_future(self._line(batch, line, claim, key, deployments, first))
                self._lines.add(task)
                task.add_done_callback(self._lines.discard)
                task.add_done_callback(functools.partial(self._line_ended, claim))

    async def _with_room(
        self, body: dict[str, Any], key: VirtualKey | AuthError | None
    ) -> list[Deployment] | None:
        """The deployments of the line's plan that have batch capacity left (None: the line has no
        plan, e.g. an unknown model: the pipeline answers it with the error)."""
        allowed = key.models if isinstance(key, VirtualKey) and key.models else None
        try:
            router = self.runtime.router
            _, plan = router.plan(str(body.get("model")), router.context(body, ("batch",)), allowed)
        except HedgeError:
            return None
        return [dep for dep in plan if await self.capacity.room(dep)]

    async def _key(self, batch: BatchRow) -> VirtualKey | AuthError | None:
        """The key lines run under (its budget and limits hold): None for the master key."""
        if batch.key_id is None:
            return None
        key = await self.runtime.keys.get(batch.key_id)
        if key is None:
            return AuthError("The API key that created this batch no longer exists.", code="invalid_api_key")
        return key

    async def _line(
        self,
        batch: BatchRow,
        line: Claimed,
        claim: str,
        key: VirtualKey | AuthError | None,
        deployments: list[Deployment] | None,
        first: Deployment | None,
    ) -> None:
        runtime = self.runtime
        exchange = Exchange(
            runtime, ENDPOINTS[batch.endpoint], "req_" + os.urandom(12).hex(), {}, batch_id=batch.id
        )
        rec = exchange.record
        responses = batch.endpoint == "/v1/responses"
        started = time.perf_counter()
        try:
            if isinstance(key, AuthError):
                exchange.refused(key)
                raise key
            if key is not None:
                refuse_unusable(key, time.time())
            body = to_chat(line.body)[0] if responses else dict(line.body)
            if deployments:
                body["hedge"] = {**(body.get("hedge") or {}), "only": [d.id for d in deployments]}
            result = await exchange.serve(body, key, ("batch",))
        except HedgeError as exc:
            if exc.status in RETRYABLE and line.attempts < self.config.max_line_attempts:
                await self.store.release(batch.id, line.idx, claim, self.clock() + RETRY_AFTER_S)
            else:
                out = answered(batch.id, line.idx, line.custom_id, exc.status, rec.request_id, exc.to_dict())
                await self._finish(batch, line, claim, "failed", out, rec.cost_usd, self._baseline(rec))
            return
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.release(batch.id, line.idx, claim, 0.0, tried=False))
            raise
        except Exception:
            log.exception("batch %s line %d failed unexpectedly", batch.id, line.idx)
            await self.store.release(batch.id, line.idx, claim, self.clock() + RETRY_AFTER_S)
            return
        finally:
            if first is not None:
                await self.capacity.ended(first, rec)
        if isinstance(result, Stream):  # never: batch lines are refused with stream: true
            await result.close()
            await self.store.release(batch.id, line.idx, claim, self.clock() + RETRY_AFTER_S)
            return
        elapsed = time.perf_counter() - started
        self.line_s = elapsed if self.line_s is None else self.line_s + _ALPHA * (elapsed - self.line_s)
        answer = orjson.loads(result.body)
        if responses:
            now = int(time.time())
            rid = "resp_" + rec.request_id.removeprefix("req_")
            answer = to_response(answer, line.body, response_id=rid, created_at=now, completed_at=now)
        out = answered(batch.id, line.idx, line.custom_id, 200, rec.request_id, answer)
        await self._finish(batch, line, claim, SUCCEEDED, out, rec.cost_usd, self._baseline(rec))

    def _baseline(self, rec: Any) -> float:
        """What the line would have cost run interactively: at the alias's baseline if it has one,
        else at the serving deployment's price outside any price window."""
        if rec.baseline_cost_usd is not None:
            return float(rec.baseline_cost_usd)
        dep = self._deployments.get(rec.deployment or "")
        if dep is None:
            return float(rec.cost_usd)
        return cost_usd(Usage(rec.prompt_tokens, rec.completion_tokens, rec.cached_tokens), dep.price)

    async def _finish(
        self,
        batch: BatchRow,
        line: Claimed,
        claim: str,
        state: str,
        out: dict[str, Any],
        cost: float,
        baseline: float,
    ) -> None:
        # Booked before it counts as answered: a crash between the two reruns the line (and books
        # the rerun, which was paid for too) rather than leave an answer without its ledger row.
        try:
            await self.runtime.ledger.flush()
        except Exception:
            log.warning("batch %s line %d: the ledger could not be written yet", batch.id, line.idx)
        kept = await self.store.finish(batch.id, line.idx, claim, state, out, cost, baseline, self.replica)
        if not kept:
            log.warning(
                "batch %s line %d was answered elsewhere first; this answer is dropped", batch.id, line.idx
            )

    # -- the end of a batch ------------------------------------------------------------------------

    async def _finalize(self, batch: BatchRow, status: str, now: float) -> None:
        """Write the output and error files and move the batch to ``status``."""
        finalizing = status == "completed" and batch.status == "in_progress"
        if finalizing and not await self.store.move(batch, "finalizing", now):
            return
        output = await self._file(batch, "output", (SUCCEEDED,), now)
        errors = await self._file(batch, "error", ERRORED, now)
        await self.store.move(batch, status, now, output_file_id=output, error_file_id=errors)

    async def _file(self, batch: BatchRow, kind: str, states: tuple[str, ...], now: float) -> str | None:
        size = 0
        after = -1
        while True:
            rows = await self.store.lines(batch.id, states, after, 1000)
            if not rows:
                break
            size += sum(len(output_line(batch.id, r)) + 1 for r in rows)
            after = int(rows[-1]["idx"])
        if not size:
            return None
        fid = file_id(batch.id, kind)
        row = FileRow(fid, batch.owner, "batch_output", f"{batch.id}_{kind}.jsonl", size, now, batch.id)
        await self.store.add_file(row)
        return fid

    # -- native provider batches -------------------------------------------------------------------

    async def _native_submit(self, batch: BatchRow, lane: NativeLane, now: float) -> None:
        """Hand the batch's waiting lines of its model to the provider's batch API in one batch."""
        claim = f"{self.replica}:native:{os.urandom(6).hex()}"
        lines = await self.store.claim(
            batch.id, claim, self.runtime.config.batch.max_lines, now, now + self.lease_s
        )
        dep = lane.deployment
        native = []
        for line in lines:
            if line.body.get("model") != batch.model:  # another alias: run it as a scheduled line
                await self.store.release(batch.id, line.idx, claim, now, tried=False)
                continue
            body = {k: v for k, v in line.body.items() if k != "hedge"}
            native.append(lane.line(f"l{line.idx}", {**body, "model": dep.model}))
        if not native:
            return
        try:
            upstream = await lane.client.submit(native)
        except HedgeError as exc:
            log.warning(
                "batch %s: %s refused it as a native batch (%s); scheduling its lines", batch.id, dep.id, exc
            )
            await self.store.release_claim(batch.id, claim)
            await self.store.set_native(batch, {"deployment": dep.id, "ended": True, "refused": exc.message})
            return
        await self.store.set_native(
            batch,
            {
                "deployment": dep.id,
                "provider": dep.provider,
                "upstream_id": upstream,
                "claim": claim,
                "at": now,
            },
        )
        # The provider holds the lines now: no other replica may take them over before it is done.
        await self.store.extend(batch.id, claim, batch.deadline + self.lease_s)

    async def _native_poll(self, batch: BatchRow, now: float) -> None:
        native = dict(batch.native or {})
        dep = self._deployments.get(str(native.get("deployment")))
        client = None
        if dep is not None and self.native is not None:
            client = self.native.clients(
                self.runtime.transport, dep.provider, self.runtime.config.providers[dep.provider]
            )
        if dep is None or client is None:  # the config changed under it: schedule its lines instead
            await self.store.release_claim(batch.id, str(native.get("claim")))
            await self.store.set_native(batch, {**native, "ended": True})
            return
        upstream = str(native["upstream_id"])
        if (batch.status == "cancelling" or now >= batch.deadline) and not native.get("cancel_sent"):
            await client.cancel(upstream)
            native["cancel_sent"] = True
            await self.store.set_native(batch, native)
        elif now - self._polled.get(batch.id, float(native.get("at", 0.0))) < self.config.native_poll_s:
            return
        self._polled[batch.id] = now
        progress = await client.poll(upstream)
        if progress.status == "running":
            return
        results = await client.results(upstream) if progress.status != "failed" else []
        key = await self._key(batch)
        claim = str(native["claim"])
        for result in results:
            await self._native_result(batch, dep, claim, result, key)
        await self.store.release_claim(batch.id, claim)  # lines the provider did not answer
        await self.store.set_native(batch, {**native, "ended": True, "status": progress.status})

    async def _native_result(
        self, batch: BatchRow, dep: Deployment, claim: str, result: Any, key: VirtualKey | AuthError | None
    ) -> None:
        """Book and answer one line of a native batch; one it may retry goes back to be scheduled."""
        custom_id = str(result.custom_id)
        if not custom_id.startswith("l") or not custom_id[1:].isdigit():
            return
        idx = int(custom_id[1:])
        if result.status is None or (result.status != 200 and result.retryable):
            await self.store.release(batch.id, idx, claim, 0.0, tried=False)
            return
        rows = await self.store.claimed_line(batch.id, idx, claim)
        if rows is None:
            return
        alias = self.runtime.router.aliases.get(batch.model or "")
        rec = RequestRecord(
            "req_" + os.urandom(12).hex(),
            ENDPOINTS[batch.endpoint],
            alias=batch.model or "",
            provider=dep.provider,
            model=dep.model,
            status=int(result.status),
            attempts=1,
            batch_id=batch.id,
            tags=frozenset({"batch"}),
        )
        rec.route.append(
            RouteStep(dep.id, Outcome.OK if result.status == 200 else Outcome.FAILED, "native_batch")
        )
        if isinstance(key, VirtualKey):
            rec.key_id, rec.team = key.id, key.team
        book(rec, result.usage, batch_price(dep.price), alias.baseline_price if alias is not None else None)
        self.runtime.record(rec, key if isinstance(key, VirtualKey) else None)
        state = SUCCEEDED if result.status == 200 else "failed"
        out = answered(batch.id, idx, rows.custom_id, int(result.status), rec.request_id, result.body)
        await self._finish(batch, rows, claim, state, out, rec.cost_usd, self._baseline(rec))
