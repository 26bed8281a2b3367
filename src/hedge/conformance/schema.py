"""A small JSON Schema validator: the subset tool parameters and structured outputs use.

Covers ``type`` (one or a list), ``enum``, ``const``, ``properties``,
``required``, ``additionalProperties``, ``items``, ``minItems``/``maxItems``,
``minimum``/``maximum`` (and the exclusive forms), ``minLength``/``maxLength``,
``pattern``, ``anyOf``/``oneOf``/``allOf`` and local ``$ref``
(``#/$defs/...``, ``#/definitions/...``). Keywords outside the subset are
ignored, so a schema that uses them is checked less strictly, never wrongly.
"""

from __future__ import annotations

import re
from typing import Any

_TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}


def errors(instance: Any, schema: Any, limit: int = 3) -> list[str]:
    """Up to ``limit`` problems with ``instance`` (empty when it validates), each naming its JSON path."""
    found: list[str] = []
    _check(instance, schema, "$", schema, found, limit)
    return found[:limit]


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is(value: Any, kind: str) -> bool:
    actual = _type_of(value)
    if kind == "number":
        return actual in ("integer", "number")
    if kind == "integer":
        return actual == "integer" or (actual == "number" and float(value).is_integer())
    return actual == kind


def _resolve(ref: str, root: Any) -> Any:
    if not ref.startswith("#/"):
        return {}
    node = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return {}
        node = node[part]
    return node


def _check(value: Any, schema: Any, path: str, root: Any, out: list[str], limit: int) -> None:
    if len(out) >= limit or not isinstance(schema, dict):
        return
    if isinstance(schema.get("$ref"), str):
        _check(value, _resolve(schema["$ref"], root), path, root, out, limit)
        return
    kind = schema.get("type")
    kinds = [kind] if isinstance(kind, str) else list(kind) if isinstance(kind, list) else []
    kinds = [k for k in kinds if k in _TYPES]
    if kinds and not any(_is(value, k) for k in kinds):
        out.append(f"{path}: expected {' or '.join(kinds)}, got {_type_of(value)}")
        return
    if "enum" in schema and isinstance(schema["enum"], list) and value not in schema["enum"]:
        out.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{path}: expected {schema['const']!r}, got {value!r}")
    for key in ("allOf", "anyOf", "oneOf"):
        options = schema.get(key)
        if not isinstance(options, list) or not options:
            continue
        passing = sum(1 for sub in options if not _sub_errors(value, sub, root))
        if key == "allOf" and passing < len(options):
            out.append(f"{path}: does not match every schema in allOf")
        elif key == "anyOf" and passing == 0:
            out.append(f"{path}: matches none of the schemas in anyOf")
        elif key == "oneOf" and passing != 1:
            out.append(f"{path}: matches {passing} of the schemas in oneOf (expected exactly 1)")
    if isinstance(value, dict):
        _object(value, schema, path, root, out, limit)
    elif isinstance(value, list):
        _array(value, schema, path, root, out, limit)
    elif isinstance(value, str):
        _string(value, schema, path, out)
    elif _is(value, "number"):
        _number(value, schema, path, out)


def _sub_errors(value: Any, schema: Any, root: Any) -> list[str]:
    found: list[str] = []
    _check(value, schema, "$", root, found, 1)
    return found


def _object(
    value: dict[str, Any], schema: dict[str, Any], path: str, root: Any, out: list[str], limit: int
) -> None:
    raw_props = schema.get("properties")
    props: dict[str, Any] = raw_props if isinstance(raw_props, dict) else {}
    for name in schema.get("required") or []:
        if name not in value:
            out.append(f"{path}: missing required property {name!r}")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        where = f"{path}.{name}"
        if name in props:
            _check(item, props[name], where, root, out, limit)
        elif extra is False:
            out.append(f"{path}: unexpected property {name!r}")
        elif isinstance(extra, dict):
            _check(item, extra, where, root, out, limit)


def _array(
    value: list[Any], schema: dict[str, Any], path: str, root: Any, out: list[str], limit: int
) -> None:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if isinstance(low, int) and len(value) < low:
        out.append(f"{path}: {len(value)} items, fewer than {low}")
    if isinstance(high, int) and len(value) > high:
        out.append(f"{path}: {len(value)} items, more than {high}")
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _check(item, items, f"{path}[{i}]", root, out, limit)


def _string(value: str, schema: dict[str, Any], path: str, out: list[str]) -> None:
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(value) < low:
        out.append(f"{path}: shorter than {low} characters")
    if isinstance(high, int) and len(value) > high:
        out.append(f"{path}: longer than {high} characters")
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            if re.search(pattern, value) is None:
                out.append(f"{path}: does not match pattern {pattern!r}")
        except re.error:
            pass


def _number(value: float, schema: dict[str, Any], path: str, out: list[str]) -> None:
    checks: list[tuple[str, str, Any]] = [
        ("minimum", "<", lambda b: value >= b),
        ("maximum", ">", lambda b: value <= b),
        ("exclusiveMinimum", "<=", lambda b: value > b),
        ("exclusiveMaximum", ">=", lambda b: value < b),
    ]
    for key, sign, holds in checks:
        bound = schema.get(key)
        if _is(bound, "number") and not holds(bound):
            out.append(f"{path}: {value} {sign} {key} {bound}")
