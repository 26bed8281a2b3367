"""``/admin``: virtual keys, teams and spend reports. Master key only.

Every endpoint here reads or writes the database, so each is a ``store_endpoint``:
with the database down or not answering (within ``state.db_timeout_s``) it answers
503 ``state_store_unavailable``, not 500.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from hedge.access.gate import Budgeted
from hedge.access.teams import Team, TeamExists
from hedge.api.http import (
    error_response,
    json_response,
    read_body,
    require_master,
    runtime_of,
    store_endpoint,
)
from hedge.api.validation import parse_json_object
from hedge.errors import HedgeError, InvalidRequest, NotFound
from hedge.gateway.runtime import Runtime
from hedge.store.ledger import GROUPS, parse_since


async def _guard(request: Request) -> Runtime:
    runtime = runtime_of(request)
    require_master(request, runtime)
    return runtime


async def _json(request: Request) -> dict[str, Any]:
    return parse_json_object(await read_body(request, 64 * 1024))


def _invalid(exc: ValueError) -> InvalidRequest:
    text = str(exc)
    param = text.split(":", 1)[0] if ":" in text else None
    return InvalidRequest(text, param=param, code="invalid_value")


def _not_found(key_id: str) -> NotFound:
    return NotFound(f"No key with id '{key_id}'.", code="key_not_found", param="id")


@store_endpoint
async def create_key(request: Request) -> Response:
    try:
        runtime = await _guard(request)
        try:
            key, secret = await runtime.keys.create(await _json(request))
        except ValueError as exc:
            raise _invalid(exc) from None
        return json_response({**key.public(), "key": secret}, status=201)
    except HedgeError as exc:
        return error_response(exc)


@store_endpoint
async def list_keys(request: Request) -> Response:
    try:
        runtime = await _guard(request)
        return json_response({"object": "list", "data": [k.public() for k in await runtime.keys.list()]})
    except HedgeError as exc:
        return error_response(exc)


@store_endpoint
async def key_detail(request: Request) -> Response:
    """GET, PATCH and DELETE (revoke) one key."""
    try:
        runtime = await _guard(request)
        key_id = request.path_params["key_id"]
        if request.method == "GET":
            key = await runtime.keys.get(key_id)
        elif request.method == "PATCH":
            try:
                key = await runtime.keys.update(key_id, await _json(request))
            except ValueError as exc:
                raise _invalid(exc) from None
        else:
            key = await runtime.keys.revoke(key_id)
        if key is None:
            raise _not_found(key_id)
        return json_response(key.public())
    except HedgeError as exc:
        return error_response(exc)


@store_endpoint
async def spend(request: Request) -> Response:
    try:
        runtime = await _guard(request)
        by = request.query_params.get("by", "provider")
        if by not in GROUPS:
            raise InvalidRequest(f"Invalid 'by': {by!r}; choose from {', '.join(GROUPS)}.", param="by")
        try:
            since = parse_since(request.query_params.get("since", "30d"))
            until_raw = request.query_params.get("until")
            until = parse_since(until_raw) if until_raw else None
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="since") from None
        await runtime.ledger.flush()
        rows, total = await runtime.ledger.spend(by, since, until)
        return json_response(
            {
                "by": by,
                "since": since,
                "until": until or time.time(),
                "rows": [r.to_dict() for r in rows],
                "total": total.to_dict(),
            }
        )
    except HedgeError as exc:
        return error_response(exc)


async def _team_view(runtime: Runtime, team: Team) -> dict[str, Any]:
    """A team's fields, with what it has spent in its current budget period (when it has a budget)."""
    subject = Budgeted.of_team(team)
    spent = await runtime.gate.spent(subject) if subject.enforced else None
    return {**team.public(), "spent_usd": spent}


@store_endpoint
async def create_team(request: Request) -> Response:
    try:
        runtime = await _guard(request)
        try:
            team = await runtime.teams.create(await _json(request))
        except TeamExists as exc:
            raise HedgeError(str(exc), status=409, type="invalid_request_error", code="team_exists") from None
        except ValueError as exc:
            raise _invalid(exc) from None
        return json_response(await _team_view(runtime, team), status=201)
    except HedgeError as exc:
        return error_response(exc)


@store_endpoint
async def list_teams(request: Request) -> Response:
    try:
        runtime = await _guard(request)
        teams = [await _team_view(runtime, t) for t in await runtime.teams.list()]
        return json_response({"object": "list", "data": teams})
    except HedgeError as exc:
        return error_response(exc)


@store_endpoint
async def team_detail(request: Request) -> Response:
    """GET and PATCH one team."""
    try:
        runtime = await _guard(request)
        name = request.path_params["name"]
        if request.method == "GET":
            team = await runtime.teams.get(name)
        else:
            try:
                team = await runtime.teams.update(name, await _json(request))
            except ValueError as exc:
                raise _invalid(exc) from None
        if team is None:
            raise NotFound(f"No team named '{name}'.", code="team_not_found", param="name")
        return json_response(await _team_view(runtime, team))
    except HedgeError as exc:
        return error_response(exc)
