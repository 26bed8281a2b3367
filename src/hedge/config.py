"""Configuration: YAML with ``${ENV}`` interpolation, validated into typed models.

The file is parsed once at start-up. Any problem stops start-up with one line
that names the file, the path inside it and what is wrong, e.g.::

    hedge.yaml: models.chat.deployments[1].provider: unknown provider 'premuim' (known: cheap, premium)

Models forbid unknown keys, so a typo is an error rather than a silently
ignored setting.
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hedge.extras import missing_extra
from hedge.windows import parse_window

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
"""Experiment and arm names: they appear in a response header and in URLs."""

Style = Literal["openai", "anthropic", "gemini"]

CONFIG_ENV = "HEDGE_CONFIG"
"""The environment variable that hands the config file's path to ``hedge serve --workers N``'s workers."""


class ConfigError(Exception):
    """A configuration problem, already formatted as one line for the operator."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceOverride(_Strict):
    """Prices that replace a :class:`Price`'s own in some case (a long prompt, a service tier); a field
    left out keeps the price it overrides. USD per million tokens, ``per_request`` USD per request."""

    input: float | None = Field(None, ge=0)
    output: float | None = Field(None, ge=0)
    cached_input: float | None = Field(None, ge=0)
    cache_write_input: float | None = Field(None, ge=0)
    reasoning: float | None = Field(None, ge=0)
    per_request: float | None = Field(None, ge=0)


class PriceTier(PriceOverride):
    """A long-context tier: the prices of a request whose prompt (cache reads and writes included) is
    longer than ``above_prompt_tokens``, as Anthropic and Google charge above 200k tokens."""

    above_prompt_tokens: int = Field(gt=0)


class Price(_Strict):
    """USD per million tokens, by token class; ``per_request`` is USD per request.

    ``cached_input`` is the price of a prompt token read from the provider's cache (``input`` when
    unset), ``cache_write_input`` of one written to it (``input`` when unset), ``reasoning`` of a
    reasoning token (``output`` when unset: providers bill them as output, but they are reported apart).
    ``tiers`` price long prompts; ``service_tiers`` (``flex``, ``priority``...) the tier the upstream
    served the request in. ``source`` and ``as_of`` say where a catalogue price came from and when.
    """

    input: float = Field(0.0, ge=0)
    output: float = Field(0.0, ge=0)
    cached_input: float | None = Field(None, ge=0)
    batch_input: float | None = Field(None, ge=0)
    """Per million prompt tokens sent through the provider's native batch API (else ``input``)."""
    batch_output: float | None = Field(None, ge=0)
    """Per million completion tokens through the native batch API (else ``output``)."""
    batch_discount: float | None = Field(None, ge=0, lt=1)
    """The native batch API's discount on every dimension without a ``batch_*`` price (0.5: half price)."""
    cache_write_input: float | None = Field(None, ge=0)
    reasoning: float | None = Field(None, ge=0)
    per_request: float = Field(0.0, ge=0)
    tiers: list[PriceTier] = Field(default_factory=list)
    service_tiers: dict[str, PriceOverride] = Field(default_factory=dict)
    source: str | None = None
    as_of: str | None = None

    def priced_as(self, prompt_tokens: int, service_tier: str | None) -> Rates:
        """The flat rates of one request: the service tier's prices, then the longest long-context
        tier the prompt exceeds, over this base price (tiers and service tiers resolved away).

        Every request is priced, so each case's rates are worked out once (a pydantic round trip
        per request was measurable, and so are a dozen reads of a pydantic model's fields) and kept
        beside this price, not in it: equality stays the fields'.
        """
        tier = service_tier if service_tier in self.service_tiers else None
        longest = -1
        for i, t in enumerate(self.tiers):
            if prompt_tokens > t.above_prompt_tokens and (
                longest < 0 or t.above_prompt_tokens > self.tiers[longest].above_prompt_tokens
            ):
                longest = i
        entry = _RESOLVED.get(id(self))
        if entry is None or entry[0]() is not self:
            key = id(self)
            entry = _RESOLVED[key] = (weakref.ref(self, lambda _: _RESOLVED.pop(key, None)), {})
        flat = entry[1].get((tier, longest))
        if flat is None:
            flat = entry[1][(tier, longest)] = self._resolve(tier, longest)
        return flat

    def _resolve(self, service_tier: str | None, longest: int) -> Rates:
        fields = self.model_dump(include=set(PriceOverride.model_fields))
        if service_tier is not None:
            fields.update(self.service_tiers[service_tier].model_dump(exclude_none=True))
        if longest >= 0:
            fields.update(self.tiers[longest].model_dump(exclude_none=True, exclude={"above_prompt_tokens"}))
        given = {name: value for name, value in fields.items() if value is not None}
        return Rates(
            input=given["input"],
            output=given["output"],
            cached_input=given.get("cached_input", given["input"]),
            cache_write_input=given.get("cache_write_input", given["input"]),
            reasoning=given.get("reasoning", given["output"]),
            per_request=given["per_request"],
        )


@dataclass(frozen=True, slots=True)
class Rates:
    """One case of a :class:`Price` resolved to plain numbers (:meth:`Price.priced_as`): what a
    token of each class costs, USD per million, and the fee per request. Every class has its rate:
    cache reads and writes at ``input``'s unless priced apart, reasoning at ``output``'s."""

    input: float
    output: float
    cached_input: float
    cache_write_input: float
    reasoning: float
    per_request: float


_RESOLVED: dict[int, tuple[weakref.ref[Price], dict[tuple[str | None, int], Rates]]] = {}
"""Resolved rates by ``id`` of the price they resolve (the weak reference tells a reused id apart)."""


class Timeouts(_Strict):
    """Seconds. ``read`` is the longest silence between bytes, so it also bounds time to first token."""

    connect: float = Field(10.0, gt=0)
    read: float = Field(120.0, gt=0)
    total: float = Field(600.0, gt=0)
    first_token: float | None = Field(None, gt=0)
    """Streams only: fail over if no content arrived this many seconds after the request was sent."""


class ServerConfig(_Strict):
    master_key: str = Field(min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0)
    header_timeout_s: float = Field(10.0, gt=0)
    """A connection must finish its request headers this long after connecting (on a keep-alive
    connection, after starting its next request), or it is answered 408 and closed, so clients that
    send slowly or not at all cannot hold connections open (idle keep-alive is bounded separately)."""
    body_timeout_s: float = Field(60.0, gt=0)
    """Time to receive a request's whole body once its headers are in; past it, 408 ``request_timeout``
    and the connection is closed. Responses, however long they stream, are never cut by either timeout."""
    max_connections_per_client: int = Field(1000, ge=1)
    """Concurrent connections from one client IP address (per worker process); more are refused with
    429. High by default because benchmarks and tests open hundreds of connections from 127.0.0.1, and
    behind a proxy or NAT every client has the same address."""
    metrics_auth: bool = False
    """Require the master key for ``GET /metrics`` (scrapers usually cannot send one)."""
    log_bodies: bool = False
    """Keep request and response bodies (64 KiB each, credentials masked) for the dashboard's request log."""


class HealthCheckConfig(_Strict):
    """Active health checks: each deployment of the provider that has had no traffic for
    ``interval_s`` is sent a one-token chat request (to ``model`` if set, e.g. a cheap model of the
    same provider, else the deployment's own), at most once per deployment per interval across all
    replicas. The answer feeds the deployment's breaker as a request's would."""

    interval_s: float = Field(30.0, gt=0)
    model: str | None = Field(None, min_length=1)
    timeout_s: float = Field(10.0, gt=0)


class ProviderConfig(_Strict):
    style: Style
    base_url: str
    api_key: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Timeouts = Timeouts()
    max_connections: int = Field(1000, ge=1)
    warm_connections: int = Field(0, ge=0)
    """Connections to keep open to the provider even while idle (opened at start-up, reopened when
    the provider closes one), so a burst of up to this many requests pays no TCP or TLS handshake."""
    default_max_tokens: int = Field(4096, ge=1)
    """Sent when the client gives no limit but the wire format requires one (Anthropic)."""
    on_unsupported: Literal["reject", "drop"] = "reject"
    """What to do with a parameter this provider cannot honour: refuse the request, or drop it and say so."""
    max_response_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    """The most a whole response may expand to once decoded; past it the answer fails over (a gzip bomb
    must not take the gateway's memory)."""
    max_event_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    """The most one stream event may hold; past it the stream fails (over, if nothing was sent yet)."""
    responses_api: bool = False
    """The upstream serves OpenAI's ``/responses`` itself (``openai`` style only): Responses API
    requests routed to it are passed through instead of translated to chat completions."""
    health_check: HealthCheckConfig | None = None
    """Probe idle deployments of this provider (off unless set)."""

    batch: bool = False
    """The upstream has a native batch API (OpenAI's ``/batches``, Anthropic's Message Batches, Gemini
    batch mode) that batch work may be handed to at its batch price."""

    @model_validator(mode="after")
    def _warm_within_max(self) -> ProviderConfig:
        if self.warm_connections > self.max_connections:
            raise ValueError(
                f"warm_connections ({self.warm_connections}) cannot exceed "
                f"max_connections ({self.max_connections})"
            )
        return self

    @model_validator(mode="after")
    def _responses_api_is_openai(self) -> ProviderConfig:
        if self.responses_api and self.style != "openai":
            raise ValueError("responses_api: true needs style openai (the upstream's own /responses)")
        return self

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")


class WindowConfig(_Strict):
    """``HH:MM-HH:MM`` in ``timezone`` (wrapping past midnight if end < start), optionally on ``days``."""

    window: str
    timezone: str = "UTC"
    days: list[str] | None = None

    @model_validator(mode="after")
    def _parse(self) -> WindowConfig:
        parse_window(self.window, self.timezone, self.days)
        return self


class WindowPrice(WindowConfig):
    price: Price


class DeploymentConfig(_Strict):
    provider: str
    model: str = Field(min_length=1)
    weight: float = Field(1.0, ge=0)
    price: Price | None = None
    """USD per million tokens; when omitted, the price catalogue's entry for ``model``."""
    price_windows: list[WindowPrice] = Field(default_factory=list)
    """Prices in force during time windows (spot or off-peak pricing); the first match wins."""
    quality: float | None = Field(None, ge=0)
    """A quality score (e.g. from evaluations) for the ``cheapest`` strategy's ``min_quality``."""
    rpm: int | None = Field(None, ge=1)
    """Upstream quota: requests per minute Hedge sends this deployment; past it, traffic routes around."""
    tpm: int | None = Field(None, ge=1)
    """Upstream quota: tokens per minute, counted from reported usage."""
    context_window: int | None = Field(None, gt=0)
    """Declared context window in tokens (the conformance suite's long-context case uses it)."""
    require_conformance: list[str] | None = None
    """Case ids (or ``all``) this deployment must have passed in ``hedge check`` before it gets traffic."""
    conformance_max_age_s: float = Field(7 * 86400, gt=0)
    """How recent that passing run must be."""


class RuleWhen(_Strict):
    tags: list[str] | None = None
    """Matches when the request carries any of these tags."""
    min_prompt_tokens: int | None = Field(None, ge=0)
    max_prompt_tokens: int | None = Field(None, ge=0)
    window: WindowConfig | None = None


class RuleConfig(_Strict):
    when: RuleWhen
    use: str
    """The alias that serves requests matching ``when``."""


EscalationCheck = Literal["length", "invalid_json", "empty", "tool_schema"]


class EscalationConfig(_Strict):
    to: str
    when: list[EscalationCheck] = ["length", "invalid_json", "empty", "tool_schema"]


class ShadowConfig(_Strict):
    """A sampled copy of this alias's answered requests, sent to a candidate after the client has its
    answer, graded against it and booked as shadow spend (never on the caller's key)."""

    to: str = Field(min_length=1)
    """An alias, or the id (``provider/model``) of a deployment some alias declares."""
    sample: float = Field(0.05, ge=0, le=1)
    """Share of the alias's successful requests copied."""
    max_usd_per_day: float = Field(1.0, ge=0)
    """Shadow spend of this alias on this target per UTC day; past it, no more copies that day."""
    grader: str = Field("exact", min_length=1)
    """How the candidate's answer is graded against the primary's (see ``hedge.experiments.grading``)."""


class StickyConfig(_Strict):
    """Keep one session (or one prompt prefix) on one deployment, so the provider's prompt cache stays
    warm. ``by`` names what identifies a session: the body's ``user`` (or ``safety_identifier``), its
    ``prompt_cache_key``, a request header (``header:x-session-id``), or ``prefix``: the system
    prompt, the tools and the first user message, which every turn of one conversation repeats."""

    by: str = "user"
    ttl_s: float = Field(3600.0, gt=0)
    """How long a session stays pinned after its last request."""

    @field_validator("by")
    @classmethod
    def _by(cls, value: str) -> str:
        if value in ("user", "prompt_cache_key", "prefix"):
            return value
        name = value.removeprefix("header:").strip().lower()
        if value.startswith("header:") and name:
            return f"header:{name}"
        raise ValueError(f"must be user, prompt_cache_key, prefix or header:NAME, got {value!r}")


class ModelConfig(_Strict):
    strategy: Literal["weighted", "ordered", "cheapest", "least-latency", "least-busy"] = "weighted"
    deployments: list[DeploymentConfig] = Field(min_length=1)
    baseline: str | None = None
    """Another alias whose first deployment's price is the yardstick for savings."""
    fallbacks: list[str] = Field(default_factory=list)
    """Other aliases tried, in order, once every deployment of this one has failed."""
    max_attempts: int | None = Field(None, ge=1)
    rules: list[RuleConfig] = Field(default_factory=list)
    """Checked in order before the strategy: the first match routes the request to another alias."""
    max_latency_ms: float | None = Field(None, gt=0)
    """``cheapest``: skip deployments whose observed p95 latency exceeds this."""
    min_quality: float | None = None
    """``cheapest``: skip deployments whose ``quality`` is below this."""
    escalate: EscalationConfig | None = None
    """Non-streaming: retry on a stronger alias when the answer fails a check."""
    cache_ttl_s: float | None = Field(None, gt=0)
    """Opt-in exact-match response cache for non-streaming requests to this alias."""
    cache_scope: Literal["key", "team", "global"] = "key"
    """Who shares cached answers: each virtual key its own (default), a team, or every caller."""
    shadow: list[ShadowConfig] = Field(default_factory=list)
    """Candidates that get a sampled copy of this alias's traffic off the request path."""
    sticky: StickyConfig | None = None
    """Cache-warm routing: a session stays on the deployment that first served it while that one is
    healthy; the strategy's split then holds across sessions rather than requests."""
    hedge_after_ms: float | Literal["p95"] | None = None
    """Hedged requests: when the first deployment has not answered (a stream: not sent its first
    token) after this many milliseconds (``p95``: its observed 95th percentile), the same request
    goes to the next deployment of the plan too; the first answer wins and the other is cancelled.
    Each hedge spends the retry budget."""

    @field_validator("hedge_after_ms")
    @classmethod
    def _hedge_after(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
            raise ValueError("must be a positive number of milliseconds or p95")
        return value


class BackoffConfig(_Strict):
    base_ms: float = Field(100.0, ge=0)
    max_ms: float = Field(2000.0, ge=0)


class RetryBudgetConfig(_Strict):
    """Retries add at most ``ratio`` extra load; a floor of ``min_per_s`` lets low traffic retry."""

    ratio: float = Field(0.2, ge=0)
    min_per_s: float = Field(5.0, ge=0)
    window_s: float = Field(10.0, gt=0)


class BreakerConfig(_Strict):
    failures: int = Field(5, ge=1)
    """Consecutive retryable failures that open the breaker."""
    cooldown_s: float = Field(30.0, gt=0)
    """How long an open breaker keeps traffic away before letting one probe through."""


class ResilienceConfig(_Strict):
    max_attempts: int = Field(4, ge=1)
    """Attempts per request across deployments and fallbacks, the first included."""
    backoff: BackoffConfig = BackoffConfig()
    max_retry_wait_s: float = Field(5.0, ge=0)
    """The longest a request waits inside the gateway for a Retry-After before giving up."""
    max_cooldown_s: float = Field(300.0, gt=0)
    """Ceiling of any cool-down a provider's Retry-After (or another replica's snapshot) can impose,
    so a bogus ``Retry-After: 999999999`` sidelines a deployment for minutes, not decades."""
    retry_budget: RetryBudgetConfig = RetryBudgetConfig()
    breaker: BreakerConfig = BreakerConfig()
    request_timeout_s: float = Field(600.0, gt=0)
    """One deadline per request, across every attempt and backoff (a stream's: until its first token);
    past it the client gets 504. A request's ``x-hedge-timeout-ms`` header may lower it, never raise it."""


class StateConfig(_Strict):
    """Where shared state lives. Neither URL: a SQLite file under ``dir`` and in-memory counters."""

    database_url: str | None = None
    """``postgresql://...`` (asyncpg) or ``sqlite:///path``; default ``sqlite:///<dir>/hedge.db``."""
    redis_url: str | None = None
    """``redis://...``: rate-limit windows, budget counters and breaker state shared by all replicas."""
    redis_prefix: str = "hedge:"
    """Prefix of every Redis key, so several deployments of Hedge can share one Redis."""
    dir: str = ".hedge"
    flush_interval_s: float = Field(1.0, gt=0)
    """Ledger records are written in batches at least this often; a crash loses at most this much."""
    flush_batch: int = Field(500, ge=1)
    conformance_refresh_s: float = Field(5.0, ge=0)
    """How often the routing gate re-reads ``hedge check`` results."""
    key_cache_ttl_s: float = Field(2.0, ge=0)
    """How long a replica trusts its cached copy of a virtual key (revocation takes effect within this)."""
    db_timeout_s: float = Field(5.0, gt=0)
    """Longest wait for PostgreSQL (connect, a pooled connection, one query): past it, 503 and the spool."""
    shutdown_timeout_s: float = Field(5.0, gt=0)
    """Longest wait for the database at shutdown; records it has not taken by then are spooled."""
    responses_retention_days: float = Field(30.0, gt=0)
    """How long stored Responses API responses (``/v1/responses``) stay readable; a serving gateway
    deletes older ones hourly (``hedge responses prune`` on demand)."""

    @field_validator("database_url")
    @classmethod
    def _db(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://", "sqlite://")):
            raise ValueError("must start with postgresql:// or sqlite://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis:// or rediss://")
        return value


class BudgetAlertsConfig(_Strict):
    """Soft-limit alerts: when a key's or team's spend reaches a share of its budget, once per
    threshold and budget period (across replicas): a WARNING log line, the ``hedge_budget_alerts``
    metric, and a POST to ``webhook_url`` if one is set (sent off the request path)."""

    thresholds_pct: list[float] = Field(default_factory=lambda: [80.0, 100.0])
    """Percentages of the (soft) budget, ``budget_usd``; of ``hard_budget_usd`` when only that is set."""
    webhook_url: str | None = None
    webhook_timeout_s: float = Field(5.0, gt=0)

    @field_validator("thresholds_pct")
    @classmethod
    def _pct(cls, value: list[float]) -> list[float]:
        if any(not 0 < v <= 1000 for v in value):
            raise ValueError("each threshold must be a percentage above 0 (and at most 1000)")
        return sorted(set(value))

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value


class BudgetConfig(_Strict):
    """How virtual-key budgets hold under concurrency and across replicas."""

    reserve_output_tokens: int = Field(1024, ge=0)
    """Output tokens reserved at admission for a request that sets no ``max_tokens`` (its maximum cost is
    reserved against the budget while it runs, then settled to the real cost)."""
    reservation_ttl_s: float = Field(900.0, gt=0)
    """A reservation a crashed replica never settled stops counting after this long."""
    reconcile_interval_s: float = Field(60.0, gt=0)
    """How often each replica raises the shared spend counters of active keys to what the ledger holds,
    so a booking that was lost cannot leave a key under-counted for a whole budget period."""
    alerts: BudgetAlertsConfig = BudgetAlertsConfig()


class PricingConfig(_Strict):
    """What happens to a deployment neither its config nor the price catalogue prices."""

    on_missing: Literal["warn", "reject", "zero"] = "warn"
    """``warn``: name each at start-up, book its requests at 0 and flag them (ledger, dashboard);
    ``reject``: refuse to start until each has a price; ``zero``: it is free (a self-hosted model),
    booked at 0 without a warning or a flag."""


class TracingConfig(_Strict):
    """OpenTelemetry tracing (the ``tracing`` extra); off unless ``otlp_endpoint`` is set."""

    otlp_endpoint: str | None = None
    """OTLP/HTTP collector base URL (``http://127.0.0.1:4318``); spans go to ``{otlp_endpoint}/v1/traces``."""
    service_name: str = Field("hedge", min_length=1)
    sample_ratio: float = Field(1.0, ge=0, le=1)
    """Share of new traces recorded; a caller's ``traceparent`` decision is followed as it is."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Sent with every export (a collector's credentials); never put in spans."""

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        problem = missing_extra()
        if problem is not None:
            raise ValueError(problem)
        return value.rstrip("/")


class ArmConfig(_Strict):
    use: str = Field(min_length=1)
    """The alias that serves requests assigned to this arm."""
    weight: float = Field(ge=0)
    """Relative share of the experiment's traffic (adaptive experiments move it)."""


class AdaptiveConfig(_Strict):
    """Guardrails for moving traffic toward the cheapest arm that is not worse than control."""

    min_samples: int = Field(100, ge=2)
    """Metric values an arm (and control) needs before its weight may move."""
    max_step: float = Field(10.0, gt=0, le=100)
    """Most percentage points of traffic one change moves."""
    control_floor: float = Field(10.0, ge=0, le=100)
    """Control keeps at least this share (percent), so the comparison never loses its baseline."""
    confidence: float = Field(0.95, gt=0.5, lt=1)
    """One-sided confidence of the non-inferiority test (and of the bar's lower bound)."""
    interval_s: float = Field(3600.0, gt=0)
    """Seconds between two decisions (a decision may change nothing)."""


class ExperimentConfig(_Strict):
    alias: str
    """Requests for this alias are split across the arms."""
    arms: dict[str, ArmConfig] = Field(min_length=2)
    """Must include ``control``; the others are compared with it."""
    assign_by: str = "key"
    """``key`` (the virtual key), ``user`` (the body's ``user`` field) or ``header:NAME``: the unit
    hashed to an arm, so one caller keeps its arm while the weights stay."""
    metric: str = Field(min_length=1, max_length=64)
    """The feedback metric (``POST /v1/feedback``) that measures quality."""
    bar: float | None = None
    """An arm meets the bar when the lower bound of its metric's interval is at or above it."""
    margin: float | None = Field(None, ge=0)
    """Non-inferiority margin: an arm may be at most this much worse than control."""
    adaptive: AdaptiveConfig | None = None

    @field_validator("assign_by")
    @classmethod
    def _assign_by(cls, value: str) -> str:
        if value in ("key", "user") or (value.startswith("header:") and len(value) > len("header:")):
            return value
        raise ValueError(f"must be key, user or header:NAME, got {value!r}")

    @model_validator(mode="after")
    def _control(self) -> ExperimentConfig:
        if "control" not in self.arms:
            raise ValueError("needs an arm named 'control'")
        if not any(arm.weight > 0 for arm in self.arms.values()):
            raise ValueError("at least one arm needs a positive weight")
        if self.adaptive is not None and self.bar is None and self.margin is None:
            raise ValueError("adaptive needs a margin (non-inferiority to control) or a bar")
        return self


class BatchLimits(_Strict):
    """How much of a deployment's capacity batch lines may take (see :class:`BatchConfig`)."""

    max_concurrency: int | None = Field(None, ge=1)
    """Batch lines in flight at once (per replica); for a provider, on its deployments together."""
    max_share: float | None = Field(None, gt=0, le=1)
    """The share of each deployment's rpm, tpm and connections batch lines may use."""


class BatchConfig(_Strict):
    """The batch lane (``/v1/batches``): how lines are scheduled and how much capacity they may take."""

    max_concurrency: int = Field(8, ge=1)
    """Batch lines in flight at once, per replica, over every deployment."""
    max_share: float = Field(0.5, gt=0, le=1)
    """The share of each deployment's rpm, tpm and ``max_connections`` batch lines may use; less
    while interactive traffic needs more of it (batch never takes what interactive traffic uses)."""
    providers: dict[str, BatchLimits] = Field(default_factory=dict)
    """Per-provider overrides of ``max_concurrency`` and ``max_share``."""
    poll_interval_s: float = Field(2.0, gt=0)
    """How often each replica looks for batch work (a batch created on this replica wakes it at once)."""
    lease_s: float | None = Field(None, gt=0)
    """How long a claimed line is its replica's before another may take it over (a crashed replica's
    lines); default ``resilience.request_timeout_s`` plus a minute, so a line in flight is never taken."""
    native_poll_s: float = Field(30.0, gt=0)
    """How often a batch handed to a provider's own batch API is polled there."""
    max_line_attempts: int = Field(3, ge=1)
    """Times a line that failed retryably (429, 5xx, timeouts: after the pipeline's own failover) is run."""
    safety_factor: float = Field(2.0, ge=1)
    """The scheduler allows this many times the estimated run time (from observed throughput) ..."""
    min_margin_s: float = Field(600.0, ge=0)
    """... plus this many seconds before the deadline, when it decides how long it may wait."""
    assumed_line_s: float = Field(10.0, gt=0)
    """A line's duration assumed before any was observed."""
    max_file_bytes: int = Field(200 * 1024 * 1024, gt=0)
    """Largest file ``POST /v1/files`` accepts (OpenAI's limit for batch input)."""
    max_lines: int = Field(50_000, ge=1)
    """Most requests one batch may hold (OpenAI's limit)."""


class Config(_Strict):
    server: ServerConfig
    providers: dict[str, ProviderConfig] = Field(min_length=1)
    models: dict[str, ModelConfig] = Field(min_length=1)
    resilience: ResilienceConfig = ResilienceConfig()
    state: StateConfig = StateConfig()
    budgets: BudgetConfig = BudgetConfig()
    pricing: PricingConfig = PricingConfig()
    tracing: TracingConfig = TracingConfig()
    experiments: dict[str, ExperimentConfig] = Field(default_factory=dict)
    """Online A/B experiments, by name (``hedge experiments``, ``/admin/experiments``)."""
    batch: BatchConfig = BatchConfig()

    @model_validator(mode="after")
    def _references(self) -> Config:
        known = ", ".join(sorted(self.providers))
        deployments = {f"{d.provider}/{d.model}" for m in self.models.values() for d in m.deployments}
        for name in self.batch.providers:
            if name not in self.providers:
                raise _PathError(f"batch.providers.{name}", f"unknown provider {name!r} (known: {known})")
        for alias, model in self.models.items():
            for i, dep in enumerate(model.deployments):
                if dep.provider not in self.providers:
                    raise _PathError(
                        f"models.{alias}.deployments[{i}].provider",
                        f"unknown provider {dep.provider!r} (known: {known})",
                    )
            if model.baseline is not None and model.baseline not in self.models:
                raise _PathError(f"models.{alias}.baseline", f"unknown model alias {model.baseline!r}")
            for i, rule in enumerate(model.rules):
                if rule.use not in self.models or rule.use == alias:
                    raise _PathError(
                        f"models.{alias}.rules[{i}].use", f"unknown or self-referencing alias {rule.use!r}"
                    )
            if model.escalate is not None and (
                model.escalate.to not in self.models or model.escalate.to == alias
            ):
                raise _PathError(
                    f"models.{alias}.escalate.to", f"unknown or self-referencing alias {model.escalate.to!r}"
                )
            for i, fallback in enumerate(model.fallbacks):
                if fallback not in self.models or fallback == alias:
                    raise _PathError(
                        f"models.{alias}.fallbacks[{i}]", f"unknown or self-referencing alias {fallback!r}"
                    )
            for i, shadow in enumerate(model.shadow):
                if shadow.to == alias or (shadow.to not in self.models and shadow.to not in deployments):
                    raise _PathError(
                        f"models.{alias}.shadow[{i}].to",
                        f"{shadow.to!r} is neither another alias nor a configured deployment "
                        "(provider/model)",
                    )
        experimented: dict[str, str] = {}
        for name, exp in self.experiments.items():
            for label in (name, *exp.arms):
                if not _NAME_RE.fullmatch(label):
                    raise _PathError(
                        f"experiments.{name}", f"{label!r}: names are 1-64 letters, digits, '-', '_' or '.'"
                    )
            if exp.alias not in self.models:
                raise _PathError(f"experiments.{name}.alias", f"unknown model alias {exp.alias!r}")
            if exp.alias in experimented:
                raise _PathError(
                    f"experiments.{name}.alias",
                    f"alias {exp.alias!r} is already split by experiment {experimented[exp.alias]!r}",
                )
            experimented[exp.alias] = name
            for arm, spec in exp.arms.items():
                if spec.use not in self.models:
                    raise _PathError(
                        f"experiments.{name}.arms.{arm}.use", f"unknown model alias {spec.use!r}"
                    )
        return self


class _PathError(ValueError):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(problem)
        self.path = path
        self.problem = problem


def interpolate(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a parsed YAML tree."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env and env[name] != "":
                return env[name]
            if default is not None:
                return default
            raise _PathError(path or "<root>", f"environment variable {name} is not set and has no default")

        return _ENV_RE.sub(sub, value)
    if isinstance(value, dict):
        return {k: interpolate(v, env, _join(path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = _join(out, part)
    return out or "<root>"


def _describe(err: Mapping[str, Any]) -> str:
    kind = err.get("type")
    if kind == "missing":
        return "missing required key"
    if kind == "extra_forbidden":
        return "unknown key"
    msg = str(err.get("msg", "invalid value"))
    return msg.removeprefix("Value error, ")


def parse_config(data: Any, source: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    """Validate an already-parsed YAML tree; raise :class:`ConfigError` with one line on failure."""
    env = os.environ if env is None else env
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with server, providers and models")
    try:
        expanded = interpolate(data, env)
        return Config.model_validate(expanded)
    except _PathError as exc:
        raise ConfigError(f"{source}: {exc.path}: {exc.problem}") from None
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        ctx_error = (first.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _PathError):
            line = f"{source}: {ctx_error.path}: {ctx_error.problem}"
        else:
            line = f"{source}: {_loc_to_path(tuple(first['loc']))}: {_describe(first)}"
        if len(errors) > 1:
            line += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise ConfigError(line) from None


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate a YAML config file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read file: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError(f"{source}: {where}invalid YAML: {problem}") from None
    return parse_config(data, source, env)
