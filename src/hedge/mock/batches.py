"""The mocks' batch engine: jobs that advance by being looked at, not by the clock.

Both batch APIs (OpenAI's ``/v1/batches``, Anthropic's ``/v1/messages/batches``) share one
life: a job is accepted, runs its lines, and ends (completed, expired, cancelled or failed).
Real batches take minutes to hours; tests must see every intermediate state without sleeping,
so a job advances one step each time its owner retrieves it (the ``batch_polls`` knob says how
many retrievals it takes to end) or at once on ``POST /_mock/batches/complete``.

Each line's answer is worked out when the job is accepted, by the style's own request handler
(a line fails exactly as the same request sent alone would), plus the injected failures of the
``batch_fail_ids`` / ``batch_fail_rate`` knobs; retrieval only reveals how many are done. The
wire shapes of jobs and results are each style's business (:mod:`hedge.mock.openai_batches`,
:mod:`hedge.mock.anthropic_batches`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from hedge.mock.behaviour import digest

Phase = Literal["validating", "running", "finalizing", "ended"]
Ending = Literal["completed", "expired", "cancelled", "failed"]


@dataclass(slots=True)
class Line:
    """One request of a job and the answer it gets: its HTTP status and JSON body."""

    custom_id: str
    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(slots=True)
class Job:
    """A batch: its lines, how far it has got, and the style's own fields (``extra``)."""

    id: str
    lines: list[Line]
    polls_needed: int
    expire: bool = False
    """End as expired (the completion window ran out) with only part of the lines done."""
    failure: list[dict[str, Any]] | None = None
    """Why the job as a whole is refused at validation (OpenAI's ``errors.data``); None if it is not."""
    extra: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    phase: Phase = "validating"
    ending: Ending | None = None
    done: int = 0
    """How many lines (in order) have been answered."""
    polls: int = 0
    in_progress_at: float | None = None
    finalizing_at: float | None = None
    cancelling_at: float | None = None
    ended_at: float | None = None

    @property
    def cancelling(self) -> bool:
        return self.cancelling_at is not None and self.phase != "ended"

    def advance(self) -> None:
        """One retrieval's worth of progress."""
        if self.phase == "ended":
            return
        self.polls += 1
        if self.failure is not None:
            self._end("failed")
            return
        if self.cancelling_at is not None:
            self._end("cancelled")
            return
        needed = self.polls_needed
        if self.polls > needed:
            self._end("expired" if self.expire else "completed")
            return
        total = len(self.lines)
        now = time.time()
        self.in_progress_at = self.in_progress_at or now
        if self.expire:  # an expiring job never gets past half of its lines
            self.done = max(self.done, total * self.polls // (2 * needed))
            self.phase = "running"
        elif self.polls == needed:
            self.done = total
            self.phase = "finalizing"
            self.finalizing_at = now
        else:
            self.done = max(self.done, total * self.polls // needed)
            self.phase = "running"

    def finish(self) -> None:
        """End now, as the job would have ended (``POST /_mock/batches/complete``)."""
        if self.phase != "ended":
            self.polls = max(self.polls, self.polls_needed)
            self.advance()

    def cancel(self) -> None:
        """Ask to cancel: the job is ``cancelling`` until it is next retrieved, then cancelled."""
        if self.phase != "ended" and self.cancelling_at is None:
            self.cancelling_at = time.time()

    def _end(self, ending: Ending) -> None:
        now = time.time()
        if ending == "completed":
            self.done = len(self.lines)
            self.finalizing_at = self.finalizing_at or now
        if ending == "failed":
            self.done = 0
        self.phase, self.ending, self.ended_at = "ended", ending, now
        if ending != "failed":
            self.in_progress_at = self.in_progress_at or self.created_at

    @property
    def answered(self) -> list[Line]:
        return self.lines[: self.done]

    @property
    def unanswered(self) -> list[Line]:
        return self.lines[self.done :]


class BatchBook:
    """Every job and uploaded file of one mock, by id."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.files: dict[str, dict[str, Any]] = {}
        """OpenAI-style files: their object fields plus ``content`` (the bytes)."""

    def finish_all(self) -> int:
        """End every job still open; how many there were."""
        open_jobs = [job for job in self.jobs.values() if job.phase != "ended"]
        for job in open_jobs:
            job.finish()
        return len(open_jobs)


def shuffled(lines: list[Line], seed: str) -> list[Line]:
    """``lines`` in an order that is not theirs (both APIs say results come in any order), but the
    same each time, so a client that relies on the order is caught by every run."""
    return sorted(lines, key=lambda line: digest([seed, line.custom_id]))
