"""``GET /metrics``: the Prometheus scrape, served by the HTTP face.

The counters live in ``observe/metrics.py``, which knows nothing of HTTP; this endpoint only
checks who may scrape and renders what :meth:`Metrics.render` returns.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hedge.api.http import error_response, require_master, runtime_of
from hedge.errors import HedgeError
from hedge.observe.metrics import CONTENT_TYPE, Metrics


async def metrics_endpoint(request: Request) -> Response:
    """Open by default, as scrapers expect; ``server.metrics_auth`` wants the master key."""
    runtime = runtime_of(request)
    if getattr(runtime.config.server, "metrics_auth", False):
        try:
            require_master(request, runtime)
        except HedgeError as exc:
            return error_response(exc)
    metrics: Metrics = runtime.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE)
