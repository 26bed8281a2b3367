"""Mock upstream speaking Google's Gemini REST format (``v1beta``, also served under ``v1`` and ``v1alpha``).

Faithful enough for the official ``google-genai`` SDK: ``models/{model}:generateContent``,
``:streamGenerateContent`` (SSE events framed with CRLF like Google's with
``?alt=sse``, else one JSON array), ``:embedContent``, ``:batchEmbedContents``,
``GET models`` and ``GET models/{model}``. The key comes in ``x-goog-api-key``
or ``?key=``; errors have Google's shape ``{"error": {"code", "message",
"status", "details"}}``. As with Google, a missing key is 403
``PERMISSION_DENIED`` and a wrong key 400 ``INVALID_ARGUMENT`` with reason
``API_KEY_INVALID``; a 429 carries ``RetryInfo`` and a ``retry-after`` header.

Answers come from :mod:`hedge.mock.behaviour`, so they match the OpenAI mock's.
Gemini sends no tool call ids and no end-of-stream marker; neither does this mock.
A ``maxOutputTokens`` or ``candidateCount`` that is not an int32 is 400
``INVALID_ARGUMENT`` ("Invalid value at ... (TYPE_INT32)", as Google's JSON parser
says), as are ``maxOutputTokens`` below 1, ``candidateCount`` outside 1..8, a
``temperature`` outside 0..2, more than 5 stop sequences, a function name that is
empty or over 64 characters, more than 100 ``batchEmbedContents`` requests and an
``outputDimensionality`` below 1 or above the model's size (768 for
``text-embedding-004``, 3072 for ``gemini-embedding-001`` and unknown names); a
body over the ``max_body_bytes`` knob is Google's 400 "Request payload size
exceeds the limit". A ``maxOutputTokens`` above the mock model's limit is
clamped, like every size the answer takes from the request (see
:mod:`hedge.mock.behaviour`). A model named ``...no-such-model...`` is 404
``NOT_FOUND``. ``thinkingConfig`` is checked as Gemini checks it: a
``thinkingBudget`` of 0 on 2.5 Pro ("This model only works in thinking mode") and
a ``thinkingLevel`` on Gemini 2 are 400; a request that thinks reports
``thoughtsTokenCount``, and with ``includeThoughts`` its answer starts with a
thought summary (a ``thought: true`` part).

Quirks ``hedge check`` catches, as on the OpenAI mock: ``ignore-stop``,
``stop-included``, ``no-stream-usage`` (no ``usageMetadata`` in stream events),
``drop-system`` (``systemInstruction`` ignored) and ``error-as-200`` (errors,
and every non-streaming answer, are an error body with status 200).
``tool-args-object`` and ``no-role-in-first-chunk`` have no Gemini equivalent:
function call ``args`` are always an object, and the adapter builds the role
chunk itself.

Two knobs play what real Gemini models do that the default mock does not: with
``thought_signatures`` every answer's first function call carries a
``thoughtSignature`` (base64 of a few hundred bytes, so ``+ / =`` appear, as in
real ones) and a request whose model turn has function calls is refused as Gemini
3 refuses it, 400 "Function call is missing a thought_signature", unless the
turn's first call carries the signature issued for that very call or Google's
``skip_thought_signature_validator`` (compared as bytes: Google reads standard or
URL-safe base64, and the google-genai SDK sends it back URL-safe); a signature that
is not base64 is Google's "Base64 decoding failed". With ``finish_reason`` set (``MALFORMED_FUNCTION_CALL``,
``UNEXPECTED_TOOL_CALL``, ``SAFETY``, ``RECITATION``, ``PROHIBITED_CONTENT`` ...)
every candidate ends with that reason and no content, as failed generations do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from hedge.mock.behaviour import (
    MAX_OUTPUT_TOKENS,
    MAX_SCHEMA_DEPTH,
    Reply,
    Tool,
    Turn,
    digest,
    dumps,
    embedding_vector,
    plan_reply,
    unknown_model,
)
from hedge.mock.state import BodyTooLarge, MockState

_STATUS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: (
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
        "or other valid authentication credential.",
    ),
    403: ("PERMISSION_DENIED", "The caller does not have permission."),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
}
_MODELS = [
    ("gemini-2.0-flash", "Gemini 2.0 Flash", ["generateContent", "countTokens"]),
    ("gemini-2.5-flash", "Gemini 2.5 Flash", ["generateContent", "countTokens"]),
    ("gemini-2.5-pro", "Gemini 2.5 Pro", ["generateContent", "countTokens"]),
    ("text-embedding-004", "Text Embedding 004", ["embedContent"]),
    ("gemini-embedding-001", "Gemini Embedding 001", ["embedContent"]),
]
MAX_STOP_SEQUENCES = 5
MAX_CANDIDATES = 8
MAX_FUNCTION_NAME = 64
MAX_BATCH_EMBEDDINGS = 100
DEFAULT_DIMENSIONS = 8
EMBEDDING_DIMENSIONS = {"text-embedding-004": 768, "embedding-001": 768, "gemini-embedding-001": 3072}
MAX_DIMENSIONS = 3072
"""The ``outputDimensionality`` limit for model names Google does not have."""
_INT32 = range(-(2**31), 2**31)
_FUNCTION_NAME_RULE = (
    "Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), "
    "underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64."
)


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """Google's error object for ``status`` (the default message is Google's own)."""
    gstatus, default = _STATUS.get(status, ("UNKNOWN", f"Mock failure {status}."))
    return {"error": {"code": status, "message": message or default, "status": gstatus}}


def error(
    state: MockState, status: int, message: str | None = None, details: list[dict[str, Any]] | None = None
) -> Response:
    err = error_body(status, message)["error"]
    headers = None
    if status == 429:
        delay = f"{state.knobs.retry_after:g}"
        headers = {"retry-after": delay}
        details = [
            *(details or []),
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay}s"},
        ]
    if details:
        err["details"] = details
    if state.quirk("error-as-200"):
        status = 200
    return Response(
        orjson.dumps({"error": err}), status_code=status, headers=headers, media_type="application/json"
    )


def _auth_error(state: MockState, request: Request) -> Response | None:
    key = (request.headers.get("x-goog-api-key") or request.query_params.get("key") or "").strip()
    if not key:
        return error(
            state,
            403,
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        )
    if state.knobs.api_key is not None and key != state.knobs.api_key:
        info = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
        }
        return error(state, 400, "API key not valid. Please pass a valid API key.", [info])
    return None


async def _admit(
    state: MockState, request: Request, stream: bool
) -> tuple[dict[str, Any] | None, Response | None]:
    """Common entry: parse, record, authenticate, inject faults. Returns (body, early_response)."""
    try:
        body = await state.read(request)
    except BodyTooLarge as exc:
        return None, error(state, 400, f"Request payload size exceeds the limit: {exc.limit} bytes.")
    denied = _auth_error(state, request)
    if denied is not None:
        return None, denied
    if not isinstance(body, dict):
        return None, error(state, 400, "Invalid JSON payload received. Expected an object.")
    status = await state.fault(body, stream)
    return (None, error(state, status)) if status is not None else (body, None)


# -- request -> behaviour ---------------------------------------------------------------------------


def _field(obj: Any, name: str) -> Any:
    """``obj[name]``, or its snake_case spelling: Google's JSON parser accepts both (the SDK sends some).

    None when ``obj`` is not an object, so a wrong-typed parent reads as absent.
    """
    if not isinstance(obj, dict):
        return None
    if name in obj:
        return obj[name]
    return obj.get(_snake(name))


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _texts(parts: Any) -> list[str]:
    return [p["text"] for p in _list(parts) if isinstance(p, dict) and isinstance(p.get("text"), str)]


def _tool_text(response: Any) -> str:
    """A function response as the text the OpenAI mock would have seen in the tool message."""
    if isinstance(response, dict) and set(response) == {"content"}:
        response = response["content"]
    return response if isinstance(response, str) else dumps(response).decode()


def turns_of(body: dict[str, Any], drop_system: bool = False) -> list[Turn]:
    turns: list[Turn] = []
    system = _field(body, "systemInstruction")
    if isinstance(system, dict) and not drop_system:
        text = "".join(_texts(system.get("parts")))
        if text:
            turns.append(Turn("system", text))
    for content in _list(body.get("contents")):
        if not isinstance(content, dict):
            continue
        parts = [p for p in _list(content.get("parts")) if isinstance(p, dict)]
        if content.get("role") == "model":
            turns.append(Turn("assistant", "".join(_texts(parts))))
            continue
        for part in parts:
            response = _field(part, "functionResponse")
            if isinstance(response, dict):
                turns.append(Turn("tool", _tool_text(response.get("response"))))
            elif isinstance(part.get("text"), str):
                turns.append(Turn("user", part["text"]))
    return turns


def _declarations(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        decl
        for group in _list(body.get("tools"))
        for decl in _list(_field(group, "functionDeclarations"))
        if isinstance(decl, dict)
    ]


def _plan(state: MockState, model: str, body: dict[str, Any]) -> Reply:
    tools: list[Tool] = []
    for decl in _declarations(body):
        if isinstance(decl.get("name"), str) and decl["name"]:
            schema = _field(decl, "parametersJsonSchema") or decl.get("parameters")
            tools.append(Tool(decl["name"], _lower_types(schema) if isinstance(schema, dict) else {}))
    calling = _field(_field(body, "toolConfig"), "functionCallingConfig")
    mode = str(_field(calling, "mode") or "AUTO").upper()
    allowed = _list(_field(calling, "allowedFunctionNames"))
    choice: str | None = None
    if mode == "NONE":
        choice = "none"
    elif mode == "ANY" and allowed:
        choice = str(allowed[0])
    config = _field(body, "generationConfig")
    stops = _field(config, "stopSequences")
    schema = _field(config, "responseJsonSchema") or _field(config, "responseSchema")
    max_tokens = _field(config, "maxOutputTokens")
    turns = turns_of(body, drop_system=state.quirk("drop-system"))
    reply = plan_reply(
        model,
        turns,
        tools=tools or None,
        tool_choice=choice,
        max_tokens=None if max_tokens is None else _int32(max_tokens),  # validated by _invalid_argument
        stop=None if state.quirk("ignore-stop") or not isinstance(stops, list) else stops,
        json_mode=_field(config, "responseMimeType") == "application/json",
        json_schema=_lower_types(schema) if isinstance(schema, dict) else None,
        answer=state.graded_answer(turns),
    )
    if state.quirk("stop-included") and reply.matched_stop:
        reply.pieces.append(reply.matched_stop)
    return reply


def _int32(value: Any) -> int | None:
    """``value`` as proto3 JSON reads an int32 field (a whole number, or a string of one), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,10}", value)
    ):
        number = int(value)
    else:
        return None
    return number if number in _INT32 else None


def _bad_int32(path: str, value: Any) -> tuple[str, list[dict[str, Any]]]:
    """Google's answer to a value its JSON parser cannot read into an int32 field."""
    shown = dumps(value).decode()
    message = f"Invalid value at '{path}' (TYPE_INT32), {shown[:100]}"
    violation = {"field": path, "description": message}
    return message, [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation]}]


def _invalid_argument(config: Any) -> tuple[str, list[dict[str, Any]] | None] | None:
    """The message (and details) Gemini gives for the first invalid generation parameter, if any."""
    for name, low, high in (
        ("maxOutputTokens", 1, None),
        ("candidateCount", 1, MAX_CANDIDATES),
        ("temperature", 0, 2),
    ):
        field = _snake(name)
        value = _field(config, name)
        if value is None:
            continue
        if name != "temperature":
            number: int | float | None = _int32(value)
            if number is None:
                return _bad_int32(f"generation_config.{field}", value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            number = value
        else:
            return f"* GenerateContentRequest.generation_config.{field}: invalid value\n", None
        if number < low or (high is not None and number > high):
            return f"* GenerateContentRequest.generation_config.{field}: {value} is out of range\n", None
    return None


def _bad_function_name(body: dict[str, Any]) -> str | None:
    for g, group in enumerate(_list(body.get("tools"))):
        for d, decl in enumerate(_list(_field(group, "functionDeclarations"))):
            name = decl.get("name") if isinstance(decl, dict) else None
            if not isinstance(name, str) or not 1 <= len(name) <= MAX_FUNCTION_NAME:
                where = f"GenerateContentRequest.tools[{g}].function_declarations[{d}].name"
                return f"* {where}: {_FUNCTION_NAME_RULE}\n"
    return None


def _lower_types(schema: Any, depth: int = 0) -> Any:
    """Gemini's OpenAPI-style schemas write types in capitals (``STRING``); behaviour reads JSON Schema.

    Followed only as deep as behaviour reads schemas (two JSON levels per schema
    level), so a deeply nested schema cannot exhaust the stack.
    """
    if depth > 2 * MAX_SCHEMA_DEPTH + 2:
        return {}
    if isinstance(schema, dict):
        return {
            k: (v.lower() if k == "type" and isinstance(v, str) else _lower_types(v, depth + 1))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_lower_types(v, depth + 1) for v in schema]
    return schema


# -- responses ----------------------------------------------------------------------------------------


def _response_id(model: str, body: dict[str, Any]) -> str:
    return digest([model, body])[:22]


THOUGHT_TOKENS = 12
"""What the mock reports in ``thoughtsTokenCount`` when a request turns thinking on."""


THOUGHT = "**Weighing the request**\n\nI will answer briefly."
"""The mock's thought summary: a ``thought: true`` part first in the answer when the request thinks
and sets ``includeThoughts`` (Gemini's thinking guide, "Thought summaries")."""


def _thought_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    thinking = _field(_field(body, "generationConfig"), "thinkingConfig")
    if not _thinks(body) or _field(thinking, "includeThoughts") is not True:
        return []
    return [{"text": THOUGHT, "thought": True}]


def _thinks(body: dict[str, Any]) -> bool:
    thinking = _field(_field(body, "generationConfig"), "thinkingConfig")
    if not isinstance(thinking, dict):
        return False
    budget = _field(thinking, "thinkingBudget")
    return _field(thinking, "thinkingLevel") is not None or (isinstance(budget, int) and budget != 0)


def _thinking_problem(model: str, body: dict[str, Any]) -> str | None:
    """Gemini's refusals for ``thinkingConfig`` (ai.google.dev/gemini-api/docs/thinking): 2.5 Pro
    cannot stop thinking, and a level is for Gemini 3 only."""
    thinking = _field(_field(body, "generationConfig"), "thinkingConfig")
    if not isinstance(thinking, dict):
        return None
    if _field(thinking, "thinkingBudget") == 0 and "2.5-pro" in model:
        return "Budget 0 is invalid. This model only works in thinking mode."
    if _field(thinking, "thinkingLevel") is not None and "gemini-2" in model:
        return "Thinking level is not supported for this model."
    return None


def _usage(reply: Reply, n: int, completion: int | None = None, thoughts: int = 0) -> dict[str, Any]:
    done = (reply.completion_tokens if completion is None else completion) * n
    usage = {
        "promptTokenCount": reply.prompt_tokens,
        "candidatesTokenCount": done,
        "totalTokenCount": reply.prompt_tokens + done + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.prompt_tokens}],
    }
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def _finish(reply: Reply) -> str:
    return "MAX_TOKENS" if reply.finish == "length" else "STOP"


def _call_parts(state: MockState, reply: Reply) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [
        {"functionCall": {"name": c.name, "args": c.arguments}} for c in reply.tool_calls
    ]
    if parts and state.knobs.thought_signatures:
        call = parts[0]["functionCall"]
        parts[0]["thoughtSignature"] = _signature(call.get("name"), call.get("args"))
    return parts


SKIP_SIGNATURE = "skip_thought_signature_validator"
_SIGNATURE_TAG = b"hedge-mock-thought:"


def _signature_bytes(name: Any, args: Any) -> bytes:
    seed = hashlib.sha256(dumps([name, args])).digest()
    return _SIGNATURE_TAG + seed + bytes(range(248, 256)) * 24 + b"\xfb\xff"


def _signature(name: Any, args: Any) -> str:
    """The signature this mock issues for a call: bound to the call, opaque, base64 with ``+ / =``."""
    return base64.b64encode(_signature_bytes(name, args)).decode()


def _bytes_field(value: str) -> bytes:
    """A proto3 JSON ``bytes`` value as Google reads it: standard or URL-safe base64, padded or not
    (the google-genai SDK sends signatures back URL-safe). Raises ``ValueError`` on anything else."""
    normal = value.replace("-", "+").replace("_", "/")
    return base64.b64decode(normal + "=" * (-len(normal) % 4), validate=True)


def _unsigned_call(body: dict[str, Any]) -> str | None:
    """Gemini 3's 400 for a model turn whose first function call lacks its signature, if any."""
    for c, content in enumerate(_list(body.get("contents"))):
        if not isinstance(content, dict) or content.get("role") != "model":
            continue
        parts = [p for p in _list(content.get("parts")) if isinstance(p, dict)]
        for k, part in enumerate(parts):
            call = _field(part, "functionCall")
            if not isinstance(call, dict):
                continue
            given = _field(part, "thoughtSignature")
            decoded = b""
            if isinstance(given, str) and given != SKIP_SIGNATURE:
                try:
                    decoded = _bytes_field(given)
                except (binascii.Error, ValueError):
                    return (
                        f"Invalid value at 'contents[{c}].parts[{k}].thought_signature' (TYPE_BYTES), "
                        f'Base64 decoding failed for "{given[:40]}"'
                    )
            expected = _signature_bytes(call.get("name"), call.get("args"))
            valid = given == SKIP_SIGNATURE or decoded == expected
            if not valid:
                return (
                    "Function call is missing a thought_signature in functionCall parts. This is required "
                    "for tools to work correctly, and missing thought_signature may lead to degraded model "
                    f"performance. Additional data, function call `default_api:{call.get('name')}` , "
                    f"position {k + 1}. Please refer to "
                    "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
                )
            break  # only the first call of a step is signed
    return None


def _failed_candidates(state: MockState, n: int) -> list[dict[str, Any]]:
    """Candidates of a failed generation: the knob's finish reason, no content (as Gemini sends them)."""
    reason = str(state.knobs.finish_reason)
    cand: dict[str, Any] = {"content": {}, "finishReason": reason}
    if reason == "MALFORMED_FUNCTION_CALL":
        cand["finishMessage"] = "Malformed function call: call:default_api:lookup{q:<ctrl46>x}"
    return [{**cand, "index": i} for i in range(n)]


async def generate(state: MockState, request: Request, model: str, stream: bool) -> Response:
    body, early = await _admit(state, request, stream)
    if early is not None or body is None:
        return early or error(state, 400)
    refused = _refusal(state, model, body, request.url.path.split("/")[1])
    if refused is not None:
        status, problem = refused
        return error(state, status, problem["error"]["message"], problem["error"].get("details"))
    if stream:
        config = _field(body, "generationConfig")
        reply = _plan(state, model, body)
        n = _int32(_field(config, "candidateCount")) or 1
        sse = request.query_params.get("alt") == "sse"
        return StreamingResponse(
            _stream(state, body, model, reply, n, _response_id(model, body), sse),
            media_type="text/event-stream" if sse else "application/json",
        )
    await state.delay()
    data = _generated(state, model, body)
    if state.quirk("error-as-200"):
        data = {"error": {"code": 500, "message": "Mock error with status 200.", "status": "INTERNAL"}}
    return Response(orjson.dumps(data), media_type="application/json")


def answer(
    state: MockState, model: str, body: dict[str, Any], version: str = "v1beta"
) -> tuple[int, dict[str, Any]]:
    """What ``models/{model}:generateContent`` answers ``body``: (status, JSON body).

    Batch mode runs each inlined request through this, so a request fails in a batch exactly as it
    would alone.
    """
    refused = _refusal(state, model, body, version)
    return refused if refused is not None else (200, _generated(state, model, body))


def _refusal(
    state: MockState, model: str, body: dict[str, Any], version: str
) -> tuple[int, dict[str, Any]] | None:
    """The error Google answers this request with, if any: (status, error body)."""
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return 400, error_body(400, "* GenerateContentRequest.contents: contents is not specified\n")
    config = _field(body, "generationConfig")
    stops = _field(config, "stopSequences")
    if isinstance(stops, list) and len(stops) > MAX_STOP_SEQUENCES:
        message = "* GenerateContentRequest.generation_config.stop_sequences: at most 5 allowed\n"
        return 400, error_body(400, message)
    thinking_problem = _thinking_problem(model, body)
    if thinking_problem is not None:
        return 400, error_body(400, thinking_problem)
    invalid = _invalid_argument(config)
    if invalid is not None:
        message, details = invalid
        problem = error_body(400, message)
        if details:
            problem["error"]["details"] = details
        return 400, problem
    bad_name = _bad_function_name(body)
    if bad_name is not None:
        return 400, error_body(400, bad_name)
    unsigned = _unsigned_call(body) if state.knobs.thought_signatures else None
    if unsigned is not None:
        return 400, error_body(400, unsigned)
    if unknown_model(model):
        return 404, error_body(
            404, f"models/{model} is not found for API version {version}, or is not supported."
        )
    return None


def _generated(state: MockState, model: str, body: dict[str, Any]) -> dict[str, Any]:
    """The ``GenerateContentResponse`` for a valid, non-streaming request."""
    config = _field(body, "generationConfig")
    reply = _plan(state, model, body)
    n = _int32(_field(config, "candidateCount")) or 1
    parts = _call_parts(state, reply) if reply.tool_calls else [{"text": reply.text}]
    parts = _thought_parts(body) + parts
    candidates = [
        {"content": {"parts": parts, "role": "model"}, "finishReason": _finish(reply), "index": i}
        for i in range(n)
    ]
    return {
        "candidates": _failed_candidates(state, n) if state.knobs.finish_reason else candidates,
        "usageMetadata": _usage(reply, n, thoughts=THOUGHT_TOKENS if _thinks(body) else 0),
        "modelVersion": model,
        "responseId": _response_id(model, body),
    }


async def _stream(
    state: MockState,
    body: dict[str, Any],
    model: str,
    reply: Reply,
    n: int,
    response_id: str,
    sse: bool,
) -> AsyncIterator[bytes]:
    state.stats.streams_started += 1
    completed = False
    # One event per token; tool calls arrive whole, in one event, as Gemini sends them.
    steps: list[list[dict[str, Any]]] = [[{"text": piece}] for piece in reply.pieces]
    if reply.tool_calls:
        steps.append(_call_parts(state, reply))
    if not steps:
        steps.append([{"text": ""}])
    if _thought_parts(body):
        steps.insert(0, _thought_parts(body))
    if state.knobs.finish_reason:
        steps = [[]]
    disconnect_at = len(steps) // 2 if body.get("_mock_disconnect") else -1
    produced = 0

    def event(parts: list[dict[str, Any]], first: bool, last: bool) -> bytes:
        candidates = []
        for i in range(n):
            cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": i}
            if last:
                cand["finishReason"] = _finish(reply)
            candidates.append(cand)
        if state.knobs.finish_reason:
            candidates = _failed_candidates(state, n)
        data = {
            "candidates": candidates,
            "usageMetadata": _usage(reply, n, produced, THOUGHT_TOKENS if _thinks(body) else 0),
            "modelVersion": model,
            "responseId": response_id,
        }
        if state.quirk("no-stream-usage"):
            del data["usageMetadata"]
        payload = orjson.dumps(data)
        if sse:
            return b"data: " + payload + b"\r\n\r\n"
        return (b"[" if first else b",\r\n") + payload + (b"]" if last else b"")

    try:
        for k, parts in enumerate(steps):
            if k == disconnect_at:
                raise ConnectionAbortedError("mock: injected mid-stream disconnect")
            await state.delay(1 / len(steps))
            produced += sum(1 for p in parts if p.get("text"))
            if reply.tool_calls and k == len(steps) - 1:
                produced = reply.completion_tokens
            yield event(parts, k == 0, k == len(steps) - 1)
        completed = True
    finally:
        if completed:
            state.stats.streams_completed += 1
        else:
            state.stats.streams_cancelled += 1


def _embed_values(
    request_model: str, item: Any, where: str
) -> tuple[list[float] | None, tuple[str, list[dict[str, Any]] | None] | None]:
    """The vector for one embed request, or the error (message, details) Gemini answers it with."""
    if not isinstance(item, dict) or not isinstance(item.get("content"), dict):
        return None, ("content is required", None)
    name = item.get("model")
    if name is not None and name != f"models/{request_model}":
        problem = (
            f"Model name in request ({name}) does not match the model in the URL (models/{request_model})."
        )
        return None, (problem, None)
    text = " ".join(_texts(item["content"].get("parts")))
    raw = _field(item, "outputDimensionality")
    dims = DEFAULT_DIMENSIONS if raw is None else _int32(raw)
    if dims is None:
        return None, _bad_int32(f"{where}output_dimensionality", raw)
    if not 1 <= dims <= EMBEDDING_DIMENSIONS.get(request_model, MAX_DIMENSIONS):
        request = "BatchEmbedContentsRequest." if where else "EmbedContentRequest."
        return None, (f"* {request}{where}output_dimensionality: {dims} is out of range\n", None)
    return embedding_vector(text, dims), None


async def embed(state: MockState, request: Request, model: str, batch: bool) -> Response:
    body, early = await _admit(state, request, False)
    if early is not None or body is None:
        return early or error(state, 400)
    items = body.get("requests") if batch else [body]
    if not isinstance(items, list) or not items:
        return error(state, 400, "* BatchEmbedContentsRequest.requests: requests is not specified\n")
    if len(items) > MAX_BATCH_EMBEDDINGS:
        return error(
            state, 400, "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n"
        )
    values: list[list[float]] = []
    for i, item in enumerate(items):
        vec, problem = _embed_values(model, item, f"requests[{i}]." if batch else "")
        if vec is None:
            assert problem is not None
            return error(state, 400, *problem)
        values.append(vec)
    await state.delay()
    data: dict[str, Any] = (
        {"embeddings": [{"values": v} for v in values]} if batch else {"embedding": {"values": values[0]}}
    )
    return Response(orjson.dumps(data), media_type="application/json")


def _model_info(model: str, display: str, methods: list[str]) -> dict[str, Any]:
    embedding = methods == ["embedContent"]
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": display,
        "description": f"{display} (hedge mock)",
        "inputTokenLimit": 2048 if embedding else 1048576,
        "outputTokenLimit": 1 if embedding else MAX_OUTPUT_TOKENS,
        "supportedGenerationMethods": methods,
    }


async def list_models(request: Request) -> Response:
    state: MockState = request.app.state.mock
    denied = _auth_error(state, request)
    if denied is not None:
        return denied
    data = {"models": [_model_info(*m) for m in _MODELS]}
    return Response(orjson.dumps(data), media_type="application/json")


async def dispatch(request: Request) -> Response:
    """``/{version}/models/{model}:{method}``: Starlette cannot split a segment on ':', so it is done here."""
    state: MockState = request.app.state.mock
    rest: str = request.path_params["rest"]
    model, _, method = rest.partition(":")
    if request.method == "GET":
        denied = _auth_error(state, request)
        if denied is not None:
            return denied
        found = next((m for m in _MODELS if m[0] == model and not method), None)
        if found is None:
            version = request.url.path.split("/")[1]
            return error(state, 404, f"models/{rest} is not found for API version {version}.")
        return Response(orjson.dumps(_model_info(*found)), media_type="application/json")
    if method == "generateContent":
        return await generate(state, request, model, False)
    if method == "streamGenerateContent":
        return await generate(state, request, model, True)
    if method in ("embedContent", "batchEmbedContents"):
        return await embed(state, request, model, method == "batchEmbedContents")
    state.note(request, None)
    return error(state, 404, f"Method {method!r} is not found for models/{model}.")


def routes() -> list[Route]:
    # google-genai 1.x calls v1beta by default, newer versions v1: the mock answers both (and v1alpha).
    out: list[Route] = []
    for version in ("v1beta", "v1", "v1alpha"):
        out.append(Route(f"/{version}/models", list_models, methods=["GET"]))
        out.append(Route(f"/{version}/models/{{rest:path}}", dispatch, methods=["GET", "POST"]))
    return out
