"""The web dashboard: ``GET /ui`` (static page) and its JSON API under ``/admin/dashboard``.

The page is plain HTML, CSS and JavaScript shipped in ``hedge/ui`` (no build
step, nothing fetched at run time). It asks for the master key, keeps it in
``sessionStorage`` and sends it as a bearer token to the JSON endpoints here,
which are master-key only, like the rest of ``/admin``. The page itself needs
no auth: it holds no data.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hedge.api.experiments import experiments_of
from hedge.api.http import error_response, json_response, require_master, runtime_of, store_endpoint
from hedge.config import Config
from hedge.errors import HedgeError, InvalidRequest, NotFound
from hedge.gateway.runtime import Runtime
from hedge.store.analytics import TIMESERIES_GROUPS, Analytics, RequestFilter
from hedge.store.bodies import BodyLog
from hedge.store.conformance import JsonlResultStore, results_path
from hedge.store.ledger import parse_since

# -- the static page -------------------------------------------------------------------------------

_ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
_PAGE_HEADERS = {
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    # Everything the page needs is same-origin; request bodies shown in it can never run as code.
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


def _asset(name: str) -> bytes:
    return resources.files("hedge").joinpath("ui", name).read_bytes()


async def ui_page(request: Request) -> Response:
    if request.url.path.endswith("/"):
        return RedirectResponse(request.url.path.rstrip("/"), status_code=308)
    return Response(_asset("index.html"), media_type=_ASSETS["index.html"], headers=_PAGE_HEADERS)


async def ui_asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _ASSETS:
        return error_response(
            HedgeError(f"Invalid URL (GET {request.url.path})", status=404, type="invalid_request_error")
        )
    return Response(_asset(name), media_type=_ASSETS[name], headers=_PAGE_HEADERS)


# -- the JSON API ----------------------------------------------------------------------------------


async def _guard(request: Request) -> tuple[Runtime, Analytics]:
    """Master key only; the ledger flushed, so the requests just answered are counted."""
    runtime = runtime_of(request)
    require_master(request, runtime)
    await runtime.ledger.flush()
    return runtime, Analytics(runtime.db)


def _since(request: Request, default: str = "24h") -> tuple[float, float | None]:
    try:
        since = parse_since(request.query_params.get("since") or default)
        until_raw = request.query_params.get("until")
        until = parse_since(until_raw) if until_raw else None
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="since") from None
    return since, until


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"Invalid '{name}': {raw!r} is not a whole number.", param=name) from None
    if not low <= value <= high:
        raise InvalidRequest(f"Invalid '{name}': must be between {low} and {high}.", param=name)
    return value


NO_BASELINE_HINT = (
    "Set 'baseline: <alias>' on an alias under 'models' in the config (for example "
    "models.chat.baseline: premium): each of its requests is then also priced as if that alias had "
    "served it, and the dashboard shows what routing saved against it."
)


def baseline_info(config: Config, summary: dict[str, Any]) -> dict[str, Any]:
    """What the summary says about the baseline: the aliases that have one and, when the window's
    savings mean nothing because no request in it was priced against one, why (``no_baseline``)."""
    baselines = {name: m.baseline for name, m in config.models.items() if m.baseline}
    note: dict[str, str] | None = None
    if summary["baseline_requests"] == 0:
        if not baselines:
            note = {"reason": "not_configured", "message": "no baseline configured", "hint": NO_BASELINE_HINT}
        elif summary["requests"]:
            names = ", ".join(sorted(baselines))
            note = {
                "reason": "none_in_range",
                "message": "no request in this range was priced against a baseline",
                "hint": f"Only requests of aliases with a baseline ({names}) count. " + NO_BASELINE_HINT,
            }
    return {"baseline_configured": bool(baselines), "baselines": baselines, "no_baseline": note}


@store_endpoint
async def summary(request: Request) -> Response:
    try:
        runtime, analytics = await _guard(request)
        data = await analytics.summary(*_since(request))
        data.update(baseline_info(runtime.config, data))
        return json_response(data)
    except HedgeError as exc:
        return error_response(exc)


@store_endpoint
async def timeseries(request: Request) -> Response:
    try:
        _, analytics = await _guard(request)
        since, until = _since(request)
        by = request.query_params.get("by", "provider")
        if by not in TIMESERIES_GROUPS:
            raise InvalidRequest(
                f"Invalid 'by': {by!r}; choose from {', '.join(TIMESERIES_GROUPS)}.", param="by"
            )
        raw_bucket = request.query_params.get("bucket", "auto")
        bucket = None if raw_bucket in ("", "auto") else _int_param(request, "bucket", 60, 1, 366 * 86400)
        try:
            data = await analytics.timeseries(since, by, bucket, until)
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="bucket") from None
        return json_response(data)
    except HedgeError as exc:
        return error_response(exc)


@store_endpoint
async def latency(request: Request) -> Response:
    try:
        _, analytics = await _guard(request)
        return json_response(await analytics.latency(*_since(request)))
    except HedgeError as exc:
        return error_response(exc)


async def breakers(request: Request) -> Response:
    """Each configured deployment's breaker (as this process sees it) and the router's live stats."""
    try:
        runtime = runtime_of(request)
        require_master(request, runtime)
        return json_response({"deployments": deployment_rows(runtime), "scope": "process"})
    except HedgeError as exc:
        return error_response(exc)


async def admin_health(request: Request) -> Response:
    """``/admin/health``: every deployment's breaker, live stats, health check and last probe."""
    try:
        runtime = runtime_of(request)
        require_master(request, runtime)
        rows = deployment_rows(runtime)
        down = [r["deployment"] for r in rows if r["state"] != "closed" or r["misconfigured"]]
        return json_response(
            {
                "status": "degraded" if down else "ok",
                "unhealthy": down,
                "deployments": rows,
                "scope": "process",
            }
        )
    except HedgeError as exc:
        return error_response(exc)


def deployment_rows(runtime: Runtime) -> list[dict[str, Any]]:
    """One row per configured deployment: its breaker, stats, cache reads and health probes."""
    aliases: dict[str, list[str]] = {}
    for alias in runtime.router.aliases.values():
        for dep in alias.deployments:
            aliases.setdefault(dep.id, []).append(alias.name)
    rows: list[dict[str, Any]] = []
    for dep_id, names in aliases.items():
        breaker = runtime.failover.breakers.get(dep_id)
        stats = runtime.router.stats.get(dep_id)
        provider, _, model = dep_id.partition("/")
        rows.append(
            {
                "deployment": dep_id,
                "provider": provider,
                "model": model,
                "aliases": names,
                "state": breaker.observed_state().value if breaker is not None else "closed",
                "cooling_down": breaker.cooling_down() if breaker is not None else False,
                "misconfigured": breaker is not None and breaker.misconfigured is not None,
                "misconfigured_reason": breaker.misconfigured if breaker is not None else None,
                "in_flight": stats.in_flight if stats is not None else 0,
                "samples": stats.samples if stats is not None else 0,
                "ewma_latency_ms": _round(stats.ewma_latency_ms if stats is not None else None),
                "ewma_ttft_ms": _round(stats.ewma_ttft_ms if stats is not None else None),
                "p95_latency_ms": _round(stats.p95_latency_ms() if stats is not None else None),
                "prompt_tokens": stats.prompt_tokens if stats is not None else 0,
                "cached_tokens": stats.cached_tokens if stats is not None else 0,
                "cache_read_ratio": _round(
                    stats.cached_tokens / stats.prompt_tokens
                    if stats is not None and stats.prompt_tokens
                    else None
                ),
                "health_check": _check(runtime, provider),
                "probe": probe.to_dict() if (probe := runtime.prober.last.get(dep_id)) else None,
                **_quality(runtime, dep_id),
            }
        )

    return rows


def _check(runtime: Runtime, provider: str) -> dict[str, Any] | None:
    config = runtime.config.providers.get(provider)
    check = config.health_check if config is not None else None
    return check.model_dump() if check is not None else None


def _quality(runtime: Runtime, dep_id: str) -> dict[str, Any]:
    """The quality the ``cheapest`` strategy checks for this deployment and where it comes from:
    ``measured`` (by ``hedge eval --apply``: the interval's lower bound) beats ``configured`` (the
    first alias that configures one, when several aliases share the deployment)."""
    configured = next(
        (
            d.quality
            for a in runtime.router.aliases.values()
            for d in a.deployments
            if d.id == dep_id and d.quality is not None
        ),
        None,
    )
    found = runtime.measured_quality.get(dep_id)
    quality = found.ci_low if found is not None else configured
    source = "measured" if found is not None else "configured" if configured is not None else None
    return {
        "quality": _round(quality),
        "quality_source": source,
        "configured_quality": configured,
        "measured_quality": found.to_dict() if found is not None else None,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _filters(request: Request) -> RequestFilter:
    since, until = _since(request)
    params = request.query_params
    status = params.get("status") or None
    if status not in (None, "ok", "error"):
        raise InvalidRequest(f"Invalid 'status': {status!r}; choose from ok, error.", param="status")
    return RequestFilter(
        since=since,
        until=until,
        q=params.get("q") or None,
        provider=params.get("provider") or None,
        model=params.get("model") or None,
        alias=params.get("alias") or None,
        status=status,
        key=params.get("key") or None,
    )


@store_endpoint
async def requests(request: Request) -> Response:
    try:
        _, analytics = await _guard(request)
        filters = _filters(request)
        limit = _int_param(request, "limit", 100, 1, 500)
        offset = _int_param(request, "offset", 0, 0, 10_000_000)
        data = await analytics.requests(filters, limit, offset)
        if request.query_params.get("facets") in ("1", "true"):
            data["facets"] = await analytics.facets(filters.since, filters.until)
        return json_response(data)
    except HedgeError as exc:
        return error_response(exc)


@store_endpoint
async def request_detail(request: Request) -> Response:
    try:
        runtime, analytics = await _guard(request)
        for sink in runtime.sinks:
            if isinstance(sink, BodyLog):
                await sink.flush()
        request_id = request.path_params["request_id"]
        row = await analytics.request(request_id)
        if row is None:
            raise NotFound(f"No request with id '{request_id}'.", code="request_not_found", param="id")
        return json_response(row)
    except HedgeError as exc:
        return error_response(exc)


def read_conformance(path: Path, deployments: list[str]) -> dict[str, Any]:
    """The latest status of every case on every configured deployment, as ``hedge check`` recorded it."""
    if not path.is_file():
        return {"results": []}
    store = JsonlResultStore(path)
    results = []
    for dep in deployments:
        for case, latest in sorted(store.latest(dep).items()):
            results.append(
                {
                    "deployment": dep,
                    "case": case,
                    "status": latest.status,
                    "checked_at": latest.checked_at.isoformat(),
                }
            )
    return {"results": results, "path": str(path)}


@store_endpoint
async def experiments_panel(request: Request) -> Response:
    """The Experiments panel: the same overview as ``GET /admin/experiments``."""
    try:
        require_master(request, runtime_of(request))
        return json_response(await experiments_of(request).overview())
    except HedgeError as exc:
        return error_response(exc)


async def conformance(request: Request) -> Response:
    try:
        runtime = runtime_of(request)
        require_master(request, runtime)
        deployments = list(
            dict.fromkeys(d.id for alias in runtime.router.aliases.values() for d in alias.deployments)
        )
        data = await asyncio.to_thread(read_conformance, results_path(runtime.config), deployments)
        return json_response(data)
    except HedgeError as exc:
        return error_response(exc)
