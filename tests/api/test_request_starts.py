"""Requests that arrive together start a few per turn of the event loop, not all in one turn.

The server runs in-process; a callback that reschedules itself every turn is the loop's clock. The
clients' requests are written before the loop next polls, so they all arrive in one poll.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from conftest import answer_lifespan
from hedge.api.connections import guarded_protocol
from hedge.cli.net import free_port, serve_in_loop

BOUND = 15.0


async def test_a_burst_starts_at_most_the_configured_number_of_requests_per_turn() -> None:
    loop = asyncio.get_running_loop()
    turn = 0
    started: list[int] = []
    all_started = asyncio.Event()

    def tick() -> None:
        nonlocal turn
        turn += 1
        clock[0] = loop.call_soon(tick)

    clock = [loop.call_soon(tick)]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        started.append(turn)
        if len(started) == 6:
            all_started.set()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    protocol = guarded_protocol()
    protocol.starts_per_turn = 2
    port = free_port()
    clients: list[socket.socket] = []
    try:
        async with serve_in_loop(app, port, http=protocol):  # type: ignore[arg-type]
            for _ in range(6):  # blocking sockets: connected and written before the loop polls
                sock = socket.create_connection(("127.0.0.1", port), timeout=BOUND)
                sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                clients.append(sock)
            async with asyncio.timeout(BOUND):
                await all_started.wait()
            for sock in clients:
                sock.setblocking(False)
                async with asyncio.timeout(BOUND):
                    assert (await loop.sock_recv(sock, 1024)).endswith(b"\r\n\r\nok")
    finally:
        clock[0].cancel()
        for sock in clients:
            sock.close()
    per_turn = [started.count(t) for t in sorted(set(started))]
    assert max(per_turn) <= 2, started
    assert len(per_turn) >= 3, started
