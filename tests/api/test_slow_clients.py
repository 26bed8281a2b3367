"""Slow or greedy clients cannot hold the gateway's connections: header and body read timeouts, and a
cap on concurrent connections per client address. Normal traffic, keep-alive and long streams pass.

The gateway runs with 1 s timeouts; raw sockets play the misbehaving clients. Every wait is bounded
by ``BOUND`` (many times the timeouts), which only proves that nothing hangs forever.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import MASTER_KEY, Gateway, Mock, start_gateway, two_provider_config
from hedge.api.connections import guarded_protocol
from hedge.cli.net import free_port, serve_in_loop
from hedge.mock.server import create_mock_app
from hedge.mock.state import Knobs

TIMEOUT_S = 1.0
CAP = 4
BOUND = 15.0
"""Seconds a socket may wait for the server: fifteen times the timeouts under test."""

CHAT = orjson.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]})


def slow_config(cheap: Mock, premium: Mock) -> dict[str, Any]:
    return two_provider_config(
        cheap,
        premium,
        header_timeout_s=TIMEOUT_S,
        body_timeout_s=TIMEOUT_S,
        max_connections_per_client=CAP,
    )


@pytest.fixture(scope="module")
def slow_gateway(cheap: Mock, premium: Mock, logs: Path) -> Iterator[Gateway]:
    gw = start_gateway(slow_config(cheap, premium), logs)
    yield gw
    gw.stop()


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    """A raw connection from ``source`` (any 127.x address is loopback, so tests can be separate clients)."""
    return socket.create_connection(("127.0.0.1", port), timeout=BOUND, source_address=(source, 0))


def request(path: str = "/health", method: str = "GET", body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1", f"authorization: Bearer {MASTER_KEY}"]
    if body or method == "POST":
        lines += ["content-type: application/json", f"content-length: {len(body)}"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (``socket.timeout`` past ``BOUND``)."""
    data = b""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the connection was still open after {BOUND} s; got {data!r}")


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response with a ``content-length`` body, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    status, headers, body = parse(data)
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return status, headers, body


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def assert_timeout_answer(raw: bytes) -> dict[str, Any]:
    """The connection was answered 408 in OpenAI's error shape (``request_timeout``) and closed."""
    assert raw, "closed without an answer"
    status, headers, body = parse(raw)
    assert status == 408, raw
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/json"
    data: dict[str, Any] = orjson.loads(body)
    return data


def counted(url: str, name: str, **match: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in match.items())
    )


# -- header read timeout -----------------------------------------------------------------------------


UNFINISHED = {
    "nothing sent": b"",
    "request line unfinished": b"GET /hea",
    "headers unfinished": b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n",
}


def test_unfinished_headers_get_408_and_the_connection_is_closed(slow_gateway: Gateway) -> None:
    socks = {name: connect(slow_gateway.port) for name in UNFINISHED}  # all at once: one timeout to wait
    try:
        for name, sock in socks.items():
            sock.sendall(UNFINISHED[name])
        for name, sock in socks.items():
            data = assert_timeout_answer(read_until_closed(sock))
            assert data["error"]["code"] == "request_timeout", name
            assert data["error"]["type"] == "invalid_request_error", name
            assert "headers were not received" in data["error"]["message"], name
    finally:
        for sock in socks.values():
            sock.close()


def test_next_request_on_a_keep_alive_connection_must_finish_its_headers_too(slow_gateway: Gateway) -> None:
    with connect(slow_gateway.port) as sock:
        sock.sendall(request())
        status, _, _ = read_response(sock)
        assert status == 200
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n")  # and never the blank line
        data = assert_timeout_answer(read_until_closed(sock))
    assert data["error"]["code"] == "request_timeout"


# -- body read timeout -------------------------------------------------------------------------------


def test_unfinished_body_gets_408_request_timeout_and_is_recorded(slow_gateway: Gateway) -> None:
    before = counted(slow_gateway.url, "hedge_requests_total", endpoint="chat", status="408")
    with connect(slow_gateway.port) as sock:
        head = request("/v1/chat/completions", "POST", CHAT)
        sock.sendall(head[: -len(CHAT) // 2])  # the headers and half the body
        data = assert_timeout_answer(read_until_closed(sock))
    assert data == {
        "error": {
            "message": f"The request body was not received within {TIMEOUT_S:g} s.",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_timeout",
        }
    }
    deadline = time.monotonic() + BOUND
    while counted(slow_gateway.url, "hedge_requests_total", endpoint="chat", status="408") == before:
        assert time.monotonic() < deadline, "the timed-out request was never recorded as a 408"
        time.sleep(0.05)
    log = slow_gateway.log.read_text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_unfinished_body_on_messages_gets_anthropics_error_shape(slow_gateway: Gateway, path: str) -> None:
    body = orjson.dumps({"model": "chat", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    with connect(slow_gateway.port) as sock:
        sock.sendall(request(path, "POST", body)[:-10])
        data = assert_timeout_answer(read_until_closed(sock))
    assert data["type"] == "error" and "not received" in data["error"]["message"]
    assert data["error"]["type"] == "invalid_request_error"  # Anthropic: any 4xx it has no type for


# -- connections per client address ------------------------------------------------------------------


def test_connections_over_the_cap_are_refused_while_the_first_ones_work(slow_gateway: Gateway) -> None:
    client = "127.0.0.2"  # a client of its own, so other tests' connections do not count
    held = [connect(slow_gateway.port, client) for _ in range(CAP)]
    try:
        for sock in held:  # each is accepted and served (and then kept alive)
            sock.sendall(request())
            assert read_response(sock)[0] == 200
        for _ in range(2):
            with connect(slow_gateway.port, client) as extra:
                extra.sendall(request())
                raw = read_until_closed(extra)
            status, _, body = parse(raw)
            assert status == 429, raw
            error = orjson.loads(body)["error"]
            assert error["code"] == "too_many_connections"
            assert str(CAP) in error["message"]
        # Another address is not affected, and the held connections still work.
        assert httpx.get(f"{slow_gateway.url}/health", timeout=BOUND).status_code == 200
        for sock in held:
            sock.sendall(request())
            assert read_response(sock)[0] == 200
    finally:
        for sock in held:
            sock.close()
    # Once they are closed, the address may connect again (the server notices the closes at once).
    deadline = time.monotonic() + BOUND
    while True:
        with connect(slow_gateway.port, client) as sock:
            sock.sendall(request())
            if read_response(sock)[0] == 200:
                break
        assert time.monotonic() < deadline, "the address stayed refused after closing its connections"
    refusals = [line for line in slow_gateway.log.read_text().splitlines() if "refused" in line]
    assert len([line for line in refusals if client in line]) == 1, "logged at most once a minute per address"


# -- what must not change ----------------------------------------------------------------------------


def test_normal_requests_and_keep_alive_are_unaffected(slow_gateway: Gateway) -> None:
    with connect(slow_gateway.port) as sock:
        for _ in range(3):
            sock.sendall(request("/v1/chat/completions", "POST", CHAT))
            status, _, body = read_response(sock)
            assert status == 200, body
        # A body sent in pieces, each well within the timeout, is fine.
        head = request("/v1/chat/completions", "POST", CHAT)
        sock.sendall(head[:-10])
        sock.sendall(head[-10:])
        assert read_response(sock)[0] == 200
    with httpx.Client(base_url=slow_gateway.url, timeout=BOUND) as client:
        assert all(client.get("/health").status_code == 200 for _ in range(5))


def test_long_stream_and_idle_keep_alive_outlast_the_timeouts(slow_gateway: Gateway, premium: Mock) -> None:
    premium.configure(latency_ms=2500)  # spread over the stream: it lasts longer than both timeouts
    sdk = openai.OpenAI(base_url=slow_gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=BOUND)
    with connect(slow_gateway.port) as idle:
        idle.sendall(request())
        assert read_response(idle)[0] == 200
        started = time.monotonic()
        stream = sdk.chat.completions.create(
            model="premium", messages=[{"role": "user", "content": "tell me a story"}], stream=True
        )
        chunks = list(stream)
        assert time.monotonic() - started > 2 * TIMEOUT_S, "premise: the stream outlasts the timeouts"
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        # The connection that sat idle (keep-alive) all that time still serves.
        idle.sendall(request())
        assert read_response(idle)[0] == 200


# -- other ways of serving -----------------------------------------------------------------------------


def test_workers_apply_the_timeouts(cheap: Mock, premium: Mock, logs: Path) -> None:
    gw = start_gateway(slow_config(cheap, premium), logs, "--workers", "2")
    try:
        socks = [connect(gw.port) for _ in range(4)]  # whichever worker accepts each
        try:
            for sock in socks:
                sock.sendall(b"GET /health HTTP/1.1\r\n")
            for sock in socks:
                assert_timeout_answer(read_until_closed(sock))
        finally:
            for sock in socks:
                sock.close()
    finally:
        gw.stop()


async def test_serve_in_loop_counts_connections_per_server() -> None:
    """Two servers in one process (like the demo) keep separate counts."""
    ports = free_port(), free_port()
    async with (
        serve_in_loop(
            create_mock_app("openai", Knobs()), ports[0], http=guarded_protocol(max_connections_per_client=1)
        ),
        serve_in_loop(
            create_mock_app("openai", Knobs()), ports[1], http=guarded_protocol(max_connections_per_client=1)
        ),
        httpx.AsyncClient(timeout=BOUND) as first,
        httpx.AsyncClient(timeout=BOUND) as second,
    ):
        for port in ports:  # one kept-alive connection to each server
            assert (await first.get(f"http://127.0.0.1:{port}/_mock/stats")).status_code == 200
        refused = await second.get(f"http://127.0.0.1:{ports[0]}/_mock/stats")
        assert refused.status_code == 429
        assert (await first.get(f"http://127.0.0.1:{ports[1]}/_mock/stats")).status_code == 200
