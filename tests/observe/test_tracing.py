"""OpenTelemetry tracing: what a gateway exports to an OTLP/HTTP collector, and that it is truly opt-in.

A fake collector (``http.server`` on a free port) keeps every ``POST /v1/traces`` body; the
bodies are decoded with OpenTelemetry's own protobuf classes, so the test reads exactly what a
real collector would receive.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from conftest import MASTER_KEY, Mock, start_gateway
from hedge.cli import main as cli_main
from hedge.config import ConfigError, parse_config
from hedge.errors import UpstreamError
from hedge.observe.tracing import (
    NoopTracer,
    OtelTracer,
    exception_type,
    make_tracer,
    request_params,
    traces_url,
)

PROMPT = "zanzibar quokka marmalade"
"""Unique words: the mock echoes them into the completion, and neither may reach a span."""
CHEAP_KEY = "sk-upstream-cheap-0123456789"
PREMIUM_KEY = "sk-upstream-premium-0123456789"
COLLECTOR_SECRET = "collector-token-abcdef123456"
WRONG_KEY = "sk-wrong-client-key-987654"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


# --- a fake OTLP/HTTP collector ------------------------------------------------------------------


@dataclass
class Export:
    path: str
    content_type: str
    authorization: str
    body: bytes


class Collector:
    def __init__(self) -> None:
        self.exports: list[Export] = []
        exports = self.exports

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                exports.append(
                    Export(
                        self.path,
                        self.headers.get("content-type", ""),
                        self.headers.get("authorization", ""),
                        body,
                    )
                )
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


@dataclass
class SpanView:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    status: int
    start: int
    end: int
    attrs: dict[str, Any]
    resource: dict[str, Any] = field(repr=False)

    @classmethod
    def of(cls, span: Span, resource: dict[str, Any]) -> SpanView:
        return cls(
            span.name,
            span.kind,
            span.trace_id.hex(),
            span.span_id.hex(),
            span.parent_span_id.hex(),
            span.status.code,
            span.start_time_unix_nano,
            span.end_time_unix_nano,
            {kv.key: _value(kv.value) for kv in span.attributes},
            resource,
        )


def decode(exports: list[Export]) -> list[SpanView]:
    spans: list[SpanView] = []
    for export in exports:
        request = ExportTraceServiceRequest()
        request.ParseFromString(export.body)
        for rs in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                spans.extend(SpanView.of(s, resource) for s in ss.spans)
    return spans


# --- one traced gateway, a handful of requests --------------------------------------------------


@dataclass
class Traced:
    spans: list[SpanView]
    exports: list[Export]
    responses: dict[str, Any]
    cheap: Mock
    premium: Mock

    def request_span(self, request_id: str) -> SpanView:
        found = [s for s in self.spans if s.attrs.get("hedge.request_id") == request_id]
        assert len(found) == 1, f"{len(found)} request spans for {request_id}"
        return found[0]

    def children(self, parent: SpanView) -> list[SpanView]:
        kids = [s for s in self.spans if s.parent_span_id == parent.span_id and s.trace_id == parent.trace_id]
        return sorted(kids, key=lambda s: s.attrs.get("hedge.attempt", 0))


def traced_config(cheap: Mock, premium: Mock, collector: Collector) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "cheap": {"style": "openai", "base_url": f"{cheap.url}/v1", "api_key": CHEAP_KEY},
            "premium": {"style": "openai", "base_url": f"{premium.url}/v1", "api_key": PREMIUM_KEY},
        },
        "models": {
            "ordered": {
                "strategy": "ordered",
                "deployments": [
                    {
                        "provider": "cheap",
                        "model": "qwen2.5-72b-instruct",
                        "price": {"input": 0.35, "output": 0.4},
                    },
                    {"provider": "premium", "model": "gpt-4o", "price": {"input": 2.5, "output": 10.0}},
                ],
            },
            "embed": {
                "deployments": [
                    {"provider": "cheap", "model": "text-embedding-3-small", "price": {"input": 0.02}}
                ]
            },
        },
        "tracing": {
            "otlp_endpoint": collector.url + "/",
            "service_name": "hedge-test",
            "headers": {"authorization": f"Bearer {COLLECTOR_SECRET}"},
        },
    }


def _chat(client: httpx.Client, **extra: Any) -> dict[str, Any]:
    headers = extra.pop("headers", {})
    body = {"model": "ordered", "messages": [{"role": "user", "content": PROMPT}], **extra}
    resp = client.post("/v1/chat/completions", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    return {"headers": dict(resp.headers), "json": resp.json()}


def _stream(client: httpx.Client) -> dict[str, Any]:
    body = {
        "model": "ordered",
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    usage = None
    with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        headers = dict(resp.headers)
        for line in resp.iter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                usage = chunk.get("usage") or usage
    assert usage is not None
    return {"headers": headers, "usage": usage}


@pytest.fixture(scope="module")
def traced(cheap: Mock, premium: Mock, logs: Path) -> Iterator[Traced]:
    collector = Collector()
    # The exporter uses `requests`, which honours proxy variables; the collector is local.
    gw = start_gateway(
        traced_config(cheap, premium, collector), logs, env={"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    )
    responses: dict[str, Any] = {}
    try:
        auth = {"authorization": f"Bearer {MASTER_KEY}"}
        with httpx.Client(base_url=gw.url, headers=auth, timeout=20) as client:
            responses["plain"] = _chat(client, max_tokens=50, temperature=0.3, top_p=0.9)
            responses["stream"] = _stream(client)
            responses["traceparent"] = _chat(client, headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
            emb = client.post("/v1/embeddings", json={"model": "embed", "input": PROMPT})
            assert emb.status_code == 200, emb.text
            responses["embeddings"] = {"headers": dict(emb.headers), "json": emb.json()}
            bad = client.post(
                "/v1/chat/completions",
                json={"model": "ordered", "messages": [{"role": "user", "content": PROMPT}]},
                headers={"authorization": f"Bearer {WRONG_KEY}"},
            )
            assert bad.status_code == 401
            responses["unauthorized"] = {"headers": dict(bad.headers)}
            cheap.configure(fail_first=1, fail_status=503)
            responses["failover"] = _chat(client)
    finally:
        gw.stop()  # a clean shutdown flushes the batch of spans
        collector.close()
    assert "Application shutdown complete" in gw.log.read_text()  # a clean shutdown, which flushed
    yield Traced(decode(collector.exports), collector.exports, responses, cheap, premium)


SERVER, CLIENT = Span.SpanKind.SPAN_KIND_SERVER, Span.SpanKind.SPAN_KIND_CLIENT
ERROR, UNSET = Status.StatusCode.STATUS_CODE_ERROR, Status.StatusCode.STATUS_CODE_UNSET


def test_plain_request_span_and_its_attempt(traced: Traced) -> None:
    resp = traced.responses["plain"]
    usage = resp["json"]["usage"]
    span = traced.request_span(resp["headers"]["x-hedge-request-id"])
    assert (span.name, span.kind, span.status, span.parent_span_id) == ("chat ordered", SERVER, UNSET, "")
    a = span.attrs
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "ordered"
    assert a["gen_ai.response.model"] == "qwen2.5-72b-instruct"
    assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "openai"
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.request.temperature"] == pytest.approx(0.3)
    assert a["gen_ai.request.top_p"] == pytest.approx(0.9)
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert a["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert a["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert a["hedge.cost_usd"] > 0
    assert a["hedge.cost_usd"] == pytest.approx(float(resp["headers"]["x-hedge-cost-usd"]), abs=1e-8)
    assert a["hedge.attempts"] == 1
    assert a["hedge.route"] == resp["headers"]["x-hedge-route"] == "cheap/qwen2.5-72b-instruct=ok"
    assert a["hedge.cache_hit"] is False
    assert a["hedge.provider"] == "cheap"
    assert a["hedge.deployment"] == "cheap/qwen2.5-72b-instruct"
    assert a["http.response.status_code"] == 200
    assert "error.type" not in a
    assert span.resource["service.name"] == "hedge-test"

    [attempt] = traced.children(span)
    assert (attempt.name, attempt.kind, attempt.status) == ("chat qwen2.5-72b-instruct", CLIENT, UNSET)
    assert attempt.trace_id == span.trace_id
    b = attempt.attrs
    assert b["gen_ai.request.model"] == b["gen_ai.response.model"] == "qwen2.5-72b-instruct"
    assert b["gen_ai.provider.name"] == "openai"
    assert (b["server.address"], b["server.port"]) == ("127.0.0.1", traced.cheap.port)
    assert b["gen_ai.request.max_tokens"] == 50
    assert b["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert b["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert b["hedge.cost_usd"] == pytest.approx(a["hedge.cost_usd"])
    assert (b["hedge.provider"], b["hedge.deployment"], b["hedge.attempt"]) == (
        "cheap",
        "cheap/qwen2.5-72b-instruct",
        1,
    )
    assert span.start <= attempt.start <= attempt.end <= span.end


def test_stream_span_ends_with_the_stream(traced: Traced) -> None:
    resp = traced.responses["stream"]
    usage = resp["usage"]
    span = traced.request_span(resp["headers"]["x-hedge-request-id"])
    assert (span.name, span.kind, span.status) == ("chat ordered", SERVER, UNSET)
    # Usage, cost and time to first token are known only once the stream has run, well after the
    # handler returned: the span carries them, so it ended with the stream.
    assert span.attrs["hedge.stream"] is True
    assert span.attrs["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert span.attrs["gen_ai.usage.output_tokens"] == usage["completion_tokens"] > 0
    assert span.attrs["hedge.cost_usd"] == pytest.approx(usage["hedge_cost_usd"], abs=1e-9)
    assert span.attrs["hedge.cost_usd"] > 0
    assert span.attrs["hedge.time_to_first_token_ms"] > 0
    [attempt] = traced.children(span)
    assert (attempt.kind, attempt.status) == (CLIENT, UNSET)
    assert attempt.attrs["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert attempt.attrs["hedge.time_to_first_token_ms"] > 0
    assert span.start <= attempt.start <= attempt.end <= span.end


def test_failover_gives_two_attempt_spans_the_first_failed(traced: Traced) -> None:
    resp = traced.responses["failover"]
    assert resp["headers"]["x-hedge-attempts"] == "2"
    span = traced.request_span(resp["headers"]["x-hedge-request-id"])
    assert (span.status, span.attrs["hedge.attempts"]) == (UNSET, 2)
    assert span.attrs["hedge.route"] == resp["headers"]["x-hedge-route"]
    assert span.attrs["hedge.provider"] == "premium"
    assert span.attrs["gen_ai.response.model"] == "gpt-4o"
    assert span.attrs["gen_ai.usage.output_tokens"] == resp["json"]["usage"]["completion_tokens"]
    first, second = traced.children(span)
    assert (first.name, first.kind, first.status) == ("chat qwen2.5-72b-instruct", CLIENT, ERROR)
    assert first.attrs["error.type"] == "upstream_unavailable"
    assert first.attrs["http.response.status_code"] == 503
    assert first.attrs["server.port"] == traced.cheap.port
    assert "gen_ai.usage.output_tokens" not in first.attrs
    assert (second.name, second.kind, second.status) == ("chat gpt-4o", CLIENT, UNSET)
    assert second.attrs["server.port"] == traced.premium.port
    assert (first.attrs["hedge.attempt"], second.attrs["hedge.attempt"]) == (1, 2)
    assert first.end <= second.start


def test_traceparent_joins_the_callers_trace(traced: Traced) -> None:
    resp = traced.responses["traceparent"]
    span = traced.request_span(resp["headers"]["x-hedge-request-id"])
    assert (span.trace_id, span.parent_span_id) == (TRACE_ID, PARENT_ID)
    [attempt] = traced.children(span)
    assert attempt.trace_id == TRACE_ID
    # Requests without one start their own traces.
    plain = traced.request_span(traced.responses["plain"]["headers"]["x-hedge-request-id"])
    assert plain.trace_id != TRACE_ID


def test_embeddings_spans(traced: Traced) -> None:
    resp = traced.responses["embeddings"]
    span = traced.request_span(resp["headers"]["x-hedge-request-id"])
    assert (span.name, span.kind) == ("embeddings embed", SERVER)
    assert span.attrs["gen_ai.operation.name"] == "embeddings"
    assert span.attrs["gen_ai.usage.input_tokens"] == resp["json"]["usage"]["prompt_tokens"] > 0
    [attempt] = traced.children(span)
    assert (attempt.name, attempt.attrs["gen_ai.operation.name"]) == (
        "embeddings text-embedding-3-small",
        "embeddings",
    )


def test_refused_request_span_has_error_and_no_attempt(traced: Traced) -> None:
    span = traced.request_span(traced.responses["unauthorized"]["headers"]["x-hedge-request-id"])
    assert (span.name, span.kind, span.status) == ("chat", SERVER, ERROR)
    assert span.attrs["error.type"] == "authentication"
    assert span.attrs["http.response.status_code"] == 401
    assert traced.children(span) == []


def test_export_is_otlp_http_and_carries_no_content_or_secret(traced: Traced) -> None:
    assert traced.exports
    assert {e.path for e in traced.exports} == {"/v1/traces"}
    assert {e.content_type for e in traced.exports} == {"application/x-protobuf"}
    assert {e.authorization for e in traced.exports} == {f"Bearer {COLLECTOR_SECRET}"}
    # Every request of the fixture left exactly one request span.
    request_ids = {r["headers"]["x-hedge-request-id"] for r in traced.responses.values()}
    assert {s.attrs.get("hedge.request_id") for s in traced.spans if s.kind == SERVER} == request_ids
    everything = b"".join(e.body for e in traced.exports)
    for word in (*PROMPT.split(), MASTER_KEY, CHEAP_KEY, PREMIUM_KEY, COLLECTOR_SECRET, WRONG_KEY, "Bearer"):
        assert word.encode() not in everything, word


# --- opt-in: the extra, and the cost of tracing off ----------------------------------------------

_OTEL_SDK = ("opentelemetry.sdk", "opentelemetry.sdk.trace", "opentelemetry.sdk.trace.export")


def _minimal(**tracing: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "server": {"master_key": MASTER_KEY},
        "providers": {"p": {"style": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {"m": {"deployments": [{"provider": "p", "model": "x"}]}},
    }
    if tracing:
        config["tracing"] = tracing
    return config


def test_config_check_names_the_extra_when_opentelemetry_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config(_minimal(otlp_endpoint="http://127.0.0.1:4318/"), "hedge.yaml")
    assert config.tracing.otlp_endpoint == "http://127.0.0.1:4318"
    for name in _OTEL_SDK:
        monkeypatch.setitem(sys.modules, name, None)  # `import` now fails as if it were not installed
    with pytest.raises(ConfigError) as err:
        parse_config(_minimal(otlp_endpoint="http://127.0.0.1:4318"), "hedge.yaml")
    message = str(err.value)
    assert message.startswith("hedge.yaml: tracing.otlp_endpoint: ")
    assert "pip install 'hedge-gateway[tracing]'" in message
    assert "\n" not in message
    # Tracing off does not need the extra.
    assert parse_config(_minimal(), "hedge.yaml").tracing.otlp_endpoint is None


def test_hedge_serve_fails_with_one_clear_line_when_the_extra_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: served.append(a))
    for name in _OTEL_SDK:
        monkeypatch.setitem(sys.modules, name, None)
    path = tmp_path / "hedge.yaml"
    path.write_text(yaml.safe_dump(_minimal(otlp_endpoint="http://127.0.0.1:4318")))
    code = cli_main(["serve", "--config", str(path), "--port", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert served == []
    assert err.count("\n") == 0
    assert err.startswith(f"hedge: config error: {path}: tracing.otlp_endpoint: tracing needs OpenTelemetry")
    assert err.endswith("pip install 'hedge-gateway[tracing]'")


def test_config_rejects_a_non_http_endpoint_and_a_bad_ratio() -> None:
    with pytest.raises(ConfigError, match=r"tracing\.otlp_endpoint: must start with http"):
        parse_config(_minimal(otlp_endpoint="127.0.0.1:4318"), "hedge.yaml")
    with pytest.raises(ConfigError, match=r"tracing\.sample_ratio"):
        parse_config(_minimal(otlp_endpoint="http://127.0.0.1:4318", sample_ratio=1.5), "hedge.yaml")


def test_tracer_choice() -> None:
    assert isinstance(make_tracer(parse_config(_minimal())), NoopTracer)
    assert not NoopTracer.enabled
    tracer = make_tracer(parse_config(_minimal(otlp_endpoint="http://127.0.0.1:4318", sample_ratio=0)))
    try:
        assert isinstance(tracer, OtelTracer) and tracer.enabled
        assert tracer.endpoint == "http://127.0.0.1:4318/v1/traces"
        assert tracer.upstreams["p"].address == "127.0.0.1" and tracer.upstreams["p"].port == 9
    finally:
        assert isinstance(tracer, OtelTracer)
        tracer.provider.shutdown()


_PROBE = """
import json, sys
from starlette.testclient import TestClient
from hedge.api.app import create_app
from hedge.config import parse_config

config = parse_config(json.loads(sys.argv[1]))
app = create_app(config)
runtime = app.state.runtime
headers = {"authorization": "Bearer MASTER_KEY"}
with TestClient(app) as client:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    plain = client.post("/v1/chat/completions", json=body, headers=headers)
    streamed = client.post("/v1/chat/completions", json={**body, "stream": True}, headers=headers)
    statuses = [plain.status_code, streamed.status_code]
print(json.dumps({
    "statuses": statuses,
    "tracer": type(runtime.tracer).__name__,
    "tracer_sink": any(getattr(s, "__self__", None) is runtime.tracer for s in runtime.sinks),
    "otel": sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"),
}))
""".replace("MASTER_KEY", MASTER_KEY)


@pytest.mark.parametrize("on", [False, True], ids=["off", "on"])
def test_tracing_off_imports_no_opentelemetry_on_the_request_path(
    on: bool, cheap: Mock, tmp_path: Path
) -> None:
    """Off: no OpenTelemetry module is loaded, even after requests. On (the control): it is."""
    collector = Collector()
    try:
        config: dict[str, Any] = {
            "server": {"master_key": MASTER_KEY},
            "providers": {"p": {"style": "openai", "base_url": f"{cheap.url}/v1", "api_key": CHEAP_KEY}},
            "models": {"m": {"deployments": [{"provider": "p", "model": "x", "price": {"input": 1}}]}},
            "state": {"dir": str(tmp_path / "state")},
        }
        if on:
            config["tracing"] = {"otlp_endpoint": collector.url}
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, json.dumps(config)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"},
        )
    finally:
        collector.close()
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["statuses"] == [200, 200]
    if on:
        assert seen["tracer"] == "OtelTracer" and seen["tracer_sink"]
        assert "opentelemetry.sdk.trace" in seen["otel"]
        assert decode(collector.exports), "the control run exported no span"
    else:
        assert seen["tracer"] == "NoopTracer" and not seen["tracer_sink"]
        assert seen["otel"] == []


def test_request_params_are_numbers_only() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "secret prompt"}],
        "max_tokens": 10,
        "temperature": 1,
        "top_p": 0.5,
        "seed": 7,
        "n": 2,
        "stop": ["secret"],
        "stream": True,
    }
    assert request_params(body) == {
        "gen_ai.request.max_tokens": 10,
        "gen_ai.request.temperature": 1.0,
        "gen_ai.request.top_p": 0.5,
        "gen_ai.request.seed": 7,
        "gen_ai.request.choice.count": 2,
    }
    assert request_params({"max_completion_tokens": 5, "max_tokens": 9, "temperature": True}) == {
        "gen_ai.request.max_tokens": 5
    }


def test_error_type_is_a_code_never_a_message() -> None:
    assert exception_type(UpstreamError("provider said: secret prompt", code="upstream_timeout")) == (
        "upstream_timeout"
    )
    assert exception_type(UpstreamError("secret prompt", upstream_status=418)) == "418"
    assert exception_type(TimeoutError("secret prompt")) == "TimeoutError"
    assert traces_url("http://c:4318/") == "http://c:4318/v1/traces"
    assert traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"
