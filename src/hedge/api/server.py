"""Hedge's HTTP/1.1 server protocol: bytes in, ASGI requests to the app, responses out.

uvicorn still runs the server (sockets, worker processes, lifespan, signals, graceful shutdown) and
is handed this protocol class as ``http``. Its own httptools protocol cost about 80,000 CPU
instructions a request more than a minimal ASGI server on the same parser (counted with ``valgrind
--tool=callgrind`` over 2,000 proxied requests: 213,000 against 133,000), a tenth of what Hedge
spends on a request: an ``asyncio.Event`` and a keep-alive timer armed and cancelled for every
request, the scope built in three steps with the URL parsed by a C call, regular expressions over
every response header, two writes per response. This protocol parses with the same llhttp (via
httptools) and keeps uvicorn's behaviour where a client can see it: pipelining, ``Expect:
100-continue``, HTTP/1.0, read back-pressure past 64 KiB of unread body, write back-pressure,
``limit_concurrency``, ``root_path``, the ``date`` header, graceful shutdown.

Deadlines are floats on the connection, enforced by one timer per server that sweeps the open
connections several times per timeout: a connection that is idle between requests past uvicorn's
``timeout_keep_alive`` is closed, and the guards of :class:`hedge.api.connections.GuardedProtocol`
(header and body timeouts) use the same sweep. Requests that arrive together start at most
``starts_per_turn`` per turn of the event loop (see :meth:`ServerProtocol.start`).

Beyond uvicorn: a request head over :data:`MAX_HEAD_BYTES` is answered 431, and the protocol's own
answers (400, 431, 500) are JSON in OpenAI's error shape.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import urllib.parse
from collections import deque
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, service_unavailable
from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl
from uvicorn.server import ServerState

from hedge.api.cycle import DEPARTURE, STATUS_LINE, Cycle

log = logging.getLogger("hedge")

MAX_HEAD_BYTES = 64 * 1024
"""A request's line and headers may take this many bytes; past it the answer is 431."""

HEAD, BODY, BUSY, IDLE = 0, 1, 2, 3
"""What a connection is doing, for its deadline: reading a request head, reading a body, neither
(a response is being made; no deadline), or waiting for its next request (keep-alive)."""

_METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")}


def closing_response(status: int, body: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> bytes:
    """A whole JSON ``connection: close`` response, for answers written without the app."""
    head = [STATUS_LINE[status], *(name + b": " + value + b"\r\n" for name, value in extra)]
    head.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body))
    return b"".join(head) + b"connection: close\r\n\r\n" + body


def http_error(status: int, message: str, code: str) -> bytes:
    """A :func:`closing_response` in OpenAI's error shape."""
    body = orjson.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    )
    return closing_response(status, body)


class ServerProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection: parses requests, starts a :class:`Cycle` per request, pipelines."""

    header_timeout_s: ClassVar[float] = 10.0
    body_timeout_s: ClassVar[float] = 60.0
    starts_per_turn: ClassVar[int] = 32
    """Request starts per turn of the event loop (see :meth:`start`)."""

    # One server's state; every subclass gets its own (``__init_subclass__``).
    _open: ClassVar[set[ServerProtocol]] = set()
    _sweeper: ClassVar[asyncio.TimerHandle | None] = None
    _starts: ClassVar[int] = 0
    _deferred: ClassVar[deque[tuple[ServerProtocol, Cycle, Any, dict[str, Any]]]] = deque()
    _turn: ClassVar[asyncio.Handle | None] = None

    transport: asyncio.Transport

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._open = set()
        cls._sweeper = None
        cls._starts = 0
        cls._deferred = deque()
        cls._turn = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.server_state = server_state
        self.app_state = app_state
        self.root_path = config.root_path
        self.limit_concurrency = config.limit_concurrency
        self.keep_alive_s = float(config.timeout_keep_alive)
        self.fresh_context = bool(getattr(config, "reset_contextvars", False))
        self.asgi = {"version": config.asgi_version, "spec_version": "2.3"}
        self.parser = httptools.HttpRequestParser(self)
        # Answer the first of pipelined requests even when the client closed after sending them.
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.cycle: Cycle | None = None
        self.scope: dict[str, Any] | None = None  # the request being read (the latest)
        self.pipeline: deque[tuple[Cycle, Any, dict[str, Any]]] = deque()
        self.read_paused = False
        self.write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._expect_100 = False
        self._head_bytes = 0
        self._stopped = False
        # When the current phase must be over (0: no deadline), and which phase it is.
        self._deadline = 0.0
        self._phase = HEAD

    # -- connection life ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        cls = type(self)
        self.transport = transport
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        self.server = get_local_addr(transport)
        self.client = get_remote_addr(transport)
        self.scheme = "https" if is_ssl(transport) else "http"
        self._phase = HEAD
        self._deadline = self.loop.time() + self.header_timeout_s
        cls._open.add(self)
        if cls._sweeper is None:
            cls._sweep_later(self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        type(self)._open.discard(self)
        self.server_state.connections.discard(self)
        self._deadline = 0.0
        cycle = self.cycle
        if cycle is not None:
            if not cycle.response_complete:
                cycle.disconnect()
                cycle.leave()
            else:
                cycle.wake()
        for waiting, _, _ in self.pipeline:
            waiting.disconnect()
        self.pipeline.clear()
        self.resume_writing()
        if exc is None:
            self.transport.close()

    def eof_received(self) -> bool | None:
        return None  # the client is done sending: close (as uvicorn does)

    def shutdown(self) -> None:
        """The server is stopping: close now if idle, else after the response in progress."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self.transport.close()
        else:
            cycle.keep_alive = False

    # -- reading -------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._stopped:
            return  # refused, or after an upgrade request: nothing more is parsed
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._stopped = True  # no protocol is switched to: answered as plain HTTP, then closed
            if self.cycle is not None:
                self.cycle.keep_alive = False
        except httptools.HttpParserError:
            self._refuse(400, "Invalid HTTP request received.", "invalid_http_request")
            return
        if self._phase == HEAD:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                message = f"The request head is over {MAX_HEAD_BYTES} bytes."
                self._refuse(431, message, "request_head_too_large")

    def on_message_begin(self) -> None:
        if self._stopped:
            return
        self._url = b""
        self._headers = []
        self._expect_100 = False
        if self._phase != HEAD:  # the first request keeps the deadline counted from connecting
            self._phase = HEAD
            self._head_bytes = 0
            self._deadline = self.loop.time() + self.header_timeout_s

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        value = value.rstrip(b" \t")  # llhttp keeps trailing whitespace, which is not the value's
        if name == b"expect" and value.lower() == b"100-continue":
            self._expect_100 = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._stopped:
            return  # refused: what the parser still finds in this read is not served
        parser = self.parser
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("ascii")
        version = parser.get_http_version()
        url = self._url
        if url[:1] == b"/" and b"#" not in url:
            raw_path, _, query = url.partition(b"?")
        else:  # absolute form, or a fragment to strip
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                self._refuse(400, "Invalid request target.", "invalid_http_request")
                return
            raw_path, query = parsed.path or b"", parsed.query or b""
        try:
            path = raw_path.decode("ascii")
        except UnicodeDecodeError:
            self._refuse(400, "Invalid request target.", "invalid_http_request")
            return
        if "%" in path:
            path = urllib.parse.unquote(path)
        root = self.root_path
        cycle = Cycle(self, method, version != "1.0" and parser.should_keep_alive(), self._expect_100)
        self.scope = scope = {
            "type": "http",
            "asgi": self.asgi,
            "http_version": version,
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": method,
            "root_path": root,
            "path": root + path if root else path,
            "raw_path": root.encode("ascii") + raw_path if root else raw_path,
            "query_string": query,
            "headers": self._headers,
            "state": self.app_state.copy(),
            DEPARTURE: cycle,
        }
        self._phase = BODY
        self._head_bytes = 0
        self._deadline = self.loop.time() + self.body_timeout_s
        app = self.app
        limit = self.limit_concurrency
        if limit is not None and (
            len(self.server_state.connections) >= limit or len(self.server_state.tasks) >= limit
        ):
            log.warning("over uvicorn's limit_concurrency (%d): answered 503", limit)
            app = service_unavailable
        current = self.cycle
        self.cycle = cycle
        if current is None or current.response_complete:
            self.start(cycle, app, scope)
        else:  # pipelined behind a response still being made: it waits its turn, and reading stops
            self.pause_reading()
            self.pipeline.appendleft((cycle, app, scope))

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return  # already answered (say, a 401): the rest of the body is not wanted
        if cycle.add_body(body) > HIGH_WATER_LIMIT:
            self.pause_reading()

    def on_message_complete(self) -> None:
        self._phase = BUSY
        self._deadline = 0.0
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.end_body()

    # -- requests ------------------------------------------------------------------------------------

    def start(self, cycle: Cycle, app: Any, scope: dict[str, Any]) -> None:
        """Start at most ``starts_per_turn`` (32) requests per turn of the event loop; queue the rest.

        Requests that arrive together are otherwise all set up in one turn before the loop polls
        again: in a burst of hundreds, none reaches its upstream until all are set up (a new
        upstream connection completes only at the next poll), and streams already running wait
        that long for their next chunk. Started a few per turn, the first requests of a burst go
        out while the rest are set up, and running streams are relayed in between.
        """
        cls = type(self)
        if cls._turn is None:
            cls._turn = self.loop.call_soon(cls._next_turn, self.loop)
        if cls._starts < cls.starts_per_turn and not cls._deferred:
            cls._starts += 1
            self._run(cycle, app, scope)
        else:
            cls._deferred.append((self, cycle, app, scope))

    @classmethod
    def _next_turn(cls, loop: asyncio.AbstractEventLoop) -> None:
        cls._turn = None
        cls._starts = 0
        deferred = cls._deferred
        while deferred and cls._starts < cls.starts_per_turn:
            protocol, cycle, app, scope = deferred.popleft()
            if cycle.disconnected:
                continue  # its client left while it waited: nothing to answer
            cls._starts += 1
            protocol._run(cycle, app, scope)
        if deferred or cls._starts:
            cls._turn = loop.call_soon(cls._next_turn, loop)

    def _run(self, cycle: Cycle, app: Any, scope: dict[str, Any]) -> None:
        if self.fresh_context:  # uvicorn's reset_contextvars: no context leaks into requests
            task = self.loop.create_task(cycle.run(app, scope), context=contextvars.Context())
        else:
            task = self.loop.create_task(cycle.run(app, scope))
        tasks = self.server_state.tasks
        task.add_done_callback(tasks.discard)
        tasks.add(task)

    def on_response_complete(self, cycle: Cycle) -> None:
        """A response was sent whole: start the next pipelined request, or wait for one."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.resume_reading()
        if self.pipeline:
            waiting, app, scope = self.pipeline.pop()
            self.start(waiting, app, scope)
        elif self._phase == BUSY:  # nothing of a next request read yet: the keep-alive wait
            self._phase = IDLE
            self._deadline = self.loop.time() + self.keep_alive_s

    # -- flow control --------------------------------------------------------------------------------

    def pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    async def drain(self) -> None:
        """Wait until the transport takes writes again (or the connection is lost)."""
        if self._drained is None:
            self._drained = self.loop.create_future()
        await asyncio.shield(self._drained)

    # -- deadlines, off the request path -------------------------------------------------------------

    @classmethod
    def _sweep_every(cls, loop: asyncio.AbstractEventLoop) -> float:
        return min(1.0, max(0.05, min(cls.header_timeout_s, cls.body_timeout_s) / 8))

    @classmethod
    def _sweep_later(cls, loop: asyncio.AbstractEventLoop) -> None:
        cls._sweeper = loop.call_later(cls._sweep_every(loop), cls._sweep, loop)

    @classmethod
    def _sweep(cls, loop: asyncio.AbstractEventLoop) -> None:
        if not cls._open:
            cls._sweeper = None  # the next connection starts it again
            return
        now = loop.time()
        for conn in [c for c in cls._open if 0.0 < c._deadline <= now]:
            try:
                conn._expire(now)
            except Exception:  # one odd connection must not stop the sweeps
                log.exception("could not enforce a connection timeout")
                conn.transport.close()
        cls._sweep_later(loop)

    def _expire(self, now: float) -> None:
        """The current phase's deadline passed."""
        if self._phase == IDLE:
            self._deadline = 0.0
            self.transport.close()  # an idle keep-alive connection: nothing to answer
        elif self._phase == HEAD:
            self.head_timed_out(now)
        elif self._phase == BODY:
            self.body_timed_out(now)

    def head_timed_out(self, now: float) -> None:
        """A request head did not arrive in time (the guards answer 408; here: close)."""
        self._deadline = 0.0
        self.transport.close()

    def body_timed_out(self, now: float) -> None:
        """A request body did not arrive in time (the guards answer 408; here: close)."""
        self._deadline = 0.0
        self.transport.close()

    # -- the protocol's own answers --------------------------------------------------------------------

    def _refuse(self, status: int, message: str, code: str) -> None:
        """Answer a request the app never sees, and close; never in the middle of another response."""
        log.info("answered %d: %s", status, message)
        self._deadline = 0.0
        self._stopped = True  # parse nothing more
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False  # the response in progress finishes, then the connection closes
            self.pause_reading()
            return
        self.transport.write(http_error(status, message, code))
        self.transport.close()
