"""Small network helpers shared by the CLI, the demo and the tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn
from starlette.types import ASGIApp

from hedge.api.connections import guarded_protocol


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve_in_loop(
    app: ASGIApp, port: int, host: str = "127.0.0.1", http: type[asyncio.Protocol] | None = None
) -> AsyncIterator[uvicorn.Server]:
    """Run an ASGI app on this event loop (for the demo and in-process tests).

    ``http`` is the protocol class; by default one of its own from ``guarded_protocol()``, so each
    server gets the default connection limits and counts its connections apart from the others'.
    """
    if http is None:
        http = guarded_protocol()
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on", http=http
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError(f"server on port {port} stopped during start-up")
            await asyncio.sleep(0.01)
        yield server
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
