"""``GET /v1/models`` and ``GET /health``."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from hedge.api.http import authenticate, error_response, json_response, runtime_of
from hedge.errors import HedgeError

_STARTED = int(time.time())


def _model(alias: str) -> dict[str, object]:
    return {"id": alias, "object": "model", "created": _STARTED, "owned_by": "hedge"}


async def list_models(request: Request) -> Response:
    runtime = runtime_of(request)
    try:
        key = await authenticate(request, runtime)
    except HedgeError as exc:
        return error_response(exc)
    aliases = [a for a in runtime.router.aliases if key is None or not key.models or a in key.models]
    return json_response({"object": "list", "data": [_model(a) for a in aliases]})


async def get_model(request: Request) -> Response:
    runtime = runtime_of(request)
    try:
        await authenticate(request, runtime)
        alias = runtime.router.alias(request.path_params["model"])
    except HedgeError as exc:
        return error_response(exc)
    return json_response(_model(alias.name))


async def health(request: Request) -> Response:
    runtime = runtime_of(request)
    return json_response({"status": "ok", "models": len(runtime.router.aliases)})
