"""``/v1/responses``: OpenAI Responses API clients, served by any provider, with stored conversations.

``POST /v1/responses`` translates the body to an OpenAI chat request
(:mod:`hedge.providers.responses_inbound`) and runs exactly the same pipeline as
``/v1/chat/completions`` (keys, routing, failover, cost; recorded as endpoint ``responses``);
what comes back becomes a Response object, or, streamed, the Responses event sequence
(``event: response.output_text.delta`` ...). Errors keep OpenAI's shape. The translation is a
module of its own, so a provider that speaks the Responses API natively could be passed the body
as it is instead.

Unless the request says ``store: false``, the response is stored (:mod:`hedge.store.responses`)
for the key that created it: ``GET``/``DELETE /v1/responses/{id}``, ``GET .../input_items`` and
``previous_response_id`` find it for that key only (any other key gets OpenAI's 404 or 400).
Nothing runs in the background, so ``POST .../cancel`` answers as OpenAI does for a response
that was not created with ``background: true``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from hedge.access.keys import VirtualKey
from hedge.api.chat import hedge_headers, receive, render
from hedge.api.http import (
    JSON,
    authenticate,
    error_response,
    json_response,
    runtime_of,
    store_endpoint,
)
from hedge.api.sse import SSEResponse
from hedge.errors import HedgeError, InvalidRequest, StoreUnavailable
from hedge.gateway.runtime import Runtime
from hedge.gateway.stream import Stream
from hedge.providers.openai_responses import Passthrough, ResponsesStream, error_event, under_our_id
from hedge.providers.responses_inbound import ResponsesEvents, to_chat, to_response
from hedge.record import new_request_id
from hedge.store.db import is_store_error, warn_store_unavailable
from hedge.store.responses import ResponseStore

log = logging.getLogger("hedge")


def response_id(request_id: str) -> str:
    """A response's id follows from its request's, so the ledger record and the response match."""
    return "resp_" + request_id.removeprefix("req_")


def _store(runtime: Runtime) -> ResponseStore:
    return ResponseStore(runtime.db, runtime.config.state.responses_retention_days)


@dataclass(slots=True)
class _Turn:
    """One Responses request as the face sees it: the client's body and what translation made of it."""

    store: ResponseStore
    created_at: int
    body: dict[str, Any] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    """This request's input items, in stored form."""
    previous: list[dict[str, Any]] = field(default_factory=list)
    """The conversation before it (``previous_response_id``): earlier input and output items."""
    passthrough: Passthrough | None = None
    """The request as it is, for OpenAI-native upstreams (``responses_api: true``), if any exists."""

    async def inbound(self, body: dict[str, Any], key: VirtualKey | None) -> dict[str, Any]:
        previous_id = body.get("previous_response_id")
        if isinstance(previous_id, str):
            try:
                stored = await self.store.get(previous_id, key.id if key is not None else None)
            except Exception as exc:
                if not is_store_error(exc):
                    raise
                warn_store_unavailable("previous_response_id lookup", exc)
                raise StoreUnavailable(
                    "The previous response cannot be read now: the state store is unavailable.",
                    code="state_store_unavailable",
                ) from None
            if stored is None:
                raise InvalidRequest(
                    f"Previous response with id '{previous_id}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            self.previous = stored.conversation
        hosted = hosted_tools(body) if self.passthrough is not None else []
        if hosted and self.passthrough is not None:
            # Hosted tools run only on an upstream that serves the Responses API itself: the others
            # are refused (and failed over from) by the pipeline; the translation leaves them out.
            self.passthrough.needs_native = hosted[0]
            chat, self.items = to_chat(without_hosted_tools(body), self.previous)
        else:
            chat, self.items = to_chat(body, self.previous)
        self.body = body
        if self.passthrough is not None:
            # The upstream knows neither the gateway's response ids nor its store: send the whole
            # conversation, and keep nothing there (the gateway stores the answer itself).
            native = {k: v for k, v in body.items() if k != "previous_response_id"}
            native["input"] = [*self.previous, *self.items]
            native["store"] = False
            self.passthrough.body = native
        return chat

    async def keep(self, response: dict[str, Any], key_id: str | None) -> None:
        """Store the response (unless ``store: false``); the client has its answer whatever happens."""
        if self.body.get("store") is False:
            return
        conversation = [*self.previous, *self.items, *response["output"]]
        try:
            await self.store.save(response, self.items, conversation, key_id)
        except Exception as exc:
            if not is_store_error(exc):
                raise
            log.warning("response %s was answered but could not be stored (%s)", response["id"], exc)


async def create_response(request: Request) -> Response:
    runtime = runtime_of(request)
    turn = _Turn(_store(runtime), created_at=int(time.time()))
    if any(p.responses_api for p in runtime.config.providers.values()):
        turn.passthrough = Passthrough()
    exchange, result = await receive(request, "responses", inbound=turn.inbound, native=turn.passthrough)
    rec = exchange.record
    rid = response_id(rec.request_id)
    if result is None or isinstance(result, HedgeError):
        return render(rec, result)  # an error in OpenAI's shape, or the client left (499)
    if isinstance(result, Stream) and result.native:
        return SSEResponse(result, hedge_headers(rec, result), PassthroughDialect(rid, turn, result))
    if isinstance(result, Stream):
        events = ResponsesEvents(turn.body, response_id=rid, created_at=turn.created_at)
        return SSEResponse(result, hedge_headers(rec, result), ResponsesDialect(events, turn))
    if result.native:  # the upstream's own response object, under the gateway's id
        out = orjson.loads(result.body)
        out["id"] = rid
        out["store"] = turn.body.get("store", True)
        out["previous_response_id"] = turn.body.get("previous_response_id")
        if isinstance(out.get("usage"), dict):
            out["usage"]["hedge_cost_usd"] = round(result.cost_usd, 10)
        await turn.keep(out, rec.key_id)
        return Response(orjson.dumps(out), headers=hedge_headers(rec, result), media_type=JSON)
    out = to_response(
        orjson.loads(result.body),
        turn.body,
        response_id=rid,
        created_at=turn.created_at,
        completed_at=int(time.time()),
    )
    out["usage"]["hedge_cost_usd"] = round(result.cost_usd, 10)  # as a streamed response's usage has it
    await turn.keep(out, rec.key_id)
    return Response(orjson.dumps(out), headers=hedge_headers(rec, result), media_type=JSON)


class ResponsesDialect:
    """The pipeline's OpenAI chat chunks, re-framed as Responses API events as they pass; at the end
    the final response is stored (as OpenAI stores a failed one too)."""

    def __init__(self, events: ResponsesEvents, turn: _Turn) -> None:
        self._events = events
        self._turn = turn

    def events(self, events: list[bytes]) -> bytes:
        return b"".join(self._events.frames(events))

    async def end(self, stream: Stream) -> bytes:
        if stream.failure is not None:
            out = self._events.fail(stream.failure.message)
        else:
            out = self._events.finish(stream.usage_object(), int(time.time()))
        if self._events.response is not None:
            await self._turn.keep(self._events.response, stream.record.key_id)
        return b"".join(out)


class PassthroughDialect:
    """An OpenAI-native upstream's own Responses events, forwarded with the gateway's response id in
    place of the upstream's; its final response is stored like a translated one."""

    def __init__(self, response_id: str, turn: _Turn, stream: Stream) -> None:
        self._ours = response_id.encode()
        self._turn = turn
        self._stream = stream

    def events(self, events: list[bytes]) -> bytes:
        return under_our_id(events, self._stream.translator, self._ours.decode())

    async def end(self, stream: Stream) -> bytes:
        translator = stream.translator
        final = translator.final if isinstance(translator, ResponsesStream) else None
        if final is not None:
            final = {**final, "id": self._ours.decode(), "store": self._turn.body.get("store", True)}
            if stream.failure is None and isinstance(final.get("usage"), dict):
                final["usage"] = {**final["usage"], "hedge_cost_usd": round(stream.record.cost_usd, 10)}
            await self._turn.keep(final, stream.record.key_id)
        if stream.failure is not None:
            return error_event(stream.failure.code, stream.failure.message)
        return b""


def hosted_tools(body: dict[str, Any]) -> list[str]:
    """The parameters naming tools that OpenAI hosts (web search, file search ...), e.g. ``tools[1]``."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    return [
        f"tools[{i}]"
        for i, tool in enumerate(tools)
        if isinstance(tool, dict) and isinstance(tool.get("type"), str) and tool["type"] != "function"
    ]


def without_hosted_tools(body: dict[str, Any]) -> dict[str, Any]:
    """The body as the chat translation sees it: function tools only, and no hosted ``tool_choice``."""
    tools = [t for t in body.get("tools") or () if not (isinstance(t, dict) and t.get("type") != "function")]
    out = {**body, "tools": tools}
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") not in ("function", None):
        out.pop("tool_choice")
    if not tools:
        out.pop("tools")
    return out


# -- stored responses -------------------------------------------------------------------------------------


def _not_found(rid: str) -> HedgeError:
    return HedgeError(f"Response with id '{rid}' not found.", status=404, type="invalid_request_error")


async def _caller(request: Request) -> tuple[ResponseStore, str | None, str]:
    """The store, the caller's key id (``None``: the master key) and the response id in the path."""
    runtime = runtime_of(request)
    key = await authenticate(request, runtime)
    return _store(runtime), key.id if key is not None else None, str(request.path_params["response_id"])


def _answer(data: Any) -> Response:
    return json_response(data, headers={"x-request-id": new_request_id()})


def _error(exc: HedgeError) -> Response:
    return error_response(exc, new_request_id())


@store_endpoint
async def get_response(request: Request) -> Response:
    try:
        store, key_id, rid = await _caller(request)
        if request.query_params.get("stream", "false").lower() not in ("false", "0"):
            raise InvalidRequest(
                "Streaming a stored response is only possible for background responses, which this "
                "gateway does not run.",
                param="stream",
                code="unsupported_parameter",
            )
        stored = await store.get(rid, key_id)
        if stored is None:
            raise _not_found(rid)
        return _answer(stored.response)
    except HedgeError as exc:
        return _error(exc)


@store_endpoint
async def delete_response(request: Request) -> Response:
    try:
        store, key_id, rid = await _caller(request)
        if not await store.delete(rid, key_id):
            raise _not_found(rid)
        return _answer({"id": rid, "object": "response", "deleted": True})
    except HedgeError as exc:
        return _error(exc)


@store_endpoint
async def cancel_response(request: Request) -> Response:
    """Only background responses can be cancelled; every response here was answered synchronously."""
    try:
        store, key_id, rid = await _caller(request)
        if await store.get(rid, key_id) is None:
            raise _not_found(rid)
        raise InvalidRequest("Cannot cancel a synchronous response.")
    except HedgeError as exc:
        return _error(exc)


def _page_params(request: Request) -> tuple[int, str, str | None]:
    query = request.query_params
    raw = query.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise InvalidRequest(
            f"Invalid 'limit': {raw!r}. Expected an integer between 1 and 100.",
            param="limit",
            code="invalid_value",
        )
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest(
            f"Invalid value: {order!r}. Supported values are: 'asc' and 'desc'.",
            param="order",
            code="invalid_value",
        )
    return int(raw), order, query.get("after")


@store_endpoint
async def list_input_items(request: Request) -> Response:
    """The response's input items, newest first by default, a page at a time (``after`` an item id)."""
    try:
        store, key_id, rid = await _caller(request)
        limit, order, after = _page_params(request)
        stored = await store.get(rid, key_id)
        if stored is None:
            raise _not_found(rid)
        items = stored.input_items if order == "asc" else stored.input_items[::-1]
        start = 0
        if after is not None:
            ids = [item.get("id") for item in items]
            if after not in ids:
                raise InvalidRequest(
                    f"No input item with id '{after}' in response '{rid}'.",
                    param="after",
                    code="invalid_value",
                )
            start = ids.index(after) + 1
        page = items[start : start + limit]
        return _answer(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": start + limit < len(items),
            }
        )
    except HedgeError as exc:
        return _error(exc)
