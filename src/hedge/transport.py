"""HTTP to upstreams: one pooled keep-alive aiohttp session per provider.

aiohttp's client is markedly faster than httpx under concurrency and keeps
connections alive per host. This is the one seam between the gateway and the
network: :meth:`Transport.send` returns a :class:`Reply` (status checked, body
unread) and nothing above this module sees an aiohttp object. Network failures
are turned into :class:`~hedge.errors.UpstreamError` here, so callers see one
error type.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
from collections.abc import Callable, Mapping, Sized

import aiohttp
import orjson

from hedge.config import ProviderConfig, Timeouts
from hedge.errors import UpstreamError
from hedge.providers.base import UpstreamRequest


class Transport:
    def __init__(self, providers: Mapping[str, ProviderConfig]) -> None:
        self._configs = dict(providers)
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, provider: str) -> aiohttp.ClientSession:
        session = self._sessions.get(provider)
        if session is None or session.closed:
            cfg = self._configs[provider]
            connector = aiohttp.TCPConnector(
                limit=cfg.max_connections,
                limit_per_host=cfg.max_connections,
                keepalive_timeout=60,
                ttl_dns_cache=300,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                json_serialize=lambda o: orjson.dumps(o).decode(),
                auto_decompress=True,
                raise_for_status=False,
            )
            self._sessions[provider] = session
        return session

    async def open(
        self, provider: str, request: UpstreamRequest, timeouts: Timeouts, method: str = "POST"
    ) -> aiohttp.ClientResponse:
        """Send a request and return the response with its body still unread.

        ``method`` is POST for every inference call; the batch APIs also GET (a body-less
        request: ``request.body`` is then ignored)."""
        timeout = _client_timeout(timeouts)
        session: aiohttp.ClientSession | None = None
        data = None if method == "GET" else request.body
        try:
            session = self.session(provider)
            return await session.request(
                method, request.url, data=data, headers=request.headers, timeout=timeout
            )
        except BaseException as exc:
            # A connect timeout while every pooled connection is taken was spent in aiohttp's queue.
            queued = isinstance(exc, aiohttp.ConnectionTimeoutError) and _pool_full(session)
            raise network_error(provider, exc, pool_full=queued) from None

    async def send(
        self,
        provider: str,
        request: UpstreamRequest,
        timeouts: Timeouts,
        error: Callable[[int, dict[str, str], bytes], Exception],
        method: str = "POST",
    ) -> Reply:
        """Send ``request``; an error status is read and raised as ``error(status, headers, body)``.

        ``error`` is the provider adapter's translation; header names are lower-cased for it.
        """
        resp = await self.open(provider, request, timeouts, method)
        limit = self._configs[provider].max_response_bytes
        if resp.status >= 400:
            raw = await read_upstream(resp, provider, limit)
            raise error(resp.status, {k.lower(): v for k, v in resp.headers.items()}, raw)
        return Reply(resp, provider, limit)

    async def post_json(self, url: str, payload: object, timeout_s: float) -> int:
        """POST a JSON notification (a budget alert's webhook) and return the status; network
        failures raise as :class:`~hedge.errors.UpstreamError`. Not a provider: its own session."""
        session = self._sessions.get(_NOTIFY)
        if session is None or session.closed:
            session = self._sessions[_NOTIFY] = aiohttp.ClientSession(raise_for_status=False)
        try:
            async with session.post(
                url,
                data=orjson.dumps(payload),
                headers={"content-type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as resp:
                await resp.read()
                return resp.status
        except BaseException as exc:
            raise network_error("webhook", exc) from None

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


_NOTIFY = "\x00notify"
"""The session key of notifications, which no provider name can be (provider names are YAML keys,
but none is sent a NUL)."""


class Reply:
    """A successful upstream response whose body is still unread: read it whole, or piece by piece.

    Whoever holds a reply ends it: :meth:`read` and a finished :meth:`pieces` give the
    connection back to the pool themselves; otherwise :meth:`release` (the body was read to
    its end) or :meth:`close` (it was not: the connection cannot be reused).
    """

    __slots__ = ("_limit", "_resp", "provider")

    def __init__(self, resp: aiohttp.ClientResponse, provider: str, limit: int) -> None:
        self._resp = resp
        self._limit = limit
        self.provider = provider

    async def read(self) -> bytes:
        """The whole body, bounded by the provider's ``max_response_bytes``."""
        return await read_upstream(self._resp, self.provider, self._limit)

    async def piece(self) -> bytes:
        """The next piece of the body as it arrives, ``b""`` at its end; a network failure (or read
        timeout) is an :class:`UpstreamError`."""
        try:
            return await self._resp.content.readany()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise network_error(self.provider, exc) from None

    def at_eof(self) -> bool:
        return self._resp.content.at_eof()

    async def ends_soon(self) -> bool:
        """After the last event, whether the body ends within a short grace (a well-behaved server's
        chunked terminator is already on its way), so the connection can be reused; a server that
        never closes is hung up on."""
        resp = self._resp
        extra = 0
        try:
            async with asyncio.timeout(_EOF_GRACE_S):
                while not resp.content.at_eof():
                    piece = await resp.content.readany()
                    extra += len(piece)
                    if not piece or extra > _EOF_SLACK_BYTES:
                        break
        except (TimeoutError, aiohttp.ClientError):
            return False
        return resp.content.at_eof() and extra <= _EOF_SLACK_BYTES

    def release(self) -> None:
        """The body was read to its end: the connection goes back to the pool."""
        self._resp.release()

    def close(self) -> None:
        """The body was not read to its end: drop the connection."""
        self._resp.close()


_EOF_GRACE_S = 1.0
_EOF_SLACK_BYTES = 64 * 1024


@functools.lru_cache(maxsize=256)
def _client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    """One aiohttp timeout object per distinct setting, not one per request."""
    return aiohttp.ClientTimeout(total=timeouts.total, connect=timeouts.connect, sock_read=timeouts.read)


async def read_upstream(resp: aiohttp.ClientResponse, provider: str, limit: int) -> bytes:
    """Read a whole response and give the connection back to the pool (or drop it if reading failed).

    ``limit`` bounds the *decoded* size: a small gzip body may expand a thousandfold, and the
    gateway must not hold a gigabyte for one answer. Past it the connection is dropped and the
    error is the upstream's (502, retryable), so failover moves on.
    """
    parts: list[bytes] = []
    size = 0
    try:
        async for piece in resp.content.iter_any():
            size += len(piece)
            if size > limit:
                resp.close()
                raise UpstreamError(
                    f"provider '{provider}' sent a response larger than {limit} bytes (decoded)",
                    status=502,
                    code="upstream_response_too_large",
                )
            parts.append(piece)
    except UpstreamError:
        raise
    except BaseException as exc:
        resp.close()
        raise network_error(provider, exc) from None
    resp.release()
    return b"".join(parts)


_LOCAL_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL})
"""The gateway's own limits: descriptors (process, system), socket buffers, memory, ephemeral ports."""


def network_error(provider: str, exc: BaseException, *, pool_full: bool = False) -> BaseException:
    """Translate a network failure; anything that is not one (e.g. cancellation) is returned as is.

    When the gateway itself runs out of something before a byte reaches the upstream (file
    descriptors, socket buffers, memory, ports, or a free connection in its own pool:
    ``pool_full``), the upstream is not at fault: 503 ``gateway_resource_exhausted`` with
    ``blame=False``, so no breaker opens (breakers are shared by every replica) and failover may
    still try another deployment. Connection refused, DNS failures and connect timeouts do come
    from the upstream (or its address) and keep blaming it.
    """
    local = _local_errno(exc)
    if local is not None or pool_full:
        what = os.strerror(local) if local is not None else "no free connection in its pool"
        return UpstreamError(
            f"the gateway is short of resources to reach provider '{provider}': {what}",
            status=503,
            type="service_unavailable",
            code="gateway_resource_exhausted",
            blame=False,
        )
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamError(
            f"provider '{provider}' timed out", status=504, type="timeout_error", code="upstream_timeout"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError(
            f"cannot connect to provider '{provider}': {exc.os_error.strerror or exc.os_error}",
            status=502,
            code="upstream_unreachable",
        )
    if isinstance(exc, aiohttp.ClientError):
        return UpstreamError(
            f"connection to provider '{provider}' failed: {type(exc).__name__}: {exc}",
            status=502,
            code="upstream_connection_error",
        )
    return exc


def _local_errno(exc: BaseException) -> int | None:
    """The errno of a local resource error, wrapped by aiohttp's connector or not."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        code = exc.os_error.errno
    elif isinstance(exc, OSError):
        code = exc.errno
    else:
        return None
    return code if code in _LOCAL_ERRNOS else None


def _pool_full(session: aiohttp.ClientSession | None) -> bool:
    """Whether every connection of the session's pool is in use.

    aiohttp counts them only in private attributes; should those change, this reads False and a
    connect timeout keeps blaming the upstream, as it did before.
    """
    connector = session.connector if session is not None else None
    limit = getattr(connector, "limit", 0)
    acquired = getattr(connector, "_acquired", None)
    if limit and isinstance(acquired, Sized) and len(acquired) >= limit:
        return True
    per_host = getattr(connector, "limit_per_host", 0)
    by_host = getattr(connector, "_acquired_per_host", None)
    if not per_host or not isinstance(by_host, Mapping):
        return False
    return any(isinstance(held, Sized) and len(held) >= per_host for held in by_host.values())
