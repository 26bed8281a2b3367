"""Google Gemini (the Gemini Developer API's REST format, ``v1beta``).

Requests go to ``{base_url}/v1beta/models/{model}:generateContent``,
``:streamGenerateContent?alt=sse`` and ``:batchEmbedContents``, where
``base_url`` is what the google-genai SDK takes (e.g.
``https://generativelanguage.googleapis.com``); a ``base_url`` that already
ends in ``/v1beta`` (or ``/v1``, ``/v1alpha``) is used as is.

Translation, OpenAI chat -> Gemini:

* system/developer messages -> ``systemInstruction``; user -> role ``user``,
  assistant -> role ``model``; consecutive contents of one role are merged
  (Gemini wants the turns to alternate and parallel tool results in one turn);
* assistant ``tool_calls`` -> ``functionCall`` parts; ``tool`` messages ->
  ``functionResponse`` parts named after the call they answer (looked up by
  ``tool_call_id`` in the earlier assistant messages) with the result as
  ``{"content": <parsed JSON, or the text>}``;
* tools -> ``functionDeclarations`` with ``parametersJsonSchema`` (full JSON
  Schema, as OpenAI clients write it; the older ``parameters`` field takes only
  an OpenAPI subset and rejects ``$ref``, ``const``, type lists ...), and JSON
  schema output -> ``responseJsonSchema`` for the same reason;
* images: data URLs -> ``inlineData``; other URLs -> ``fileData`` (best effort).

Gemini returns no tool call ids, so ids are derived deterministically from the
response (``call_`` and 24 hex digits: valid for every provider). Gemini 3 models
sign their function calls (``thoughtSignature``) and reject a replayed call
without its signature; the signature goes to the client as the tool call's
``extra_content.google.thought_signature`` and into the process's memory keyed by
the id (see :mod:`hedge.providers.signatures`), and is put back on the part when
the conversation comes back: from the field, else from the memory, else (an id of
the older ``call_<hash>~<signature>`` form) from the id. A call with no signature
(e.g. from a conversation begun on another provider) gets Google's documented
``skip_thought_signature_validator`` sentinel, for Gemini 3 and later only.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import math
import mimetypes
import re
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import unquote_to_bytes

import orjson

from hedge.config import ProviderConfig
from hedge.errors import InvalidRequest, UpstreamError
from hedge.providers import families
from hedge.providers.base import Capabilities, Translated, UpstreamRequest, Usage, thinking_requested
from hedge.providers.errors import load_object, upstream_error
from hedge.providers.signatures import SIGNATURES
from hedge.providers.sse import DEFAULT_MAX_EVENT_BYTES, SSETranslator, frame

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}
_FILTERED = ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED", "SPII", "MODEL_ARMOR", "JAILBREAK")
"""Finish reasons containing one of these mean the output was filtered: ``content_filter``."""
_BROKEN_CALL = frozenset(
    {
        "MALFORMED_FUNCTION_CALL",
        "UNEXPECTED_TOOL_CALL",
        "TOO_MANY_TOOL_CALLS",
        "MISSING_THOUGHT_SIGNATURE",
        "MALFORMED_RESPONSE",
    }
)
"""Finish reasons of a generation that went wrong: whatever came before them is unusable (a
preamble to a call that never came), so the attempt fails and the request fails over."""
_SIG_SEP = "~"
"""Separated a tool call id from the thought signature it carried in ids issued before signatures
moved out of them; such ids are still read."""
SKIP_SIGNATURE = "skip_thought_signature_validator"
_VERSIONED = re.compile(r"/v1(alpha|beta)?$")
_SIGNED_MODEL = re.compile(r"(?:^|/)gemini-(\d+)")
_DATA_URL = re.compile(r"^data:([^;,]*)((?:;[^;,]*)*),(.*)$", re.DOTALL)


@dataclass(slots=True, frozen=True)
class _Pending:
    """What a translated response needs from its request but cannot find in the upstream body.

    Built by ``*_request`` and carried to ``*_response`` in ``UpstreamRequest.context``: the
    OpenAI answer needs the requested model, ``encoding_format`` and (for embeddings) a token
    count that Gemini does not return.
    """

    model: str
    base64: bool = False
    estimated_tokens: int = 0
    one_call: bool = False
    """``parallel_tool_calls: false``: only the first function call of a candidate reaches the client."""
    reasoning: bool = False
    """The client asked for reasoning: thought summaries reach it as ``reasoning_content``."""


class GeminiAdapter:
    style: ClassVar[str] = "gemini"
    capabilities: ClassVar[Capabilities] = Capabilities(
        # Gemini may call several functions at once and has no switch to stop it: ``parallel_tool_calls:
        # false`` is emulated (the first call is kept), as LangChain's ``with_structured_output`` sends it.
        # Gemini has logprobs (responseLogprobs), but they are not translated yet.
        logprobs=False,
        logit_bias=False,
        max_stop_sequences=5,
        # generateContent has no service tier: only the ones meaning "the usual" are honoured.
        service_tiers=frozenset({"auto", "default"}),
    )

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config
        base = config.base_url.rstrip("/")
        self.root = base if _VERSIONED.search(base) else f"{base}/v1beta"
        headers = {"content-type": "application/json"}
        if config.api_key:
            headers["x-goog-api-key"] = config.api_key
        headers.update(config.headers)
        self._headers = headers

    def url(self, model: str, method: str) -> str:
        if model.startswith(("models/", "tunedModels/")):
            return f"{self.root}/{model}:{method}"
        return f"{self.root}/models/{model}:{method}"

    # -- chat -------------------------------------------------------------------------------------

    def chat_request(
        self, body: dict[str, Any], model: str, stream: bool, want_usage: bool
    ) -> UpstreamRequest:
        out = translate_chat(body, model)
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        pending = _Pending(
            model, one_call=body.get("parallel_tool_calls") is False, reasoning=thinking_requested(body)
        )
        return UpstreamRequest(self.url(model, method), orjson.dumps(out), self._headers, context=pending)

    def chat_response(self, raw: bytes, request: UpstreamRequest) -> Translated:
        data = load_object(raw, self.name)
        if "candidates" not in data and not _block_reason(data):
            raise self._bad_body(data)
        pending = _pending(request)
        model = str(data.get("modelVersion") or pending.model)
        response_id = str(data.get("responseId") or "")
        candidates = [c for c in data.get("candidates") or [] if isinstance(c, dict)]
        choices: list[dict[str, Any]] = []
        for pos, cand in enumerate(candidates):
            index = _int(cand.get("index"), pos)
            text, calls, thoughts = _candidate_output(cand, response_id, index)
            failed = failed_generation(cand, bool(text or calls) or _has_parts(cand))
            if failed is not None:
                raise failed_error(self.name, failed, cand)
            if pending.one_call:
                calls = calls[:1]
            message: dict[str, Any] = {
                "role": "assistant",
                "content": text if text or not calls else None,
                "refusal": None,
            }
            if calls:
                message["tool_calls"] = calls
            if thoughts and pending.reasoning:
                message["reasoning_content"] = thoughts
            finish = finish_reason(cand.get("finishReason"), bool(calls))
            choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": finish})
        if not choices:
            # The prompt itself was blocked: no candidate at all.
            message = {"role": "assistant", "content": "", "refusal": None}
            choices.append(
                {"index": 0, "message": message, "logprobs": None, "finish_reason": "content_filter"}
            )
        usage = usage_of(data.get("usageMetadata"))
        out: dict[str, Any] = {
            "id": _completion_id(response_id),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
        }
        if usage is not None:
            out["usage"] = usage_dict(usage, data.get("usageMetadata"))
        return Translated(orjson.dumps(out), usage)

    def stream_translator(
        self, model: str, want_usage: bool, request: UpstreamRequest | None = None
    ) -> GeminiStream:
        pending = _pending(request) if request is not None else _Pending(model)
        return GeminiStream(
            self.name, model, want_usage, self.config.max_event_bytes, pending.one_call, pending.reasoning
        )

    # -- embeddings -------------------------------------------------------------------------------

    def embeddings_request(self, body: dict[str, Any], model: str) -> UpstreamRequest:
        """Always ``batchEmbedContents`` (one shape for one or many inputs, as the google-genai SDK does).

        Gemini reports no token usage for embeddings, so the usage given back
        is an estimate: one token per whitespace-separated word of the input.
        """
        raw_input = body.get("input")
        texts = [raw_input] if isinstance(raw_input, str) else raw_input
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise InvalidRequest(
                "This provider (Gemini) embeds text only: 'input' must be a string or an array of strings.",
                param="input",
                code="invalid_value",
            )
        name = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
        dims = body.get("dimensions")
        requests: list[dict[str, Any]] = []
        for text in texts:
            item: dict[str, Any] = {"model": name, "content": {"parts": [{"text": text}]}}
            if isinstance(dims, int) and not isinstance(dims, bool):
                item["outputDimensionality"] = dims
            requests.append(item)
        pending = _Pending(
            model,
            base64=body.get("encoding_format") == "base64",
            estimated_tokens=sum(len(t.split()) for t in texts),
        )
        return UpstreamRequest(
            self.url(model, "batchEmbedContents"),
            orjson.dumps({"requests": requests}),
            self._headers,
            context=pending,
        )

    def embeddings_response(self, raw: bytes, request: UpstreamRequest) -> Translated:
        """Translate ``{"embeddings": [{"values": [...]}]}`` (or ``embedContent``'s ``{"embedding": ...}``).

        ``encoding_format: base64`` is honoured like OpenAI does it (float32,
        little-endian, base64); the usage is the word-count estimate made by
        :meth:`embeddings_request` unless Gemini reports ``usageMetadata``.
        """
        data = load_object(raw, self.name)
        items = data.get("embeddings")
        if items is None and isinstance(data.get("embedding"), dict):
            items = [data["embedding"]]
        if not isinstance(items, list):
            raise self._bad_body(data)
        pending = _pending(request)
        out_data: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            values = [float(v) for v in (item.get("values") or [])] if isinstance(item, dict) else []
            vector: Any = values
            if pending.base64:
                vector = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
            out_data.append({"object": "embedding", "index": i, "embedding": vector})
        meta = data.get("usageMetadata")
        tokens = pending.estimated_tokens
        if isinstance(meta, dict) and meta.get("promptTokenCount") is not None:
            tokens = _int(meta.get("promptTokenCount"), tokens)
        out = {
            "object": "list",
            "data": out_data,
            "model": pending.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return Translated(orjson.dumps(out), Usage(prompt_tokens=tokens))

    # -- errors -----------------------------------------------------------------------------------

    def error(self, status: int, headers: dict[str, str], raw: bytes) -> UpstreamError:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, list) and len(data) == 1:
            data = data[0]  # streamGenerateContent without alt=sse wraps everything in an array
        err = data.get("error") if isinstance(data, dict) else None
        if not isinstance(err, dict):
            text = raw[:300].decode("utf-8", "replace").strip() or None
            return upstream_error(self.name, status, headers, text)
        return google_error(self.name, status, headers, err)

    def _bad_body(self, data: dict[str, Any]) -> UpstreamError:
        err = data.get("error")
        detail = err.get("message") if isinstance(err, dict) else None
        message = f"provider '{self.name}' answered 200 without a result: {detail or str(data)[:200]}"
        return UpstreamError(message, status=502, upstream_status=200, code="upstream_bad_response")


def google_error(provider: str, status: int, headers: dict[str, str], err: dict[str, Any]) -> UpstreamError:
    """Apply the shared status policy to Google's ``{"code", "message", "status", "details"}``."""
    message = err.get("message")
    gstatus = err.get("status")
    details = err.get("details")
    headers = dict(headers)
    reasons: set[str] = set()
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("RetryInfo") and "retry-after" not in {k.lower() for k in headers}:
            delay = str(detail.get("retryDelay") or "").removesuffix("s")
            with contextlib.suppress(ValueError, OverflowError):
                # Round up: a client that comes back after 34 s of a 34.4 s delay is refused again.
                headers["retry-after"] = str(math.ceil(float(delay)))
        elif kind.endswith("ErrorInfo") and detail.get("reason"):
            reasons.add(str(detail["reason"]))
    # Google answers a wrong API key with 400 INVALID_ARGUMENT: the gateway's credentials, not the request.
    policy_status = 401 if "API_KEY_INVALID" in reasons or gstatus == "UNAUTHENTICATED" else status
    exc = upstream_error(
        provider,
        policy_status,
        headers,
        str(message) if message is not None else None,
        code=str(gstatus).lower() if gstatus and policy_status != 429 else None,
    )
    exc.upstream_status = status
    return exc


# -- request translation ----------------------------------------------------------------------------


def translate_chat(body: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI chat body as a Gemini ``GenerateContentRequest`` (``body`` is not modified)."""
    messages = body.get("messages") or []
    system, contents = _contents(messages, _signs_calls(model))
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        config = _tool_config(body.get("tool_choice"))
        if config:
            out["toolConfig"] = config
    generation = _generation_config(body, model)
    if generation:
        out["generationConfig"] = generation
    return out


def _signs_calls(model: str) -> bool:
    match = _SIGNED_MODEL.search(model)
    return match is not None and int(match.group(1)) >= 3


def _contents(messages: list[Any], signs_calls: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        if role in ("system", "developer"):
            text = _text(m.get("content"))
            if text:
                system.append({"text": text})
        elif role == "assistant":
            _append(contents, "model", _assistant_parts(m, call_names, signs_calls))
        elif role == "tool":
            call_id = m.get("tool_call_id")
            name = call_names.get(call_id) if isinstance(call_id, str) else None
            name = name or m.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequest(
                    f"messages[{i}]: no earlier assistant message has a tool call with id {call_id!r}.",
                    param=f"messages[{i}].tool_call_id",
                    code="invalid_value",
                )
            _append(contents, "user", [_function_response(name, m.get("content"), m.get("is_error") is True)])
        elif role == "function":
            name = m.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequest(
                    f"messages[{i}]: a 'function' message needs a 'name'.", param=f"messages[{i}].name"
                )
            _append(contents, "user", [_function_response(name, m.get("content"))])
        else:
            _append(contents, "user", _user_parts(m.get("content"), i))
    return system, contents


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _assistant_parts(
    message: dict[str, Any], call_names: dict[str, str], signs_calls: bool
) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = _text(message.get("content"))
    if text:
        parts.append({"text": text})
    calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        calls.append({"function": legacy})
    first_call = True
    for call in calls:
        fn = call.get("function")
        if not isinstance(fn, dict):
            fn = {}
        name = str(fn.get("name") or "")
        call_id = call.get("id")
        if isinstance(call_id, str):
            call_names[call_id] = name
        part: dict[str, Any] = {"functionCall": {"name": name, "args": _arguments(fn.get("arguments"))}}
        signature = _signature_of(call)
        if signature:
            part["thoughtSignature"] = signature
        elif signs_calls and first_call:
            part["thoughtSignature"] = SKIP_SIGNATURE
        first_call = False
        parts.append(part)
    return parts


def _signature_of(call: dict[str, Any]) -> str:
    """The thought signature a tool call came back with: its ``extra_content``, the memory, or an
    id of the older ``call_<hash>~<signature>`` form ("" for none)."""
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    if isinstance(signature, str) and signature:
        return signature
    call_id = call.get("id")
    if not isinstance(call_id, str):
        return ""
    return SIGNATURES.recall(call_id) or call_id.partition(_SIG_SEP)[2]


def _arguments(raw: Any) -> dict[str, Any]:
    """Gemini wants the arguments as an object; a string that is not a JSON object is kept under a key."""
    if isinstance(raw, dict):
        return raw
    if raw is None or raw == "":
        return {}
    try:
        parsed = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    except orjson.JSONDecodeError:
        parsed = raw
    return parsed if isinstance(parsed, dict) else {"arguments": parsed}


def _function_response(name: str, content: Any, is_error: bool = False) -> dict[str, Any]:
    """A tool result as Gemini's ``functionResponse``; a failed call (an Anthropic client's
    ``tool_result.is_error``) under ``error``, as Gemini's function-calling guide shows."""
    text = _text(content)
    result: Any = text
    with contextlib.suppress(orjson.JSONDecodeError):
        result = orjson.loads(text)
    return {"functionResponse": {"name": name, "response": {"error" if is_error else "content": result}}}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text") or "")
            for p in content
            if isinstance(p, dict) and p.get("type") in ("text", "input_text", "output_text")
        )
    return ""


def _user_parts(content: Any, index: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        return [{"text": ""}] if content is None else [{"text": str(content)}]
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("text", "input_text"):
            parts.append({"text": str(part.get("text") or "")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str):
                parts.append(_media_part(url, "image/jpeg"))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            fmt = str(audio.get("format") or "wav")
            parts.append({"inlineData": {"mimeType": f"audio/{fmt}", "data": str(audio.get("data") or "")}})
        elif kind == "file":
            file = part.get("file") or {}
            data = str(file.get("file_data") or "")
            guessed = mimetypes.guess_type(str(file.get("filename") or ""))[0] or "application/pdf"
            if data.startswith("data:"):
                parts.append(_media_part(data, guessed))
            elif data:
                parts.append({"inlineData": {"mimeType": guessed, "data": data}})
            else:
                raise InvalidRequest(
                    "This provider (Gemini) needs files inline ('file_data'); 'file_id' is not supported.",
                    param=f"messages[{index}].content[{j}].file",
                )
        else:
            raise InvalidRequest(
                f"This provider (Gemini) does not support content parts of type {kind!r}.",
                param=f"messages[{index}].content[{j}].type",
                code="invalid_value",
            )
    return parts


def _media_part(url: str, default_mime: str) -> dict[str, Any]:
    match = _DATA_URL.match(url)
    if match:
        mime, params, payload = match.group(1) or default_mime, match.group(2), match.group(3)
        if ";base64" not in params:
            payload = base64.b64encode(unquote_to_bytes(payload)).decode()
        return {"inlineData": {"mimeType": mime, "data": payload}}
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or default_mime
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _tools(tools: Any) -> list[dict[str, Any]]:
    declarations: list[dict[str, Any]] = []
    for tool in tools or []:
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        fn = tool.get("function")
        if not isinstance(fn, dict) or not fn.get("name"):
            continue
        decl: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description"):
            decl["description"] = fn["description"]
        if isinstance(fn.get("parameters"), dict):
            decl["parametersJsonSchema"] = fn["parameters"]
        declarations.append(decl)
    return [{"functionDeclarations": declarations}] if declarations else []


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice in ("auto", "none", "required"):
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]
        return {"functionCallingConfig": {"mode": mode}}
    if isinstance(choice, dict):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if isinstance(name, str):
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return None


_SIMPLE = {
    "temperature": "temperature",
    "top_p": "topP",
    "n": "candidateCount",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "top_k": "topK",
}

_BUDGETS = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}
"""``reasoning_effort`` as a Gemini 2.5 ``thinkingBudget`` (Flash takes at most 24576, Pro 32768)."""
_LEVELS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}
_PRO_LEVELS = {"minimal": "low", "low": "low", "medium": "high", "high": "high", "xhigh": "high"}
"""Gemini 3 ``thinkingLevel``: Flash has all four levels; Pro only ``low`` and ``high`` (medium rounds up)."""


def thinking_config(body: dict[str, Any], model: str) -> dict[str, Any] | None:
    """``reasoning_effort`` (or Anthropic's ``thinking``) as Gemini's ``thinkingConfig`` for ``model``.

    2.5 models take a token budget (0 turns thinking off where the model allows it, which the
    capability check has made sure of), Gemini 3 a level. Thought summaries (``includeThoughts``)
    are asked for whenever the model thinks: they reach the client as ``reasoning_content``."""
    kind = families.gemini_thinking(model)
    effort = body.get("reasoning_effort")
    thinking = body.get("thinking")
    if kind == "none" or (effort is None and not isinstance(thinking, dict)):
        return None
    config: dict[str, Any] = {}
    if isinstance(effort, str):
        if effort == "none":
            return {"thinkingBudget": 0} if kind == "budget" else None
        if kind == "level":
            levels = _PRO_LEVELS if families.gemini_pro(model) else _LEVELS
            config["thinkingLevel"] = levels.get(effort, "high")
        else:
            limit = 32768 if kind == "budget-pro" else 24576
            config["thinkingBudget"] = min(_BUDGETS.get(effort, 8192), limit)
    elif isinstance(thinking, dict):
        if thinking.get("type") == "disabled":
            return {"thinkingBudget": 0} if kind == "budget" else None
        budget = thinking.get("budget_tokens")
        if kind == "level":
            config["thinkingLevel"] = "low" if isinstance(budget, int) and budget <= 4096 else "high"
        else:
            config["thinkingBudget"] = budget if isinstance(budget, int) and budget > 0 else -1
    config["includeThoughts"] = True
    return config


def _generation_config(body: dict[str, Any], model: str = "") -> dict[str, Any]:
    config: dict[str, Any] = {}
    thinking = thinking_config(body, model)
    if thinking:
        config["thinkingConfig"] = thinking
    limit = body.get("max_completion_tokens")
    if limit is None:
        limit = body.get("max_tokens")
    if limit is not None:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        config["stopSequences"] = list(stop)
    for key, name in _SIMPLE.items():
        if body.get(key) is not None:
            config[name] = body[key]
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
    if kind == "json_schema" and isinstance(fmt, dict):
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            config["responseJsonSchema"] = schema
    return config


# -- response translation ---------------------------------------------------------------------------


def finish_reason(reason: Any, has_calls: bool) -> str | None:
    """Gemini's ``finishReason`` in OpenAI's terms (``None`` while the candidate is unfinished)."""
    if not reason:
        return None
    reason = str(reason)
    if reason in _FINISH:
        return "tool_calls" if has_calls and reason == "STOP" else _FINISH[reason]
    if any(marker in reason for marker in _FILTERED):
        return "content_filter"
    return "tool_calls" if has_calls else "stop"


def failed_generation(cand: dict[str, Any], has_output: bool) -> str | None:
    """The finish reason if it says the generation failed (see the README's table), else None.

    A broken tool call always fails; any other reason that is neither a normal end, a length cut
    nor a filter (``OTHER``, ``LANGUAGE``, ``FINISH_REASON_UNSPECIFIED``, reasons added later)
    fails when the candidate has no output at all, and so does ``STOP`` with no ``parts`` (Gemini's
    empty answer; an answer cut to ``""`` by a stop sequence still has its empty text part).
    """
    reason = cand.get("finishReason")
    if not reason:
        return None
    reason = str(reason)
    if reason in _BROKEN_CALL:
        return reason
    if reason == "MAX_TOKENS" or any(marker in reason for marker in _FILTERED):
        return None
    return None if has_output else reason


def failed_error(provider: str, reason: str, cand: dict[str, Any]) -> UpstreamError:
    """A failed generation as a retryable 502 that does not count against the deployment's health
    (the model misbehaved once; the next try, here or elsewhere, usually works)."""
    detail = cand.get("finishMessage")
    more = f": {str(detail)[:200]}" if detail else ""
    return UpstreamError(
        f"provider '{provider}' ended the generation with {reason} and no usable answer{more}",
        status=502,
        upstream_status=200,
        code="upstream_failed_generation",
        blame=False,
    )


def _has_parts(cand: dict[str, Any]) -> bool:
    content = cand.get("content")
    return isinstance(content, dict) and bool(content.get("parts"))


def usage_of(meta: Any) -> Usage | None:
    """``usageMetadata`` as :class:`Usage`; thinking tokens are billed as output, so count as completion."""
    if not isinstance(meta, dict):
        return None
    return Usage(
        prompt_tokens=_int(meta.get("promptTokenCount"), 0) + _int(meta.get("toolUsePromptTokenCount"), 0),
        completion_tokens=_int(meta.get("candidatesTokenCount"), 0) + _int(meta.get("thoughtsTokenCount"), 0),
        cached_tokens=_int(meta.get("cachedContentTokenCount"), 0),
        reasoning_tokens=_int(meta.get("thoughtsTokenCount"), 0),
    )


def usage_dict(usage: Usage, meta: Any) -> dict[str, Any]:
    thoughts = _int(meta.get("thoughtsTokenCount"), 0) if isinstance(meta, dict) else 0
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def _candidate_output(
    cand: dict[str, Any], response_id: str, index: int, first_call: int = 0
) -> tuple[str, list[dict[str, Any]], str]:
    """The visible text, the tool calls and the thought summaries (``thought: true`` parts, sent only
    when the request asked for them) of one candidate (or chunk of it)."""
    content = cand.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts or []:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            (thoughts if part.get("thought") is True else texts).append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, dict):
            name = str(call.get("name") or "")
            args = call.get("args") if isinstance(call.get("args"), dict) else {}
            arguments = orjson.dumps(args, option=orjson.OPT_SORT_KEYS).decode()
            signature = part.get("thoughtSignature")
            if not isinstance(signature, str):
                signature = ""
            # The signature is part of the id, so two answers that call alike (a response without
            # responseId) still get distinct ids, and the memory never gives one the other's.
            call_id = _call_id(response_id, index, first_call + len(calls), name, arguments + signature)
            tool_call: dict[str, Any] = {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": orjson.dumps(args).decode()},
            }
            if signature:
                SIGNATURES.issued(call_id, signature)
                tool_call["extra_content"] = {"google": {"thought_signature": signature}}
            calls.append(tool_call)
    return "".join(texts), calls, "".join(thoughts)


def _call_id(response_id: str, candidate: int, position: int, name: str, arguments: str) -> str:
    digest = hashlib.sha1(f"{response_id}\x00{candidate}\x00{position}\x00{name}\x00{arguments}".encode())
    return "call_" + digest.hexdigest()[:24]


def _completion_id(response_id: str) -> str:
    return "chatcmpl-" + (response_id or uuid.uuid4().hex)


def _block_reason(data: dict[str, Any]) -> str | None:
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    return str(reason) if reason else None


def _pending(request: UpstreamRequest) -> _Pending:
    """What ``*_request`` left for the response (an empty record for a request built elsewhere)."""
    context = request.context
    return context if isinstance(context, _Pending) else _Pending("")


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default


# -- streaming --------------------------------------------------------------------------------------


class GeminiStream(SSETranslator):
    """``streamGenerateContent?alt=sse`` (each event a whole ``GenerateContentResponse``) as OpenAI chunks.

    Gemini sends no end-of-stream event: the stream counts as finished once
    every candidate seen has carried a ``finishReason`` (or the prompt was
    blocked), and EOF after that is the normal end.
    """

    __slots__ = (
        "_calls",
        "_created",
        "_done",
        "_id",
        "_model",
        "_one_call",
        "_output",
        "_parser",
        "_provider",
        "_reasoning",
        "_started",
        "_want_usage",
        "finished",
        "usage",
        "usage_chunk",
    )

    def __init__(
        self,
        provider: str,
        model: str,
        want_usage: bool,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        one_call: bool = False,
        reasoning: bool = False,
    ) -> None:
        super().__init__(provider, max_event_bytes)
        self._one_call = one_call
        self._reasoning = reasoning
        self._model = model
        self._want_usage = want_usage
        self._id: str | None = None
        self._created = int(time.time())
        self._started: set[int] = set()
        self._done: set[int] = set()
        self._calls: dict[int, int] = {}
        self._output: set[int] = set()
        """Candidates that have sent something (a part), so an empty end is not a failure."""

    def _handle(self, events: list[Any]) -> list[bytes]:
        out: list[bytes] = []
        for ev in events:
            payload: bytes = ev.data
            if not payload.strip():
                continue
            try:
                data = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise UpstreamError(
                    f"provider '{self._provider}' sent a stream event that is not JSON: {payload[:120]!r}",
                    status=502,
                    code="upstream_bad_response",
                ) from None
            for item in data if isinstance(data, list) else [data]:
                if isinstance(item, dict):
                    self._response(item, out)
        return out

    def _response(self, data: dict[str, Any], out: list[bytes]) -> None:
        err = data.get("error")
        if err is not None:
            raise self._stream_error(err)
        if self._id is None:
            # Like the non-streaming answer: the id and model version Gemini reports, when it does.
            self._id = _completion_id(str(data.get("responseId") or ""))
            self._model = str(data.get("modelVersion") or self._model)
        meta = data.get("usageMetadata")
        usage = usage_of(meta)
        if usage is not None:
            self.usage = usage
            self.usage_chunk = {**self._base(), "choices": [], "usage": usage_dict(usage, meta)}
        response_id = str(data.get("responseId") or "")
        candidates = [c for c in data.get("candidates") or [] if isinstance(c, dict)]
        for pos, cand in enumerate(candidates):
            index = _int(cand.get("index"), pos)
            self._start(index, out)
            first = self._calls.get(index, 0)
            text, calls, thoughts = _candidate_output(cand, response_id, index, first)
            if text or calls or _has_parts(cand):
                self._output.add(index)
            failed = failed_generation(cand, index in self._output)
            if failed is not None:
                raise failed_error(self._provider, failed, cand)
            if self._one_call:
                calls = calls[: max(0, 1 - first)]
            if thoughts and self._reasoning:
                out.append(self._chunk(index, {"reasoning_content": thoughts}))
            if text:
                out.append(self._chunk(index, {"content": text}))
            for k, call in enumerate(calls):
                out.append(self._chunk(index, {"tool_calls": [{"index": first + k, **call}]}))
            self._calls[index] = first + len(calls)
            finish = finish_reason(cand.get("finishReason"), self._calls[index] > 0)
            if finish is not None and index not in self._done:
                self._done.add(index)
                out.append(self._chunk(index, {}, finish))
        if not candidates and _block_reason(data) and 0 not in self._done:
            self._start(0, out)
            self._done.add(0)
            out.append(self._chunk(0, {}, "content_filter"))
        if self._started and self._started <= self._done:
            self.finished = True

    def _start(self, index: int, out: list[bytes]) -> None:
        if index not in self._started:
            self._started.add(index)
            out.append(self._chunk(index, {"role": "assistant", "content": ""}))

    def _base(self) -> dict[str, Any]:
        return {
            "id": self._id or _completion_id(""),
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
        }

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            **self._base(),
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self._want_usage:
            chunk["usage"] = None
        return frame(chunk)

    def _stream_error(self, err: Any) -> UpstreamError:
        if isinstance(err, dict):
            code = _int(err.get("code"), 0)
            if code >= 400:
                return google_error(
                    self._provider, code, {}, {**err, "message": f"mid-stream: {err.get('message')}"}
                )
            message = err.get("message") or err
        else:
            message = err
        return UpstreamError(
            f"provider '{self._provider}' failed mid-stream: {str(message)[:300]}",
            status=502,
            code="upstream_stream_error",
        )
