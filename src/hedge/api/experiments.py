"""``POST /v1/feedback``, ``GET /admin/experiments[/{name}]``, and the hand-off of shadow copies
once a response is complete.

Feedback is authenticated like a model request, and only the key that made a request may rate
it (the master key rates the master key's requests). The admin endpoints are master-key only
and read the state database (503 when it is down).
"""

from __future__ import annotations

import math
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from hedge.api.http import (
    authenticate,
    error_response,
    json_response,
    read_body,
    require_master,
    runtime_of,
    store_endpoint,
)
from hedge.api.sse import SSEResponse
from hedge.api.validation import parse_json_object
from hedge.errors import HedgeError, InvalidRequest, NotFound
from hedge.experiments.service import Experiments
from hedge.experiments.shadow import StreamText, completion_text
from hedge.gateway.pipeline import Completion, Exchange
from hedge.gateway.stream import Stream

METRIC_LIMIT = 64
REQUEST_ID_LIMIT = 200


def experiments_of(request: Request) -> Experiments:
    found: Experiments = request.scope["app"].experiments  # a HedgeApp's
    return found


def follow_up(request: Request, exchange: Exchange, result: object, response: Response) -> Response:
    """Attach the shadow copies this request was sampled for, to start once ``response`` is complete."""
    if not isinstance(result, Completion | Stream):
        return response
    shadows = experiments_of(request).shadows
    sampled = shadows.sample(exchange, result)
    if not sampled:
        return response
    if isinstance(response, SSEResponse):
        text = StreamText()
        response.watch = text.feed
        response.after = lambda: shadows.start(exchange, sampled, text.text)
    elif isinstance(result, Completion):
        primary = completion_text(result.body)

        async def start() -> None:  # async: Starlette runs a plain function in a worker thread
            shadows.start(exchange, sampled, primary)

        response.background = BackgroundTask(start)
    return response


def _value(raw: Any) -> float:
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    if isinstance(raw, int | float) and math.isfinite(raw):
        return float(raw)
    raise InvalidRequest("'value' must be a boolean or a finite number.", param="value", code="invalid_value")


def _text(body: dict[str, Any], name: str, limit: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidRequest(
            f"'{name}' must be a non-empty string of at most {limit} characters.",
            param=name,
            code="invalid_value",
        )
    return value


@store_endpoint
async def feedback(request: Request) -> Response:
    try:
        runtime = runtime_of(request)
        key = await authenticate(request, runtime)
        body = parse_json_object(await read_body(request, 64 * 1024))
        request_id = _text(body, "request_id", REQUEST_ID_LIMIT)
        metric = _text(body, "metric", METRIC_LIMIT)
        if "value" not in body:
            raise InvalidRequest(
                "Missing 'value' (a boolean or a number).", param="value", code="missing_required_parameter"
            )
        value = _value(body["value"])
        if not await experiments_of(request).feedback(request_id, metric, value, key):
            raise NotFound(
                f"No request '{request_id}' made with this key (or it is not recorded yet; retry shortly).",
                param="request_id",
                code="request_not_found",
            )
        return json_response(
            {"object": "feedback", "request_id": request_id, "metric": metric, "value": value}
        )
    except HedgeError as exc:
        return error_response(exc)


@store_endpoint
async def list_experiments(request: Request) -> Response:
    try:
        require_master(request, runtime_of(request))
        return json_response(await experiments_of(request).overview())
    except HedgeError as exc:
        return error_response(exc)


@store_endpoint
async def experiment_detail(request: Request) -> Response:
    try:
        runtime = runtime_of(request)
        require_master(request, runtime)
        experiments = experiments_of(request)
        name = request.path_params["name"]
        if name not in experiments.configs:
            raise NotFound(f"No experiment named '{name}'.", param="name", code="experiment_not_found")
        await runtime.ledger.flush()
        report = await experiments.report(name)
        report["shadow"] = await experiments.shadow_summary(alias=experiments.configs[name].alias)
        return json_response(report)
    except HedgeError as exc:
        return error_response(exc)
