"""The ASGI application: routes, lifespan and the catch-all error handlers.

Starlette, with no middleware on the request path: each endpoint is a plain
async function, and every error is rendered in OpenAI's shape (Anthropic's under
``/v1/messages``), including unknown routes, wrong methods and anything unexpected
(logged, never a traceback to the client).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from hedge import heap
from hedge.api.admin import (
    create_key,
    create_team,
    key_detail,
    list_keys,
    list_teams,
    spend,
    team_detail,
)
from hedge.api.batches import cancel_batch, create_batch, dashboard_batches, get_batch, list_batches
from hedge.api.chat import chat_completions, embeddings
from hedge.api.completions import completions
from hedge.api.count_tokens import count_tokens
from hedge.api.dashboard import (
    admin_health,
    breakers,
    conformance,
    experiments_panel,
    latency,
    request_detail,
    requests,
    summary,
    timeseries,
    ui_asset,
    ui_page,
)
from hedge.api.experiments import experiment_detail, feedback, list_experiments
from hedge.api.files import create_file, delete_file, file_content, get_file, list_files
from hedge.api.http import error_response
from hedge.api.messages import anthropic_error, messages
from hedge.api.metrics import metrics_endpoint
from hedge.api.models import get_model, health, list_models
from hedge.api.responses import (
    cancel_response,
    create_response,
    delete_response,
    get_response,
    list_input_items,
)
from hedge.batch.metrics import BatchCollector
from hedge.batch.worker import BatchWorker
from hedge.config import CONFIG_ENV, Config, load_config
from hedge.errors import HedgeError
from hedge.experiments.service import Experiments
from hedge.gateway.runtime import Runtime
from hedge.record import new_request_id
from hedge.store.bodies import BodyLog
from hedge.store.responses import Pruner, ResponseStore

log = logging.getLogger("hedge")


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
    return _error(request, err)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return _error(request, HedgeError("The gateway hit an internal error; it has been logged.", status=500))


def _error(request: Request, err: HedgeError) -> Response:
    """OpenAI's error shape, but Anthropic's under ``/v1/messages``, where the Anthropic SDK is the client."""
    path = request.url.path
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return anthropic_error(err, new_request_id())
    return error_response(err)


class HedgeApp(Starlette):
    """Starlette, plus a fast path for the model endpoints.

    The hot endpoints handle their own errors, so they are dispatched by an exact
    (method, path) lookup straight to the endpoint, skipping Starlette's router
    and exception middleware; everything else goes the usual way.
    """

    fast: dict[tuple[str, str], Callable[[Request], Awaitable[Response]]] = {}
    runtime: Runtime
    """Also ``state.runtime``: endpoints read it as a plain attribute (:func:`hedge.api.http.runtime_of`),
    since ``State`` answers through ``__getattr__`` after a failed lookup, on every request."""
    experiments: Experiments

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.fast.get((scope["method"], scope["path"]))
            if endpoint is not None:
                scope["app"] = self
                request = Request(scope, receive, send)
                try:
                    response = await endpoint(request)
                except ClientDisconnect:
                    return
                except Exception as exc:
                    response = await _unexpected(request, exc)
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(
    config: Config,
    runtime: Runtime | None = None,
    experiments: Experiments | None = None,
    *,
    serving: bool = False,
) -> Starlette:
    """The gateway's ASGI app; ``runtime`` and ``experiments`` (built on that runtime, e.g. with a
    test's clock) are made from ``config`` unless given. ``serving``: this process is a server
    (``hedge serve``), whose heap is frozen once it has started (:mod:`hedge.heap`)."""
    rt = runtime or (experiments.runtime if experiments is not None else Runtime(config))
    experiments = experiments or Experiments(rt)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await rt.start()
        await experiments.start()
        body_log = None
        if config.server.log_bodies:
            body_log = BodyLog(
                rt.db,
                config.state.flush_interval_s,
                state_dir=config.state.dir,
                shutdown_timeout_s=config.state.shutdown_timeout_s,
            )
            body_log.start()
            rt.sinks.append(body_log)
        # The batch worker polls the database for batch work (any replica's), so it always runs:
        # with no active batch a tick is one indexed query.
        worker = BatchWorker(rt)
        app.state.batch_worker = worker
        rt.metrics.add_collector(BatchCollector(lambda: worker.totals))
        worker.start()
        pruner = Pruner(ResponseStore(rt.db, config.state.responses_retention_days))
        pruner.start()
        if serving:
            heap.settle()
        try:
            yield
        finally:
            await experiments.close()  # running shadow copies finish (or are cut) before the ledger closes
            await worker.close()
            await pruner.close()
            if body_log is not None:
                await body_log.close()
            await rt.close()

    app = HedgeApp(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/completions", completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", get_model, methods=["GET"]),
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
            Route("/v1/responses", create_response, methods=["POST"]),
            Route("/responses", create_response, methods=["POST"]),
            Route("/v1/responses/{response_id}", get_response, methods=["GET"]),
            Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
            Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
            Route("/v1/responses/{response_id}/cancel", cancel_response, methods=["POST"]),
            Route("/responses/{response_id}", get_response, methods=["GET"]),
            Route("/responses/{response_id}", delete_response, methods=["DELETE"]),
            Route("/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
            Route("/responses/{response_id}/cancel", cancel_response, methods=["POST"]),
            Route("/v1/files", create_file, methods=["POST"]),
            Route("/v1/files", list_files, methods=["GET"]),
            Route("/v1/files/{file_id}", get_file, methods=["GET"]),
            Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
            Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
            Route("/v1/batches", create_batch, methods=["POST"]),
            Route("/v1/batches", list_batches, methods=["GET"]),
            Route("/v1/batches/{batch_id}", get_batch, methods=["GET"]),
            Route("/v1/batches/{batch_id}/cancel", cancel_batch, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/admin/keys", create_key, methods=["POST"]),
            Route("/admin/keys", list_keys, methods=["GET"]),
            Route("/admin/keys/{key_id}", key_detail, methods=["GET", "PATCH", "DELETE"]),
            Route("/admin/teams", create_team, methods=["POST"]),
            Route("/admin/teams", list_teams, methods=["GET"]),
            Route("/admin/teams/{name}", team_detail, methods=["GET", "PATCH"]),
            Route("/admin/spend", spend, methods=["GET"]),
            Route("/v1/feedback", feedback, methods=["POST"]),
            Route("/feedback", feedback, methods=["POST"]),
            Route("/admin/experiments", list_experiments, methods=["GET"]),
            Route("/admin/experiments/{name}", experiment_detail, methods=["GET"]),
            Route("/admin/health", admin_health, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/ui", ui_page, methods=["GET"]),
            Route("/ui/", ui_page, methods=["GET"]),
            Route("/ui/{name}", ui_asset, methods=["GET"]),
            Route("/admin/dashboard/summary", summary, methods=["GET"]),
            Route("/admin/dashboard/timeseries", timeseries, methods=["GET"]),
            Route("/admin/dashboard/latency", latency, methods=["GET"]),
            Route("/admin/dashboard/breakers", breakers, methods=["GET"]),
            Route("/admin/dashboard/requests", requests, methods=["GET"]),
            Route("/admin/dashboard/requests/{request_id}", request_detail, methods=["GET"]),
            Route("/admin/dashboard/conformance", conformance, methods=["GET"]),
            Route("/admin/dashboard/experiments", experiments_panel, methods=["GET"]),
            Route("/admin/dashboard/batches", dashboard_batches, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _unexpected},
        lifespan=lifespan,
    )
    app.state.runtime = app.runtime = rt
    app.state.experiments = app.experiments = experiments
    app.fast = {
        ("POST", "/v1/chat/completions"): chat_completions,
        ("POST", "/chat/completions"): chat_completions,
        ("POST", "/v1/completions"): completions,
        ("POST", "/completions"): completions,
        ("POST", "/v1/embeddings"): embeddings,
        ("POST", "/v1/messages"): messages,
        ("POST", "/v1/messages/count_tokens"): count_tokens,
        ("POST", "/v1/responses"): create_response,
        ("POST", "/responses"): create_response,
    }
    return app


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory`` and multi-worker serving: config path from ``HEDGE_CONFIG``."""
    return create_app(load_config(os.environ[CONFIG_ENV]), serving=True)
