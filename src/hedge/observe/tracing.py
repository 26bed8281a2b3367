"""OpenTelemetry tracing, opt-in: one SERVER span per request, one CLIENT span per upstream attempt.

Off unless ``tracing.otlp_endpoint`` is set. Off, the runtime holds a :class:`NoopTracer`: the
request path checks its ``enabled`` attribute and does nothing else, and no OpenTelemetry
module is imported at all. On (``pip install 'hedge-gateway[tracing]'``), an :class:`OtelTracer`
exports spans in batches, from a background thread, over OTLP/HTTP (protobuf) to
``{otlp_endpoint}/v1/traces``; closing the runtime flushes what is left.

Spans follow the OpenTelemetry GenAI semantic conventions (``gen_ai.*``, ``server.*``,
``error.type``) plus ``hedge.*`` attributes. They are built from the request record, the
deployment and the request's sampling parameters only: never a prompt, a completion, a key or
a header. The one header read is the caller's W3C ``traceparent`` (and ``tracestate``), so the
request span joins the caller's trace.

The request span ends when the request's record is final: :meth:`Tracer.finish` is a record
sink, so a stream's span ends when the stream does, not when the handler returns. A streaming
attempt's span likewise stays open until then, and carries the stream's usage.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from hedge import __version__
from hedge.config import ConfigError
from hedge.errors import HedgeError, UpstreamError
from hedge.extras import missing_extra
from hedge.observe.metrics import error_kind
from hedge.record import RequestRecord, render_route

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span

    from hedge.config import Config, ProviderConfig, TracingConfig
    from hedge.routing.deployment import Deployment

T = TypeVar("T")

log = logging.getLogger("hedge.tracing")

GEN_AI_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}
"""``gen_ai.provider.name`` (and the older ``gen_ai.system``) by wire format."""

_SECRET_HEADER = re.compile(r"(?i)auth|key|token|secret|cookie")


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a collector's base URL."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


def header_secrets(config: TracingConfig) -> list[str]:
    """Credentials among the export headers, for log redaction."""
    return [v for k, v in config.headers.items() if _SECRET_HEADER.search(k)]


class Tracer:
    """The facade the request path talks to. This base is tracing off: every method does nothing."""

    enabled: ClassVar[bool] = False

    def start_request(self, record: RequestRecord, headers: Mapping[str, str]) -> RequestTrace | None:
        """A request has arrived: open its span (joining the caller's trace), or None."""
        return None

    def finish(self, record: RequestRecord) -> None:
        """Record sink: the request is over; end its spans."""

    async def close(self) -> None:
        """Export what is left and stop."""


class NoopTracer(Tracer):
    """Tracing off: nothing is created, imported or exported."""


def make_tracer(config: Config) -> Tracer:
    """An :class:`OtelTracer` when ``tracing.otlp_endpoint`` is set, else a :class:`NoopTracer`."""
    if config.tracing.otlp_endpoint is None:
        return NoopTracer()
    problem = missing_extra()
    if problem is not None:
        raise ConfigError(f"tracing.otlp_endpoint: {problem}")
    return OtelTracer(config.tracing, config.providers)


@dataclass(frozen=True, slots=True)
class Upstream:
    """What attempt spans say about a provider: its GenAI provider name and its address."""

    system: str
    address: str
    port: int


def upstream_of(provider: ProviderConfig) -> Upstream:
    url = urlsplit(provider.base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    return Upstream(GEN_AI_PROVIDER.get(provider.style, provider.style), url.hostname or "", port)


class OtelTracer(Tracer):
    """Tracing on: an SDK tracer provider of our own (the global one is left alone)."""

    enabled: ClassVar[bool] = True

    def __init__(self, config: TracingConfig, providers: Mapping[str, ProviderConfig]) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        assert config.otlp_endpoint is not None
        self.endpoint = traces_url(config.otlp_endpoint)
        resource = Resource.create({"service.name": config.service_name, "service.version": __version__})
        sampler = ParentBased(TraceIdRatioBased(config.sample_ratio))
        self.provider: TracerProvider = TracerProvider(resource=resource, sampler=sampler)
        exporter = OTLPSpanExporter(endpoint=self.endpoint, headers=dict(config.headers))
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("hedge", __version__)
        self.propagator = TraceContextTextMapPropagator()
        self.upstreams = {name: upstream_of(p) for name, p in providers.items()}
        self._open: dict[str, RequestTrace] = {}

    def start_request(self, record: RequestRecord, headers: Mapping[str, str]) -> RequestTrace | None:
        from opentelemetry.trace import SpanKind

        try:
            parent = self.propagator.extract(headers)
            span = self.tracer.start_span(
                record.endpoint,
                context=parent,
                kind=SpanKind.SERVER,
                attributes={"gen_ai.operation.name": record.endpoint, "hedge.request_id": record.request_id},
            )
        except Exception:  # tracing must never fail a request
            log.exception("could not start a request span")
            return None
        trace = RequestTrace(self, record, span)
        self._open[record.request_id] = trace
        return trace

    def finish(self, record: RequestRecord) -> None:
        trace = self._open.pop(record.request_id, None)
        if trace is not None:
            trace.end(record)

    async def close(self) -> None:
        import asyncio

        for trace in list(self._open.values()):  # requests cut off by the shutdown
            trace.end(trace.record)
        self._open.clear()
        await asyncio.to_thread(self.provider.shutdown)


class RequestTrace:
    """One request's spans: the SERVER span, and a streaming attempt's CLIENT span until the stream ends."""

    __slots__ = ("_context", "_params", "_pending", "record", "span", "tracer")

    def __init__(self, tracer: OtelTracer, record: RequestRecord, span: Span) -> None:
        self.tracer = tracer
        self.record = record
        self.span = span
        self._context: Context | None = None
        self._params: dict[str, Any] = {}
        self._pending: Span | None = None

    def routed(self, body: Mapping[str, Any]) -> None:
        """The request is valid and routed: note its sampling parameters (never its content)."""
        self._params = request_params(body)

    async def attempt(self, dep: Deployment, sending: Awaitable[T]) -> T:
        """Await one upstream attempt inside its CLIENT span, a child of the request span."""
        if not self.span.is_recording():
            return await sending
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

        if self._context is None:
            self._context = set_span_in_context(self.span)
        rec = self.record
        upstream = self.tracer.upstreams.get(dep.provider)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": rec.endpoint,
            "gen_ai.request.model": dep.model,
            "hedge.provider": dep.provider,
            "hedge.deployment": dep.id,
            "hedge.attempt": rec.attempts,
            **self._params,
        }
        if upstream is not None:
            attributes["gen_ai.provider.name"] = attributes["gen_ai.system"] = upstream.system
            attributes["server.address"] = upstream.address
            attributes["server.port"] = upstream.port
        span = self.tracer.tracer.start_span(
            f"{rec.endpoint} {dep.model}", context=self._context, kind=SpanKind.CLIENT, attributes=attributes
        )
        try:
            result = await sending
        except BaseException as exc:
            kind = exception_type(exc)
            span.set_attribute("error.type", kind)
            if isinstance(exc, UpstreamError) and exc.upstream_status is not None:
                span.set_attribute("http.response.status_code", exc.upstream_status)
            span.set_status(Status(StatusCode.ERROR, kind))
            span.end()
            raise
        if rec.stream:
            self._pending = span  # the stream is still running: its span ends with the request
        else:
            _set_outcome(span, rec)
            span.end()
        return result

    def end(self, record: RequestRecord) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            _set_outcome(pending, record)
            pending.end()
        span = self.span
        if span.is_recording():
            if record.alias:
                span.update_name(f"{record.endpoint} {record.alias}")
                span.set_attribute("gen_ai.request.model", record.alias)
            for key, value in self._params.items():
                span.set_attribute(key, value)
            _set_outcome(span, record)
            upstream = self.tracer.upstreams.get(record.provider or "")
            if upstream is not None:
                span.set_attribute("gen_ai.provider.name", upstream.system)
                span.set_attribute("gen_ai.system", upstream.system)
            span.set_attribute("http.response.status_code", record.status)
            span.set_attribute("hedge.attempts", record.attempts)
            span.set_attribute("hedge.route", render_route(record.route))
            span.set_attribute("hedge.cache_hit", record.cache_hit)
            span.set_attribute("hedge.stream", record.stream)
            if record.provider:
                span.set_attribute("hedge.provider", record.provider)
                if record.model:
                    span.set_attribute("hedge.deployment", f"{record.provider}/{record.model}")
            if record.baseline_cost_usd is not None:
                span.set_attribute("hedge.baseline_cost_usd", record.baseline_cost_usd)
            if record.dropped_params:
                span.set_attribute("hedge.dropped_params", list(record.dropped_params))
        span.end()


def _set_outcome(span: Span, rec: RequestRecord) -> None:
    """Usage, cost, time to first token and success or failure, from the (final) record."""
    if not span.is_recording():
        return
    from opentelemetry.trace import Status, StatusCode

    if rec.model:
        span.set_attribute("gen_ai.response.model", rec.model)
    if rec.status < 400 or rec.prompt_tokens or rec.completion_tokens:
        span.set_attribute("gen_ai.usage.input_tokens", rec.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", rec.completion_tokens)
    span.set_attribute("hedge.cost_usd", rec.cost_usd)
    if rec.ttft_ms is not None:
        span.set_attribute("hedge.time_to_first_token_ms", rec.ttft_ms)
    if rec.status >= 400:
        kind = error_kind(rec)
        span.set_attribute("error.type", kind)
        span.set_status(Status(StatusCode.ERROR, kind))


def request_params(body: Mapping[str, Any]) -> dict[str, Any]:
    """The GenAI ``gen_ai.request.*`` attributes of a chat or embeddings body (numbers only)."""
    out: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        out["gen_ai.request.max_tokens"] = max_tokens
    for key in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
        value = body.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[f"gen_ai.request.{key}"] = float(value)
    seed = body.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        out["gen_ai.request.seed"] = seed
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n != 1:
        out["gen_ai.request.choice.count"] = n
    return out


def exception_type(exc: BaseException) -> str:
    """A short, bounded ``error.type`` for a failed attempt (never the message)."""
    if isinstance(exc, UpstreamError):
        if exc.code:
            return exc.code
        if exc.upstream_status is not None:
            return str(exc.upstream_status)
    if isinstance(exc, HedgeError) and exc.code:
        return exc.code
    return type(exc).__qualname__
