"""HTTP to upstreams: one pool of keep-alive connections per provider and origin.

This is the one seam between the gateway and the network: :meth:`Transport.send` returns a
:class:`Reply` (status checked, body unread) and nothing above this package sees a connection.
Network failures are turned into :class:`~hedge.errors.UpstreamError` here
(:mod:`hedge.transport.errors`), so callers see one error type. The client itself is
:mod:`hedge.transport.http1`.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Callable, Mapping

import orjson

from hedge.config import ProviderConfig, Timeouts
from hedge.errors import UpstreamError
from hedge.providers.base import UpstreamRequest
from hedge.transport.errors import network_error
from hedge.transport.http1 import Origin, Pool, Response, TooLarge, split_url

_split = functools.lru_cache(maxsize=4096)(split_url)
"""``split_url``, remembered: a deployment's requests go to the same few URLs."""

_NOTIFY_CONNECTIONS = 10


class Transport:
    def __init__(self, providers: Mapping[str, ProviderConfig]) -> None:
        self._configs = dict(providers)
        self._pools: dict[tuple[str, str], Pool] = {}
        self._ssl: ssl.SSLContext | None = None

    def _pool(self, provider: str, origin: str, limit: int) -> Pool:
        key = (provider, origin)
        pool = self._pools.get(key)
        if pool is None or pool.loop is not asyncio.get_running_loop():
            if self._ssl is None:
                self._ssl = ssl.create_default_context()  # the system's CAs (SSL_CERT_FILE/DIR honoured)
            warm = self._configs[provider].warm_connections if provider in self._configs else 0
            pool = self._pools[key] = Pool(Origin.of(origin), limit, self._ssl, warm=warm)
            pool.keep_warm()
        return pool

    def warm_up(self) -> None:
        """Open the warm connections of every provider that keeps some (in the background)."""
        for name, config in self._configs.items():
            if config.warm_connections:
                try:
                    origin, _ = split_url(config.base_url)
                    self._pool(name, origin, config.max_connections)
                except ValueError:  # a base URL no request can use either: its requests will say so
                    continue

    async def open(
        self, provider: str, request: UpstreamRequest, timeouts: Timeouts, method: str = "POST"
    ) -> Response:
        """Send a request and return the response with its body still unread.

        ``method`` is POST for every inference call; the batch APIs also GET (a body-less
        request: ``request.body`` is then ignored)."""
        try:
            origin, target = _split(request.url)
            pool = self._pool(provider, origin, self._configs[provider].max_connections)
            return await pool.request(
                method,
                target,
                request.headers,
                None if method == "GET" else request.body,
                connect_s=timeouts.connect,
                read_s=timeouts.read,
                total_s=timeouts.total,
            )
        except ValueError as exc:  # a URL the adapters built wrong, or a header that would smuggle a line
            raise UpstreamError(
                f"cannot send to provider '{provider}': {exc}", status=502, code="upstream_bad_request"
            ) from None
        except BaseException as exc:
            raise network_error(provider, exc) from None

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
            raise error(resp.status, resp.headers(), raw)
        return Reply(resp, provider, limit)

    async def post_json(self, url: str, payload: object, timeout_s: float) -> int:
        """POST a JSON notification (a budget alert's webhook) and return the status; network
        failures raise as :class:`~hedge.errors.UpstreamError`. Not a provider: its own pools."""
        try:
            origin, target = split_url(url)
            pool = self._pool(_NOTIFY, origin, _NOTIFY_CONNECTIONS)
            resp = await pool.request(
                "POST",
                target,
                {"content-type": "application/json"},
                orjson.dumps(payload),
                connect_s=timeout_s,
                read_s=timeout_s,
                total_s=timeout_s,
            )
            await read_upstream(resp, "webhook", 1024 * 1024)
        except UpstreamError:
            raise
        except ValueError as exc:
            raise UpstreamError(
                f"cannot send to the webhook: {exc}", status=502, code="upstream_bad_request"
            ) from None
        except BaseException as exc:
            raise network_error("webhook", exc) from None
        return resp.status

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


_NOTIFY = "\x00notify"
"""The pools of notifications, which no provider name can be (provider names are YAML keys,
but none is sent a NUL)."""


class Reply:
    """A successful upstream response whose body is still unread: read it whole, or piece by piece.

    The connection goes back to its pool by itself once the response is complete (the body is
    buffered here, not on the connection). Whoever holds a reply still ends it: :meth:`release`
    (the body was read to its end) or :meth:`close` (it was not: an unfinished response takes
    its connection down, so no stray bytes reach the next request).
    """

    __slots__ = ("_limit", "_resp", "provider")

    def __init__(self, resp: Response, provider: str, limit: int) -> None:
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
            return await self._resp.piece()
        except (OSError, ValueError) as exc:  # TimeoutError and ProtocolError are OSErrors
            raise network_error(self.provider, exc) from None

    def at_eof(self) -> bool:
        return self._resp.at_eof()

    async def ends_soon(self) -> bool:
        """After the last event, whether the body ends within a short grace (a well-behaved server's
        chunked terminator is already on its way), so the connection can be reused; a server that
        never closes is hung up on."""
        resp = self._resp
        extra = 0
        try:
            async with asyncio.timeout(_EOF_GRACE_S):
                while not resp.at_eof():
                    piece = await resp.piece()
                    extra += len(piece)
                    if not piece or extra > _EOF_SLACK_BYTES:
                        break
        except (OSError, ValueError):
            return False
        return resp.at_eof() and extra <= _EOF_SLACK_BYTES

    def release(self) -> None:
        """The body was read to its end: the connection is back in its pool already."""
        self._resp.close()

    def close(self) -> None:
        """The body was not read to its end: drop the connection (unless it is already complete)."""
        self._resp.close()


_EOF_GRACE_S = 1.0
_EOF_SLACK_BYTES = 64 * 1024


async def read_upstream(resp: Response, provider: str, limit: int) -> bytes:
    """Read a whole response; the connection goes back to its pool (or is dropped if reading failed).

    ``limit`` bounds the *decoded* size: a small gzip body may expand a thousandfold, and the
    gateway must not hold a gigabyte for one answer. Past it the connection is dropped and the
    error is the upstream's (502, retryable), so failover moves on.
    """
    try:
        return await resp.read(limit)
    except TooLarge:
        resp.close()
        raise UpstreamError(
            f"provider '{provider}' sent a response larger than {limit} bytes (decoded)",
            status=502,
            code="upstream_response_too_large",
        ) from None
    except BaseException as exc:
        resp.close()
        raise network_error(provider, exc) from None
