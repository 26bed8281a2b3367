"""The mock upstream application: one wire style plus the ``/_mock`` control endpoints."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hedge.mock import (
    anthropic_batches,
    anthropic_style,
    gemini_batches,
    gemini_style,
    openai_batches,
    openai_responses,
    openai_style,
)
from hedge.mock.state import Knobs, MockState

STYLES: dict[str, Callable[[], list[Route]]] = {
    "openai": lambda: [*openai_style.routes(), *openai_responses.routes(), *openai_batches.routes()],
    "anthropic": lambda: [*anthropic_style.routes(), *anthropic_batches.routes()],
    "gemini": lambda: [*gemini_batches.routes(), *gemini_style.routes()],
}


async def _stats(request: Request) -> Response:
    state: MockState = request.app.state.mock
    return Response(state.snapshot_json(), media_type="application/json")


async def _configure(request: Request) -> Response:
    state: MockState = request.app.state.mock
    try:
        changes = orjson.loads(await request.body())
        if not isinstance(changes, dict):
            raise ValueError("expected a JSON object")
        state.configure(changes)
    except (ValueError, TypeError) as exc:
        return Response(orjson.dumps({"error": str(exc)}), status_code=400, media_type="application/json")
    return Response(state.snapshot_json(), media_type="application/json")


async def _reset(request: Request) -> Response:
    state: MockState = request.app.state.mock
    state.reset()
    return Response(state.snapshot_json(), media_type="application/json")


async def _complete_batches(request: Request) -> Response:
    """End every batch still running now, as if its last retrieval had come (see ``batch_polls``)."""
    state: MockState = request.app.state.mock
    ended = state.batches.finish_all()
    return Response(orjson.dumps({"ended": ended}), media_type="application/json")


def create_mock_app(style: str, knobs: Knobs | None = None, seed: int | None = None) -> Starlette:
    if style not in STYLES:
        raise ValueError(f"unknown mock style {style!r}; choose from {', '.join(sorted(STYLES))}")
    app = Starlette(
        routes=[
            *STYLES[style](),
            Route("/_mock/stats", _stats, methods=["GET"]),
            Route("/_mock/config", _configure, methods=["POST"]),
            Route("/_mock/reset", _reset, methods=["POST"]),
            Route("/_mock/batches/complete", _complete_batches, methods=["POST"]),
        ]
    )
    app.state.mock = MockState(style, knobs or Knobs(), seed)
    return app
