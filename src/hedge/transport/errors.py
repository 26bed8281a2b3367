"""Network failures as :class:`~hedge.errors.UpstreamError`: the one place that decides whose fault.

When the gateway itself runs out of something before a byte reaches the upstream (file
descriptors, socket buffers, memory, ports, or a free connection in its own pool), the upstream
is not at fault: 503 ``gateway_resource_exhausted`` with ``blame=False``, so no breaker opens
(breakers are shared by every replica) and failover may still try another deployment.
Connection refused, DNS failures and connect timeouts do come from the upstream (or its
address) and keep blaming it.
"""

from __future__ import annotations

import asyncio
import errno
import os

from hedge.errors import UpstreamError
from hedge.transport.http1 import ConnectError, PoolTimeout, ProtocolError

_LOCAL_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL})
"""The gateway's own limits: descriptors (process, system), socket buffers, memory, ephemeral ports."""


def network_error(provider: str, exc: BaseException) -> BaseException:
    """Translate a network failure; anything that is not one (e.g. cancellation) is returned as is."""
    local = exc.errno if isinstance(exc, OSError) and exc.errno in _LOCAL_ERRNOS else None
    if local is not None or isinstance(exc, PoolTimeout):
        what = os.strerror(local) if local is not None else "no free connection in its pool"
        return UpstreamError(
            f"the gateway is short of resources to reach provider '{provider}': {what}",
            status=503,
            type="service_unavailable",
            code="gateway_resource_exhausted",
            blame=False,
        )
    if isinstance(exc, asyncio.TimeoutError):
        return UpstreamError(
            f"provider '{provider}' timed out", status=504, type="timeout_error", code="upstream_timeout"
        )
    if isinstance(exc, ConnectError):
        return UpstreamError(
            f"cannot connect to provider '{provider}': {exc.strerror or exc}",
            status=502,
            code="upstream_unreachable",
        )
    if isinstance(exc, ProtocolError | OSError):
        return UpstreamError(
            f"connection to provider '{provider}' failed: {exc}",
            status=502,
            code="upstream_connection_error",
        )
    return exc
