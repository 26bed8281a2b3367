"""The ASGI application: routes, lifespan and the catch-all error handlers.

Starlette, with no middleware on the request path: each endpoint is a plain
async function, and every error is rendered in OpenAI's shape, including
unknown routes, wrong methods and anything unexpected (logged, never a traceback
to the client).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hedge.api.admin import create_key, key_detail, list_keys, spend
from hedge.api.chat import chat_completions, embeddings
from hedge.api.http import error_response
from hedge.api.messages import messages
from hedge.api.models import get_model, health, list_models
from hedge.config import Config, load_config
from hedge.errors import HedgeError
from hedge.observe.metrics import metrics_endpoint
from hedge.runtime import Runtime

log = logging.getLogger("hedge")

CONFIG_ENV = "HEDGE_CONFIG"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err = HedgeError(
            f"Invalid URL ({request.method} {request.url.path})", status=404, type="invalid_request_error"
        )
    elif exc.status_code == 405:
        err = HedgeError(
            f"Method {request.method} is not allowed for {request.url.path}",
            status=405,
            type="invalid_request_error",
        )
    else:
        err = HedgeError(str(exc.detail), status=exc.status_code, type="invalid_request_error")
    return error_response(err)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(HedgeError("The gateway hit an internal error; it has been logged.", status=500))


def create_app(config: Config, runtime: Runtime | None = None) -> Starlette:
    rt = runtime or Runtime(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await rt.start()
        try:
            yield
        finally:
            await rt.close()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", get_model, methods=["GET"]),
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/admin/keys", create_key, methods=["POST"]),
            Route("/admin/keys", list_keys, methods=["GET"]),
            Route("/admin/keys/{key_id}", key_detail, methods=["GET", "PATCH", "DELETE"]),
            Route("/admin/spend", spend, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _unexpected},
        lifespan=lifespan,
    )
    app.state.runtime = rt
    return app


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory`` and multi-worker serving: config path from ``HEDGE_CONFIG``."""
    return create_app(load_config(os.environ[CONFIG_ENV]))
