"""Connection limits in the HTTP protocol, so slow or greedy clients cannot hold connections for ever.

Without a header read timeout, a client that connects and sends half a request keeps its
connection (and a file descriptor) as long as it likes, and a few hundred such clients exhaust a
worker. :class:`GuardedProtocol`, Hedge's server protocol (``hedge.api.server``) with three
additions, closes that:

- **header timeout**: a connection must finish its request headers within ``header_timeout_s`` of
  connecting (on a keep-alive connection, of the first byte of its next request), or it is answered
  408 and closed;
- **body timeout**: a request's body must be complete within ``body_timeout_s`` of its headers, or the
  client gets 408 ``request_timeout`` in OpenAI's error shape (Anthropic's under ``/v1/messages``), the
  connection is closed, and the endpoint records a 408 (``read_body`` raises the error the protocol
  left in the request's scope rather than a client disconnect);
- **connections per client**: past ``max_connections_per_client`` concurrent connections from one IP
  address, a new connection's request is answered 429 ``too_many_connections`` and the connection
  closed; the refusals are logged at most once a minute per address.

Idle keep-alive connections stay bounded by uvicorn's ``timeout_keep_alive``, and neither timeout
runs while a response is being sent, so long streams are never cut. The request path pays a few
attribute sets: deadlines are floats on the connection, swept by one timer per server.

Settings and counts are class attributes, so each server needs a class of its own:
:func:`guarded_protocol` makes one (``uvicorn.run(..., http=cls)``, ``serve_in_loop``). ``hedge serve
--workers N`` cannot pass a class to its worker processes, so it names :data:`WORKER_PROTOCOL`, which
each worker imports and configures from the config file in ``HEDGE_CONFIG``, as it does the app.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, ClassVar

import orjson

from hedge.api.server import ServerProtocol, closing_response
from hedge.config import CONFIG_ENV, ServerConfig, load_config
from hedge.errors import HedgeError
from hedge.providers.anthropic_inbound import error_body

log = logging.getLogger("hedge")

BODY_TIMEOUT = "hedge.body_timeout"
"""Scope key: the :class:`RequestTimeout` of a request whose body did not arrive in time."""

WORKER_PROTOCOL = f"{__name__}:WorkerProtocol"
"""What ``hedge serve --workers N`` gives uvicorn as ``http``: importable by name in every worker."""

LOG_EVERY_S = 60.0
"""Refusals and timeouts are logged at most this often per client address, so a flood cannot flood the log."""

_MAX_LOG_KEYS = 10_000


class RequestTimeout(HedgeError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


def _default(name: str) -> Any:
    return ServerConfig.model_fields[name].default


def _error_bytes(err: HedgeError, anthropic: bool) -> bytes:
    if anthropic:
        return orjson.dumps(error_body(err.status, err.message))
    return err.to_bytes()


class GuardedProtocol(ServerProtocol):
    """Hedge's server protocol plus header and body timeouts and a per-address connection cap."""

    header_timeout_s: ClassVar[float] = _default("header_timeout_s")
    body_timeout_s: ClassVar[float] = _default("body_timeout_s")
    max_connections_per_client: ClassVar[int] = _default("max_connections_per_client")

    # One server's state; every subclass gets its own (``__init_subclass__``).
    _per_client: ClassVar[dict[str, int]] = {}
    _logged: ClassVar[dict[tuple[str, str], tuple[float, int]]] = {}

    _client_ip: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._per_client = {}
        cls._logged = {}

    @classmethod
    def configure(
        cls, header_timeout_s: float, body_timeout_s: float, max_connections_per_client: int
    ) -> None:
        cls.header_timeout_s = header_timeout_s
        cls.body_timeout_s = body_timeout_s
        cls.max_connections_per_client = max_connections_per_client

    # -- connection life ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        cls = type(self)
        peer = transport.get_extra_info("peername")
        ip = peer[0] if isinstance(peer, tuple) and peer else None  # None for Unix sockets
        if ip is not None:
            count = cls._per_client.get(ip, 0)
            if count >= cls.max_connections_per_client:
                self._refuse_connection(transport, ip)
                return
            cls._per_client[ip] = count + 1
            self._client_ip = ip
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        ip, self._client_ip = self._client_ip, None
        if ip is not None:
            cls = type(self)
            left = cls._per_client.get(ip, 1) - 1
            if left > 0:
                cls._per_client[ip] = left
            else:
                cls._per_client.pop(ip, None)
        if getattr(self, "transport", None) is not None:  # not a refused connection
            super().connection_lost(exc)

    # -- enforcement, off the request path ---------------------------------------------------------

    def head_timed_out(self, now: float) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # A pipelined request behind a response still being sent: wait for the response.
            self._deadline = now + self.header_timeout_s
            return
        self._note("header timeout", now)
        err = RequestTimeout(f"The request headers were not received within {self.header_timeout_s:g} s.")
        self._answer_and_close(err, anthropic=False)

    def body_timed_out(self, now: float) -> None:
        cycle = self.cycle
        if self.read_paused or self.pipeline:
            # The gateway stopped reading (back-pressure, or the request waits behind another one):
            # the delay is not the client's, so its time starts again.
            self._deadline = now + self.body_timeout_s
            return
        if cycle is None or cycle.response_complete:
            self.transport.close()  # already answered (say, a 401) and the rest of the body is not wanted
            return
        if cycle.response_started:
            cycle.keep_alive = False  # never cut a response: finish it, then close
            self._deadline = 0.0
            return
        self._note("body timeout", now)
        err = RequestTimeout(f"The request body was not received within {self.body_timeout_s:g} s.")
        scope = self.scope or {}
        scope[BODY_TIMEOUT] = err
        # The endpoint's receive() now sees a disconnect (read_body raises ``err``) and its send() is a
        # no-op, so nothing it writes can follow the answer written here.
        cycle.disconnect()
        path = str(scope.get("path") or "")
        self._answer_and_close(err, anthropic=path == "/v1/messages" or path.startswith("/v1/messages/"))

    def _answer_and_close(self, err: RequestTimeout, anthropic: bool) -> None:
        self._deadline = 0.0
        self.transport.write(closing_response(err.status, _error_bytes(err, anthropic)))
        self.transport.close()

    # -- refusals ------------------------------------------------------------------------------------

    def _refuse_connection(self, transport: asyncio.Transport, ip: str) -> None:
        cls = type(self)
        self._note("refused", self.loop.time(), ip)
        err = HedgeError(
            "Too many concurrent connections from this address (the limit is "
            f"{cls.max_connections_per_client}); reuse connections (keep-alive) or open fewer at once.",
            status=429,
            type="rate_limit_error",
            code="too_many_connections",
        )
        transport.set_protocol(_Refusal(transport, err, self.loop, cls.header_timeout_s))

    def _note(self, what: str, now: float, ip: str | None = None) -> None:
        """Log ``what`` happened to a client, at most once per ``LOG_EVERY_S`` per address and kind."""
        cls = type(self)
        ip = ip or self._client_ip or "?"
        key = (ip, what)
        last = cls._logged.get(key)
        if last is not None and now - last[0] < LOG_EVERY_S:
            cls._logged[key] = (last[0], last[1] + 1)
            return
        if len(cls._logged) >= _MAX_LOG_KEYS:
            cls._logged = {k: v for k, v in cls._logged.items() if now - v[0] < LOG_EVERY_S}
        cls._logged[key] = (now, 0)
        count = 1 + (last[1] if last is not None else 0)
        if what == "refused":
            log.warning(
                "refused %d connection(s) from %s: over server.max_connections_per_client (%d); "
                "logged at most once a minute per address",
                count,
                ip,
                cls.max_connections_per_client,
            )
        else:
            log.info(
                "closed %d connection(s) from %s on a %s (logged at most once a minute)", count, ip, what
            )


class _Refusal(asyncio.Protocol):
    """Takes over a refused connection: answers its first request with the 429, then lets it go.

    Answering (rather than closing at once) tells an HTTP client why; half-closing and discarding
    whatever else arrives keeps a reset from destroying the answer before the client reads it. The
    timer bounds how long a refused connection may stay.
    """

    def __init__(
        self, transport: asyncio.Transport, err: HedgeError, loop: asyncio.AbstractEventLoop, linger_s: float
    ) -> None:
        self.transport = transport
        self.err: HedgeError | None = err
        self.timer = loop.call_later(linger_s, transport.close)

    def data_received(self, data: bytes) -> None:
        if self.err is None:
            return
        err, self.err = self.err, None
        body = _error_bytes(err, anthropic=data.startswith(b"POST /v1/messages"))
        self.transport.write(closing_response(err.status, body, ((b"retry-after", b"1"),)))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        else:
            self.transport.close()

    def eof_received(self) -> bool:
        return False  # the client is done: close

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()


def guarded_protocol(
    header_timeout_s: float = _default("header_timeout_s"),
    body_timeout_s: float = _default("body_timeout_s"),
    max_connections_per_client: int = _default("max_connections_per_client"),
) -> type[GuardedProtocol]:
    """A protocol class for one server: its own settings, and connection counts no other server shares."""

    class Guarded(GuardedProtocol):
        pass

    Guarded.configure(header_timeout_s, body_timeout_s, max_connections_per_client)
    return Guarded


def protocol_for(server: ServerConfig) -> type[GuardedProtocol]:
    return guarded_protocol(server.header_timeout_s, server.body_timeout_s, server.max_connections_per_client)


class WorkerProtocol(GuardedProtocol):
    """The protocol of ``hedge serve --workers N``: each worker process configures it on its first
    connection from the config file in ``HEDGE_CONFIG`` (already validated by ``hedge serve``)."""

    _configured: ClassVar[bool] = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        cls = type(self)
        if not cls._configured:
            server = load_config(os.environ[CONFIG_ENV]).server
            cls.configure(server.header_timeout_s, server.body_timeout_s, server.max_connections_per_client)
            cls._configured = True
        super().connection_made(transport)
