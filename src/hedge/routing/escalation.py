"""Escalation checks: does a cheap model's answer need a stronger model?

An alias with ``escalate: {to: ALIAS, when: [...]}`` serves a non-streaming
request from its own deployments first; if the answer fails one of these
checks, the request is sent again to ``to`` and that answer is returned.
The checks are deterministic and cheap: no second model judges the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def escalation_reason(raw: bytes | memoryview, request: dict[str, Any], checks: Sequence[str]) -> str | None:
    """The first check the answer fails, or None if it passes them all."""
    try:
        data = orjson.loads(bytes(raw))
        choice = data["choices"][0]
        message = choice.get("message") or {}
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return "empty" if "empty" in checks else None
    content = message.get("content")
    calls = message.get("tool_calls") or []
    if "length" in checks and choice.get("finish_reason") == "length":
        return "length"
    if "empty" in checks and not (content and str(content).strip()) and not calls:
        return "empty"
    fmt = (request.get("response_format") or {}).get("type")
    if "invalid_json" in checks and fmt in ("json_object", "json_schema") and not calls:
        try:
            orjson.loads(content or "")
        except orjson.JSONDecodeError:
            return "invalid_json"
    if "tool_schema" in checks and calls:
        schemas = {
            t["function"]["name"]: t["function"].get("parameters") or {}
            for t in request.get("tools") or []
            if isinstance(t, dict) and isinstance(t.get("function"), dict)
        }
        for call in calls:
            fn = call.get("function") or {}
            if fn.get("name") not in schemas:
                return "tool_schema"
            try:
                args = orjson.loads(fn.get("arguments") or "")
            except (orjson.JSONDecodeError, TypeError):
                return "tool_schema"
            if not conforms(args, schemas[fn["name"]]):
                return "tool_schema"
    return None


def conforms(value: Any, schema: Any) -> bool:
    """A small JSON-schema subset: type, required, properties, items, enum.

    The schema is the client's and is not validated, so a keyword of the wrong JSON type
    (``"required": 5``, ``"type": {}``) constrains nothing rather than failing the request.
    """
    if not isinstance(schema, dict):
        return True
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        return False
    kind = schema.get("type")
    kinds = [k for k in (kind if isinstance(kind, list) else [kind]) if isinstance(k, str)]
    if kinds:
        ok = any(
            isinstance(value, _TYPES.get(k, object))
            and not (k in ("integer", "number") and isinstance(value, bool))
            for k in kinds
        )
        if not ok:
            return False
    if isinstance(value, dict):
        required = schema.get("required")
        if isinstance(required, list) and any(isinstance(r, str) and r not in value for r in required):
            return False
        props = schema.get("properties")
        if not isinstance(props, dict):
            return True
        return all(conforms(v, props[k]) for k, v in value.items() if k in props)
    if isinstance(value, list) and "items" in schema:
        return all(conforms(v, schema["items"]) for v in value)
    return True
