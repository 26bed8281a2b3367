"""A lean keep-alive HTTP/1.1 client for upstream calls: asyncio protocols and httptools.

Why not aiohttp: the gateway's own CPU per request is what caps its throughput, and aiohttp's
client machinery (request and response objects, cookie jar, timer contexts, per-request trace
hooks) was about a quarter of it. Measured at c=32 against ``hedge mock`` (``bench/client.py``),
aiohttp costs ~270 µs of CPU per request, this client ~90 µs, and the Rust-backed clients we
tried more than aiohttp's Python code saves (pyreqwest ~200 µs, rnet ~290 µs: every request
crosses to a Tokio thread and back). An upstream call needs little of HTTP: one origin per
pool, a request written in one go, a response parsed by httptools (llhttp, uvicorn's parser),
keep-alive, timeouts, bounded buffering. That is all this module does.

One request runs on a connection at a time (no pipelining). A connection goes back to its pool
the moment its response is complete, whether or not the reader has taken the body yet: the
body is buffered in the :class:`Response`, not the connection.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import urllib.parse
import zlib
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import httptools

if TYPE_CHECKING:
    from collections.abc import Mapping

from hedge import __version__
from hedge.transport.dns import Addresses

USER_AGENT = f"hedge/{__version__}"

_HIGH_WATER = 256 * 1024
"""Buffered body bytes past which the connection stops reading until the reader catches up."""
_LOW_WATER = 64 * 1024
_DECODE_STEP = 1024 * 1024
"""The most one decompression step yields, so a gzip bomb expands piece by piece, never at once."""
_SWEEP_S = 30.0
_WARM_AT_ONCE = 32
"""Warm connections are opened this many at a time, so warming never floods the loop or the upstream."""
_WARM_EVERY_S = 1.0
"""The least time between two refills of warm connections."""
_MAX_HEAD_BYTES = 256 * 1024
"""Status line and headers (and whatever body came in the same reads) before the headers end."""


class ConnectError(OSError):
    """Connecting failed: DNS, refusal, TLS, or a local resource (``errno`` says which)."""


def _connect_error(exc: OSError) -> ConnectError:
    return ConnectError(exc.errno, exc.strerror or str(exc) or type(exc).__name__)


class ProtocolError(ConnectionError):
    """The upstream broke HTTP/1.1 or dropped the connection before its response was complete."""


class PoolTimeout(TimeoutError):
    """No connection of the pool came free (and no new one could be opened) in time."""


class ConnectTimeout(TimeoutError):
    """Opening a connection (TCP and TLS) took longer than the connect timeout."""


class ReadTimeout(TimeoutError):
    """The upstream went silent for longer than the read timeout, or the total time ran out."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a pool connects: ``scheme://host:port``, as split from a URL once per pool."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("credentials in a URL are not sent: put them in the provider's headers")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def split_url(url: str) -> tuple[str, str]:
    """``(scheme://authority, target)``: the pool's key and the request line's target, by slicing."""
    start = url.find("://") + 3
    if start < 3:
        raise ValueError("not an absolute URL")
    cut = len(url)
    for mark in "/?":
        at = url.find(mark, start)
        if 0 <= at < cut:
            cut = at
    target = url[cut:] or "/"
    if target[0] == "?":
        target = "/" + target
    if _UNSAFE_TARGET.search(target):
        target = urllib.parse.quote(target, safe="/:?=&%@!$'()*+,;~-._[]")
    return url[:cut], target


_UNSAFE_TARGET = re.compile(r"[^\x21-\x7e]")
"""What a request target may not hold as is: controls, spaces, non-ASCII (they are %-encoded)."""


def request_head(
    method: str, target: str, host: str, headers: Mapping[str, str], length: int | None
) -> bytes:
    """The request line and headers, refusing a name or value that would smuggle a line break.

    The caller's ``Host``, ``User-Agent`` and ``Accept-Encoding`` (in any case) replace ours;
    the body's framing is ours alone, so a caller's ``Content-Length`` or ``Transfer-Encoding``
    is not sent.
    """
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    given = set()
    for name, value in headers.items():
        low = name.lower()
        if low in _FRAMING:
            continue
        given.add(low)
        lines.append(f"{name}: {value}\r\n")
    if "host" not in given:
        lines.append(f"Host: {host}\r\n")
    if "user-agent" not in given:
        lines.append(_USER_AGENT_LINE)
    if "accept-encoding" not in given:
        lines.append("Accept-Encoding: identity\r\n")  # compression costs CPU on both ends for little
    lines.append("\r\n" if length is None else f"Content-Length: {length}\r\n\r\n")
    head = "".join(lines)
    expected = len(lines) + (length is not None)
    if head.count("\n") != expected or head.count("\r") != expected or "\x00" in head:
        raise ProtocolError("a request header holds a line break or NUL; refusing to send it")
    return head.encode()


_FRAMING = frozenset({"content-length", "transfer-encoding"})
_USER_AGENT_LINE = f"User-Agent: {USER_AGENT}\r\n"


class Response:
    """One response: its status at once, its headers on demand, its body as it arrives."""

    __slots__ = (
        "_chunks",
        "_conn",
        "_decoder",
        "_error",
        "_paused",
        "_raw_headers",
        "_size",
        "_waiter",
        "complete",
        "got_bytes",
        "status",
        "until_close",
    )

    def __init__(self, conn: _Connection) -> None:
        self._conn: _Connection | None = conn
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._decoder: _Decoder | None = None
        self._paused = False
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self.status = 0
        self.complete = False
        self.got_bytes = False
        self.until_close = False

    def headers(self) -> dict[str, str]:
        """Header names lower-cased; a repeated header's values joined with ``", "``."""
        out: dict[str, str] = {}
        for raw_name, raw_value in self._raw_headers:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            out[name] = f"{out[name]}, {value}" if name in out else value
        return out

    def at_eof(self) -> bool:
        """The whole body has arrived and been taken."""
        return self.complete and not self._chunks and (self._decoder is None or self._decoder.drained)

    async def piece(self) -> bytes:
        """The next piece of the (decoded) body, ``b""`` at its end: everything that has arrived
        since the last piece (up to 64 KiB of it at once), or, if nothing has, the next to arrive."""
        decoder = self._decoder
        while True:
            if decoder is not None and not decoder.drained:
                out = decoder.step()
                if out:
                    return out
            chunks = self._chunks
            if chunks:
                if len(chunks) == 1 or self._size > _LOW_WATER:
                    data = chunks.popleft()
                    self._size -= len(data)
                else:  # what arrived since the last piece, in one: one translation, one write downstream
                    data = b"".join(chunks)
                    chunks.clear()
                    self._size = 0
                if self._paused and self._size <= _LOW_WATER:
                    self._resume()
                if decoder is None:
                    return data
                decoder.feed(data)
                continue
            if self._error is not None:
                raise self._error
            if self.complete:
                if decoder is not None:
                    return decoder.finish()
                return b""
            await self._wait()

    async def read(self, limit: int) -> bytes:
        """The whole body; :class:`TooLarge` past ``limit`` bytes (decoded)."""
        if self._decoder is None:  # the common case: wait for the end, then join once
            while not self.complete and self._error is None:
                if self._size > limit:
                    raise TooLarge(limit)
                if self._paused:
                    self._resume()  # reading whole: buffer up to the limit
                await self._wait()
            if self._error is not None:
                raise self._error
            if self._size > limit:
                raise TooLarge(limit)
            chunks, self._chunks, self._size = self._chunks, deque(), 0
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        parts: list[bytes] = []
        size = 0
        while piece := await self.piece():
            size += len(piece)
            if size > limit:
                raise TooLarge(limit)
            parts.append(piece)
        return b"".join(parts)

    def close(self) -> None:
        """Stop reading: a response not complete yet takes its connection down with it."""
        conn, self._conn = self._conn, None
        if conn is not None and not self.complete:
            conn.abort()
        self._chunks.clear()
        self._size = 0

    # --- fed by the connection ----------------------------------------------------------------

    def _wait(self) -> asyncio.Future[None]:
        conn = self._conn
        if conn is None:  # closed by its reader: nothing more will come
            self._error = ProtocolError("the response was closed")
            raise self._error
        waiter = self._waiter = conn.loop.create_future()
        return waiter

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _resume(self) -> None:
        self._paused = False
        conn = self._conn
        if conn is not None and conn.transport is not None and not self.complete:
            conn.transport.resume_reading()

    def _on_headers(self, status: int, keep_alive: bool) -> None:
        self.status = status
        framed = False  # a length or chunks say where the body ends; otherwise the connection's end does
        encoding = b""
        for name, value in self._raw_headers:
            lowered = name.lower()
            if lowered == b"content-length":
                framed = True
            elif lowered == b"transfer-encoding":
                framed = framed or b"chunked" in value.lower()
            elif lowered == b"content-encoding":
                encoding = value.strip().lower()
        self.until_close = not framed and not keep_alive
        if encoding and encoding != b"identity":
            self._decoder = _Decoder(encoding)
        self._wake()

    def _on_body(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > _HIGH_WATER and not self._paused:
            conn = self._conn
            if conn is not None and conn.transport is not None:
                self._paused = True
                conn.transport.pause_reading()
        self._wake()

    def _on_complete(self) -> None:
        if self._paused:  # the connection goes back to its pool: it must read again
            self._resume()
        self.complete = True
        self._conn = None
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._conn = None
        self._wake()


class TooLarge(Exception):
    """A whole body grew past the caller's limit (the connection is dropped)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {limit} bytes")
        self.limit = limit


class _Decoder:
    """gzip or deflate, decoded in bounded steps."""

    __slots__ = ("_tail", "_z", "drained")

    def __init__(self, encoding: bytes) -> None:
        if encoding in (b"gzip", b"x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == b"deflate":
            self._z = zlib.decompressobj()
        else:
            raise ProtocolError(
                f"the upstream sent content-encoding {encoding.decode('latin-1')!r}, not asked for"
            )
        self._tail = b""
        self.drained = True

    def feed(self, data: bytes) -> None:
        self._tail += data
        self.drained = False

    def step(self) -> bytes:
        try:
            out = self._z.decompress(self._tail, _DECODE_STEP)
        except zlib.error as exc:
            raise ProtocolError(f"the upstream's compressed body is corrupt: {exc}") from None
        self._tail = self._z.unconsumed_tail
        if not self._tail:
            self.drained = True
        return out

    def finish(self) -> bytes:
        try:
            return self._z.flush()
        except zlib.error as exc:
            raise ProtocolError(f"the upstream's compressed body is corrupt: {exc}") from None


class _Connection(asyncio.Protocol):
    """One keep-alive connection: parses responses into the current :class:`Response`."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.response: Response | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._informational = False
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._read_s = 0.0
        self._last_read = 0.0
        self._head_bytes = 0
        self.first: tuple[bytes, float, float] | None = None
        """The request to send as soon as the connection is made (data, deadline, read timeout)."""
        self.first_response: Response | None = None
        """Its response, until the requester takes it."""

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass
        first, self.first = self.first, None
        if first is not None:
            # Send now, not when the requesting task next runs: in a burst, that task waits behind
            # every other request's setup, and the upstream could already be working on this one.
            resp = self.first_response = Response(self)
            self.start(resp, *first)

    def data_received(self, data: bytes) -> None:
        resp = self.response
        if resp is None:  # bytes nobody asked for: the connection is not in a state to reuse
            self.abort()
            return
        resp.got_bytes = True
        self._last_read = self.loop.time()
        if not resp.status:
            self._head_bytes += len(data)
            if self._head_bytes > _MAX_HEAD_BYTES:  # llhttp itself sets no bound on headers
                self._fail(ProtocolError(f"the upstream's response headers exceed {_MAX_HEAD_BYTES} bytes"))
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"the upstream's response is not valid HTTP/1.1: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_timer()
        resp = self.response
        if resp is not None:
            self.response = None
            if resp.until_close and exc is None and resp.status:
                resp._on_complete()  # a body without a length ends with the connection
            else:
                reason = f": {exc}" if exc is not None else ""
                resp._fail(
                    ProtocolError(
                        f"the upstream closed the connection before its response was complete{reason}"
                    )
                )
        self.pool._lost(self)

    # --- httptools callbacks --------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        resp = self.response
        if resp is not None:
            resp._raw_headers.append((name, value))

    def on_message_begin(self) -> None:
        if self.response is None:  # a second response after the one asked for: never reuse this
            self.abort()

    def on_headers_complete(self) -> None:
        resp = self.response
        if resp is None:
            return
        status = self._parser.get_status_code()
        if status < 200:  # 100 Continue and friends: the real response follows
            self._informational = True
            resp._raw_headers.clear()
            return
        try:
            resp._on_headers(status, self._parser.should_keep_alive())
        except ProtocolError as exc:  # an encoding we cannot decode
            self._fail(exc)

    def on_body(self, body: bytes) -> None:
        resp = self.response
        if resp is not None:
            resp._on_body(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        resp, self.response = self.response, None
        if resp is None:
            return
        self._stop_timer()
        keep = self._parser.should_keep_alive() and not resp.until_close
        resp._on_complete()
        self.pool._release(self, keep)

    # --- driven by the pool -------------------------------------------------------------------

    def start(self, resp: Response, data: bytes, deadline: float, read_s: float) -> None:
        """Send one request; its response is parsed into ``resp``."""
        assert self.transport is not None
        self.response = resp
        self._head_bytes = 0
        self._deadline = deadline
        self._read_s = read_s
        now = self._last_read = self.loop.time()
        self._timer = self.loop.call_at(min(deadline, now + read_s), self._on_timer)
        self.transport.write(data)

    def _on_timer(self) -> None:
        self._timer = None
        resp = self.response
        if resp is None:
            return
        now = self.loop.time()
        if now >= self._deadline:
            self._fail(ReadTimeout("the upstream's response took longer than the total timeout"))
            return
        if resp._paused:  # our reader is slow, not the upstream: that silence is ours
            self._last_read = now
        due = self._last_read + self._read_s
        if now >= due:
            self._fail(ReadTimeout("the upstream sent nothing for longer than the read timeout"))
            return
        self._timer = self.loop.call_at(min(self._deadline, due), self._on_timer)

    def _stop_timer(self) -> None:
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()

    def _fail(self, exc: BaseException) -> None:
        resp, self.response = self.response, None
        if resp is not None:
            resp._fail(exc)
        self.abort()

    def abort(self) -> None:
        """Drop the connection (its response, if any, fails)."""
        self._stop_timer()
        transport = self.transport
        if transport is not None and not self.closed:
            self.closed = True
            transport.abort()


class Pool:
    """Keep-alive connections to one origin, at most ``limit`` open at once.

    ``warm``: connections kept open even while nothing uses them, opened ahead of the first
    request (:meth:`keep_warm`) and again whenever the upstream closes one, so that a burst of up
    to that many requests pays no TCP or TLS handshake. Idle connections past ``warm`` close after
    ``keepalive_s``; the warm ones stay until the upstream closes them.
    """

    def __init__(
        self,
        origin: Origin,
        limit: int,
        ssl_context: ssl.SSLContext | None,
        keepalive_s: float = 60.0,
        warm: int = 0,
    ) -> None:
        self.origin = origin
        self.loop = asyncio.get_running_loop()
        self.limit = limit
        self.warm = min(warm, limit)
        self._warming: asyncio.Task[None] | None = None
        self._warm_again_at = 0.0
        self._warm_timer: asyncio.TimerHandle | None = None
        self._ssl = ssl_context if origin.scheme == "https" else None
        self._host = origin.host_header
        self._keepalive_s = keepalive_s
        self._addresses = Addresses(origin.host, origin.port)
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    async def request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        connect_s: float,
        read_s: float,
        total_s: float,
    ) -> Response:
        """Send a request and return once its response's headers are in (the body still arriving).

        A reused connection the upstream had closed just as the request went out (the keep-alive
        race: no byte of the response came back) is retried once on a fresh connection.
        """
        loop = self.loop
        deadline = loop.time() + total_s
        data = request_head(method, target, self._host, headers, None if body is None else len(body))
        if body:
            data += body
        conn = self._take_idle()
        while True:
            if conn is None:
                conn = await self._connect(min(connect_s, deadline - loop.time()), (data, deadline, read_s))
            resp = conn.first_response  # a new connection sent the request as it was made
            if resp is None:
                resp = Response(conn)
                conn.start(resp, data, deadline, read_s)
            else:
                conn.first_response = None
            try:
                while not resp.status:
                    if resp._error is not None:
                        raise resp._error
                    await resp._wait()
            except ProtocolError:
                if conn.reused and not resp.got_bytes and loop.time() < deadline:
                    conn = None  # the retry opens a new connection: others idle as long may be gone too
                    continue
                raise
            except BaseException:
                conn.abort()
                raise
            return resp

    def keep_warm(self) -> None:
        """Open connections in the background until ``warm`` are open: at most once a second
        (an upstream that drops every connection is not hammered), and after a failure not again
        for ``_SWEEP_S`` (nor is one that is down)."""
        if not self.warm or self._open >= self.warm or self._warming is not None or self._closed:
            return
        now = self.loop.time()
        if now < self._warm_again_at:
            if self._warm_timer is None:
                self._warm_timer = self.loop.call_at(self._warm_again_at, self._warm_later)
            return
        self._warm_again_at = now + _WARM_EVERY_S
        self._warming = self.loop.create_task(self._top_up())

    def _warm_later(self) -> None:
        self._warm_timer = None
        self.keep_warm()

    async def _top_up(self) -> None:
        try:
            while not self._closed and self._open < self.warm:
                wanted = min(self.warm - self._open, _WARM_AT_ONCE)
                self._open += wanted
                tasks = [self.loop.create_task(self._open_connection(None)) for _ in range(wanted)]
                try:
                    await asyncio.wait(tasks)
                except BaseException:
                    for task in tasks:
                        task.cancel()  # each frees its own slot (a made connection is closed)
                    raise
                made = 0
                for task in tasks:
                    if task.exception() is None:
                        self._release(task.result(), keep=True)
                        made += 1
                if made < wanted:
                    self._warm_again_at = self.loop.time() + _SWEEP_S
                    break
        finally:
            self._warming = None
        self.keep_warm()  # still short (a failure, or connections lost meanwhile): it sets the timer

    def close(self) -> None:
        self._closed = True
        if self._warming is not None:
            self._warming.cancel()
            self._warming = None
        if self._warm_timer is not None:
            self._warm_timer.cancel()
            self._warm_timer = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.abort()

    # --- connections ----------------------------------------------------------------------------

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            if not self.warm and self.loop.time() - conn.idle_since > self._keepalive_s:
                conn.abort()
                continue
            conn.reused = True
            return conn
        return None

    async def _connect(self, timeout_s: float, first: tuple[bytes, float, float]) -> _Connection:
        """An idle connection freed while waiting for a slot, or a new one that sends ``first``."""
        waited = False
        try:
            async with asyncio.timeout(timeout_s):
                while self._open >= self.limit:
                    waited = True
                    waiter = self.loop.create_future()
                    self._waiters.append(waiter)
                    try:
                        await waiter
                    except BaseException:
                        if waiter.done() and not waiter.cancelled():
                            self._wake_one()  # it was handed a slot: hand it on
                        raise
                    conn = self._take_idle()
                    if conn is not None:
                        return conn
                self._open += 1
                return await self._open_connection(first)  # which frees the slot if it fails
        except TimeoutError:
            if waited and self._open >= self.limit:
                raise PoolTimeout(f"no free connection to {self._host} in {timeout_s:g}s") from None
            raise ConnectTimeout(f"connecting to {self._host} took longer than {timeout_s:g}s") from None

    async def _open_connection(self, first: tuple[bytes, float, float] | None) -> _Connection:
        """A new connection, trying the origin's addresses in turn, that sends ``first`` once made."""
        origin = self.origin
        made: list[_Connection] = []

        def protocol() -> _Connection:
            conn = _Connection(self)
            conn.first = first
            made.append(conn)
            return conn

        try:
            try:
                addresses = await self._addresses.get()
            except OSError as exc:
                raise _connect_error(exc) from exc
            error: OSError | None = None
            for address in addresses:
                try:
                    _, conn = await self.loop.create_connection(
                        protocol,
                        address,
                        origin.port,
                        ssl=self._ssl,
                        server_hostname=origin.host if self._ssl is not None else None,
                    )
                except OSError as exc:
                    error = exc
                    continue
                return conn
            self._addresses.forget()  # none answered: maybe they moved
            assert error is not None
            raise _connect_error(error) from error
        except BaseException:
            if not made or made[-1].transport is None:
                self._free_slot()  # no connection was made to report its loss: free its slot here
            raise

    def _release(self, conn: _Connection, keep: bool) -> None:
        if keep and not conn.closed and not self._closed:
            conn.idle_since = self.loop.time()
            self._idle.append(conn)
            if self._sweeper is None:
                self._sweeper = self.loop.call_later(_SWEEP_S, self._sweep)
            self._wake_one()
        else:
            conn.abort()  # _lost frees its slot

    def _lost(self, conn: _Connection) -> None:
        self._free_slot()
        self.keep_warm()

    def _free_slot(self) -> None:
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _sweep(self) -> None:
        """Close connections idle past the keep-alive time, but the ``warm`` most recently used
        (and forget closed ones)."""
        self._sweeper = None
        now = self.loop.time()
        keep: list[_Connection] = []
        for conn in reversed(self._idle):  # the most recently used first
            if conn.closed:
                continue
            if len(keep) >= self.warm and now - conn.idle_since > self._keepalive_s:
                conn.abort()
            else:
                keep.append(conn)
        keep.reverse()
        self._idle = keep
        if keep and not self._closed:
            self._sweeper = self.loop.call_later(_SWEEP_S, self._sweep)
