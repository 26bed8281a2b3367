"""OpenAI-compatible upstreams (OpenAI, DeepSeek, Mistral, Together, Groq, vLLM, Ollama ...).

The client already speaks this format, so translation is nearly the identity:
the body is passed through with every unknown parameter untouched, only
``model`` is replaced by the deployment's upstream model, and streams are
forced to report usage so the request can be priced. Tool call ids another
provider issued are shortened to OpenAI's 40 characters and another provider's
``extra_content`` is taken off tool calls (see :mod:`hedge.providers.ids`),
except on Google's own OpenAI-compatible endpoint, which reads it. Stream events are
forwarded as the upstream framed them; a chunk is re-encoded only when it must
change (the usage fields the client did not ask for).
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson

from hedge.config import ProviderConfig
from hedge.errors import UpstreamError
from hedge.providers import families
from hedge.providers.base import Capabilities, Translated, UpstreamRequest, Usage
from hedge.providers.errors import load_object, upstream_error
from hedge.providers.ids import portable_messages
from hedge.providers.sse import DEFAULT_MAX_EVENT_BYTES, SSETranslator, frame


class OpenAIAdapter:
    style: ClassVar[str] = "openai"
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config
        self.base_url = config.base_url
        headers = {"content-type": "application/json", "accept": "application/json"}
        if config.api_key:
            headers["authorization"] = f"Bearer {config.api_key}"
        headers.update(config.headers)
        self._headers = headers
        # Google's OpenAI-compatible endpoint reads thought signatures from ``extra_content``.
        self._keeps_extra = "generativelanguage.googleapis.com" in config.base_url

    def chat_request(
        self, body: dict[str, Any], model: str, stream: bool, want_usage: bool
    ) -> UpstreamRequest:
        out = dict(body)
        out.pop("hedge", None)
        out.pop("output_config", None)  # Anthropic's, already translated (reasoning_effort, response_format)
        out["model"] = model
        if "messages" in out:
            out["messages"] = portable_messages(out["messages"], strict=False, keep_extra=self._keeps_extra)
        if any(isinstance(m, dict) and "is_error" in m for m in out.get("messages") or ()):
            out["messages"] = [_tool_message(m) for m in out["messages"]]
        if families.openai_reasoning(model):
            _for_reasoning_model(out)
        if stream:
            options = dict(out.get("stream_options") or {})
            options["include_usage"] = True
            out["stream_options"] = options
        return UpstreamRequest(f"{self.base_url}/chat/completions", orjson.dumps(out), self._headers)

    def responses_request(self, body: dict[str, Any], model: str, stream: bool) -> UpstreamRequest:
        """A Responses API request passed through (``responses_api: true``): only ``model`` replaced."""
        out = {**body, "model": model, "stream": stream}
        out.pop("hedge", None)
        return UpstreamRequest(f"{self.base_url}/responses", orjson.dumps(out), self._headers)

    def chat_response(self, raw: bytes, request: UpstreamRequest) -> Translated:
        data = load_object(raw, self.name)
        if "choices" not in data:
            raise self._error_from_body(data, 200)
        return Translated(raw, Usage.from_openai(data.get("usage"), data.get("service_tier")))

    def stream_translator(
        self, model: str, want_usage: bool, request: UpstreamRequest | None = None
    ) -> OpenAIStream:
        return OpenAIStream(self.name, want_usage, self.config.max_event_bytes)

    def embeddings_request(self, body: dict[str, Any], model: str) -> UpstreamRequest:
        out = dict(body)
        out.pop("hedge", None)
        out["model"] = model
        return UpstreamRequest(f"{self.base_url}/embeddings", orjson.dumps(out), self._headers)

    def embeddings_response(self, raw: bytes, request: UpstreamRequest) -> Translated:
        data = load_object(raw, self.name)
        if "data" not in data:
            raise self._error_from_body(data, 200)
        return Translated(raw, Usage.from_openai(data.get("usage")))

    def error(self, status: int, headers: dict[str, str], raw: bytes) -> UpstreamError:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            return self._error_from_body(data, status, headers)
        text = raw[:300].decode("utf-8", "replace").strip() or None
        return upstream_error(self.name, status, headers, text)

    def _error_from_body(
        self, data: dict[str, Any], status: int, headers: dict[str, str] | None = None
    ) -> UpstreamError:
        err = data.get("error")
        if isinstance(err, dict):
            message = err.get("message")
            etype, code, param = err.get("type"), err.get("code"), err.get("param")
        else:
            message = err if isinstance(err, str) else None
            etype = code = param = None
        if status == 200:
            # Some "compatible" servers report errors with a 200 status: never treat that as success.
            message = f"provider '{self.name}' answered 200 without a completion: {message or data}"
            return UpstreamError(
                str(message)[:500], status=502, upstream_status=200, code="upstream_bad_response"
            )
        return upstream_error(
            self.name,
            status,
            headers or {},
            str(message) if message is not None else None,
            type=str(etype) if etype else None,
            code=str(code) if code is not None else None,
            param=str(param) if param is not None else None,
        )


class OpenAIPlatformAdapter(OpenAIAdapter):
    """OpenAI's own API (``api.openai.com``): it refuses what other OpenAI-compatible servers take
    ("Unrecognized request argument supplied: top_k"), so the capability check handles such
    parameters by policy instead of passing them on."""

    capabilities: ClassVar[Capabilities] = Capabilities(extensions=False)

    def chat_request(
        self, body: dict[str, Any], model: str, stream: bool, want_usage: bool
    ) -> UpstreamRequest:
        messages = body.get("messages")
        if isinstance(messages, list) and any(_has_cache_marker(m) for m in messages):
            # Prompt-cache breakpoints are Anthropic's; OpenAI caches prefixes by itself.
            body = {**body, "messages": [_without_cache_markers(m) for m in messages]}
        tools = body.get("tools")
        if isinstance(tools, list) and any(isinstance(t, dict) and "cache_control" in t for t in tools):
            body = {**body, "tools": [_without_cache_marker(t) for t in tools]}
        return super().chat_request(body, model, stream, want_usage)


def openai_platform(base_url: str) -> bool:
    """Whether ``base_url`` is OpenAI's own API."""
    return urlsplit(base_url).hostname == "api.openai.com"


_THINKING_EFFORT = ((2048, "low"), (8192, "medium"))
"""An Anthropic thinking budget as ``reasoning_effort``: to 2048 tokens low, to 8192 medium, else high."""


def _for_reasoning_model(out: dict[str, Any]) -> None:
    """What OpenAI's reasoning models (o-series, gpt-5) take instead: ``max_completion_tokens`` for
    ``max_tokens`` (which they refuse with 400), ``reasoning_effort`` for Anthropic's ``thinking``."""
    if "max_tokens" in out:
        limit = out.pop("max_tokens")
        out.setdefault("max_completion_tokens", limit)
    thinking = out.pop("thinking", None)
    if isinstance(thinking, dict) and "reasoning_effort" not in out:
        if thinking.get("type") == "disabled":
            return
        budget = thinking.get("budget_tokens")
        effort = "high"
        if isinstance(budget, int):
            effort = next((name for top, name in _THINKING_EFFORT if budget <= top), "high")
        out["reasoning_effort"] = effort


def _has_cache_marker(message: Any) -> bool:
    content = message.get("content") if isinstance(message, dict) else None
    return isinstance(content, list) and any(isinstance(p, dict) and "cache_control" in p for p in content)


def _without_cache_marker(tool: Any) -> Any:
    return {k: v for k, v in tool.items() if k != "cache_control"} if isinstance(tool, dict) else tool


def _without_cache_markers(message: Any) -> Any:
    if not _has_cache_marker(message):
        return message
    parts = [
        {k: v for k, v in p.items() if k != "cache_control"} if isinstance(p, dict) else p
        for p in message["content"]
    ]
    return {**message, "content": parts}


def _tool_message(message: Any) -> Any:
    """A tool message without the ``is_error`` mark (an Anthropic client's ``tool_result.is_error``,
    which OpenAI has no field for): the result says it is an error in its text instead."""
    if not isinstance(message, dict) or "is_error" not in message:
        return message
    out = {k: v for k, v in message.items() if k != "is_error"}
    if message.get("is_error") is True and isinstance(out.get("content"), str):
        out["content"] = f"Error: {out['content']}"
    return out


class OpenAIStream(SSETranslator):
    """Pass-through of an OpenAI SSE stream that captures (and hides, when unasked) usage."""

    __slots__ = ("_want_usage",)

    def __init__(
        self, provider: str, want_usage: bool, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    ) -> None:
        super().__init__(provider, max_event_bytes)
        self._want_usage = want_usage

    def _handle(self, events: list[Any]) -> list[bytes]:
        out: list[bytes] = []
        for ev in events:
            payload: bytes = ev.data
            if payload == b"[DONE]":
                self.finished = self.ended = True
                continue
            # Slices compared rather than startswith(): bytes.startswith and find parse their
            # arguments the slow old way (hundreds of instructions), and this runs for every chunk.
            if ev.event == b"error" or payload[:8] == b'{"error"':
                raise self._stream_error(payload)
            at = payload.find(b'"usage"')
            if at < 0 or (self._want_usage and payload[at : at + 12] == b'"usage":null'):
                out.append(ev.raw if ev.event is None else b"data: " + payload + b"\n\n")
                continue
            forced = at > 0 and payload[at - 1 : at + 12] == b',"usage":null'
            if forced and payload.find(b'"usage"', at + 1) < 0:
                # The usage we forced, as null on an ordinary chunk: cut it out without a JSON round trip.
                out.append(b"data: " + payload[: at - 1] + payload[at + 12 :] + b"\n\n")
                continue
            chunk = load_object(payload, self._provider)
            if "error" in chunk and "choices" not in chunk:
                raise self._stream_error(payload)
            usage = chunk.get("usage")
            if isinstance(usage, dict):
                self.usage = Usage.from_openai(usage, chunk.get("service_tier"))
                if not chunk.get("choices"):
                    self.usage_chunk = chunk
                    continue
                # A chunk carrying both content and usage: send the content, keep the usage for the end.
                self.usage_chunk = {**chunk, "choices": []}
            if not self._want_usage:
                chunk.pop("usage", None)
                out.append(frame(chunk))
            elif isinstance(usage, dict):
                chunk["usage"] = None
                out.append(frame(chunk))
            else:
                out.append(ev.raw if ev.event is None else b"data: " + payload + b"\n\n")
        return out

    def _stream_error(self, payload: bytes) -> UpstreamError:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            data = {}
        err = data.get("error") if isinstance(data, dict) else None
        message = err.get("message") if isinstance(err, dict) else str(err or payload[:200])
        return UpstreamError(
            f"provider '{self._provider}' failed mid-stream: {message}",
            status=502,
            code="upstream_stream_error",
        )
