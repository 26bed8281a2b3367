"""Evaluation datasets: JSONL files of chat requests, each with an optional expected answer.

Two line shapes are read, so a dataset can be written by hand, exported from the gateway's own
logs (:func:`export_logged`) or reused from an OpenAI batch input file:

* ``{"messages": [...], "expected"?: ..., "metadata"?: {...}, ...}``: any other key is a chat
  request parameter (``tools``, ``response_format``, ``temperature`` ...) sent as it is;
* ``{"custom_id": ..., "body": {...}}``: an OpenAI batch-input line (``method``/``url`` ignored,
  ``custom_id`` becomes the item's id); ``expected`` and ``metadata`` may sit beside ``body``.

``model`` and ``stream`` are the evaluation's to choose, so a line's own are dropped. A line that is
not such an object is an error naming its line number, never a silently skipped item.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from hedge.store.evals import logged_chats

_DROPPED = ("model", "stream", "stream_options", "n")
"""Request keys the evaluation sets itself (one non-streamed answer from the candidate)."""


class DatasetError(ValueError):
    """A dataset line cannot be read, with the file and line number in the message."""


@dataclass(slots=True)
class Item:
    id: str
    request: dict[str, Any]
    """The chat request without ``model`` and ``stream``."""
    expected: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)


def parse_line(data: Any, line_id: str) -> Item:
    """One dataset line as an :class:`Item` (raises ``ValueError`` saying what is wrong)."""
    if not isinstance(data, dict):
        raise ValueError("a line must be a JSON object")
    expected = data.get("expected")
    metadata = data.get("metadata")
    if "body" in data and "messages" not in data:
        body = data["body"]
        if not isinstance(body, dict):
            raise ValueError("'body' must be an object (an OpenAI batch-input line)")
        item_id = str(data.get("custom_id") or line_id)
        request = dict(body)
        expected = request.pop("expected", expected)
    else:
        request = {k: v for k, v in data.items() if k not in ("expected", "metadata", "id")}
        item_id = str(data.get("id") or line_id)
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError("'metadata' must be an object")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list of chat messages")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise ValueError("each message must be an object with a 'role'")
    for key in _DROPPED:
        request.pop(key, None)
    return Item(item_id, request, expected, dict(metadata or {}))


def load(path: str | Path) -> list[Item]:
    """Read a JSONL dataset (blank lines skipped); raise :class:`DatasetError` on the first bad line."""
    source = str(path)
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise DatasetError(f"{source}: cannot read file: {exc.strerror or exc}") from None
    items: list[Item] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            items.append(parse_line(orjson.loads(raw), f"line-{number}"))
        except orjson.JSONDecodeError as exc:
            raise DatasetError(f"{source}: line {number}: not JSON ({exc})") from None
        except ValueError as exc:
            raise DatasetError(f"{source}: line {number}: {exc}") from None
    if not items:
        raise DatasetError(f"{source}: no items")
    return items


def item_line(item: Item) -> dict[str, Any]:
    """An item as a dataset line (the first shape above), for :func:`write`."""
    line: dict[str, Any] = {"id": item.id, **item.request}
    if item.expected is not None:
        line["expected"] = item.expected
    if item.metadata:
        line["metadata"] = item.metadata
    return line


def write(items: Iterable[Item], path: str | Path) -> int:
    """Write ``items`` as JSONL; the number written."""
    count = 0
    with Path(path).open("wb") as out:
        for item in items:
            out.write(orjson.dumps(item_line(item)) + b"\n")
            count += 1
    return count


def expected_from_response(response: Any) -> Any:
    """The reference answer in a logged chat completion: the first choice's text, or its tool calls
    (``[{"name", "arguments"}]``, arguments parsed); None if the response holds neither."""
    if not isinstance(response, dict):
        return None
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    if not isinstance(message, dict):
        return None
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        out = []
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict):
                continue
            try:
                arguments = orjson.loads(fn.get("arguments") or "{}")
            except (orjson.JSONDecodeError, TypeError):
                arguments = fn.get("arguments")
            out.append({"name": fn.get("name"), "arguments": arguments})
        return out
    content = message.get("content")
    return content if isinstance(content, str) else None


async def export_logged(db: Any, alias: str, since: float, sample: int | None, seed: int = 0) -> list[Item]:
    """Items from the body log (``server.log_bodies``): successful chat requests to ``alias`` since
    ``since``, each keeping the answer it got as ``expected``; at most ``sample`` of them, drawn
    uniformly with ``seed``. Bodies cut at the body log's limit are not JSON and are left out."""
    rows = await logged_chats(db, alias, since)
    items: list[Item] = []
    for row in rows:
        try:
            request = orjson.loads(row["request"] or "")
            response = orjson.loads(row["response"] or "")
        except orjson.JSONDecodeError:
            continue
        try:
            item = parse_line(request, str(row["request_id"]))
        except ValueError:
            continue
        item.id = str(row["request_id"])
        item.expected = expected_from_response(response)
        item.metadata = {"request_id": row["request_id"], "model": row["model"], "provider": row["provider"]}
        items.append(item)
    if sample is not None and len(items) > sample:
        items = random.Random(seed).sample(items, sample)
    return items
