"""A Responses API event stream, checked for the shape clients (and the OpenAI SDKs) rely on.

What must hold, whatever the answer: every event is a named SSE event whose ``data`` is a JSON
object of the same ``type``, with a ``sequence_number`` above the one before; the stream opens
with ``response.created`` and ends with exactly one ``response.completed`` (``.incomplete``,
``.failed``) and no ``[DONE]``; the response id stays the same. Output items are added with the
next ``output_index``, and a message's content parts with the next ``content_index``; text and
argument deltas arrive only while their part or item is open, and each ``.done`` repeats what
the deltas built; an item is done only after its parts are; nothing refers to an item or part
that is not open. The final response lists the items that were done, with the same text and
arguments. Events of other types (reasoning, annotations ...) may come between and are only
numbered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hedge.conformance.send import TERMINAL_EVENTS

_TEXT_DELTAS = {"response.output_text.delta": "output_text", "response.refusal.delta": "refusal"}
_TEXT_DONE = {
    "response.output_text.done": ("output_text", "text"),
    "response.refusal.done": ("refusal", "refusal"),
}
_PART_TEXT = {"output_text": "text", "refusal": "refusal"}


@dataclass(slots=True)
class _Part:
    kind: str
    text: str = ""
    text_done: bool = False
    done: bool = False


@dataclass(slots=True)
class _Item:
    id: str
    kind: str
    parts: list[_Part] = field(default_factory=list)
    arguments: str = ""
    arguments_done: bool = False
    done: bool = False


class _Problem(Exception):
    pass


def _short(value: Any, limit: int = 60) -> str:
    if not isinstance(value, str):
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 1] + "…"
    return repr(value if len(value) <= limit else value[: limit - 1] + "…")


def check(events: list[dict[str, Any]], wanted: list[str] | None = None) -> str | None:
    """``None`` when the parsed events (:func:`~hedge.conformance.send.parse_events`) are a well-formed
    Responses stream (and hold ``wanted``'s types in that order), else the first problem."""
    try:
        payloads = _numbered(events)
        _framing(payloads)
        _items(payloads)
    except _Problem as exc:
        return str(exc)
    if wanted:
        return _in_order([p["type"] for p in payloads], wanted)
    return None


def _numbered(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not events:
        raise _Problem("empty stream")
    payloads: list[dict[str, Any]] = []
    last: int | None = None
    for k, event in enumerate(events, 1):
        if "_malformed" in event:
            raise _Problem(f"malformed SSE event: {_short(event['_malformed'])}")
        name, data = event.get("event"), event.get("data")
        if data == "[DONE]":
            raise _Problem("'data: [DONE]' in a Responses stream (it ends with its final response event)")
        if not isinstance(data, dict):
            raise _Problem(f"event {k}'s data is not a JSON object")
        kind = data.get("type")
        if name == "error" or kind == "error":
            message = data.get("message") or (data.get("error") or {}).get("message") or data
            raise _Problem(f"stream ended with an error event: {_short(message, 120)}")
        if name is None:
            raise _Problem(f"event {k} ({kind!r}) has no 'event:' name")
        if kind != name:
            raise _Problem(f"event {k} is named {name!r} but its type is {kind!r}")
        seq = data.get("sequence_number")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise _Problem(f"{kind} (event {k}) has no sequence_number")
        if last is not None and seq <= last:
            raise _Problem(f"{kind} (event {k}) has sequence_number {seq}, not above {last}")
        last = seq
        payloads.append(data)
    return payloads


def _framing(payloads: list[dict[str, Any]]) -> None:
    types = [p["type"] for p in payloads]
    if types[0] != "response.created":
        raise _Problem(f"the first event is {types[0]}, not response.created")
    ends = [i for i, t in enumerate(types) if t in TERMINAL_EVENTS]
    if not ends:
        raise _Problem("no response.completed (or .incomplete, .failed) at the end")
    if len(ends) > 1 or ends[0] != len(types) - 1:
        raise _Problem(f"{types[ends[0]]} is not the single last event")
    ids = set()
    for k, p in enumerate(payloads):
        response = p.get("response")
        if ("response" in p or k in (0, len(payloads) - 1)) and not isinstance(response, dict):
            raise _Problem(f"{p['type']} carries no response object")
        if isinstance(response, dict):
            ids.add(response.get("id"))
    if len(ids) > 1:
        raise _Problem(f"the events carry different response ids: {sorted(map(str, ids))}")
    final = payloads[-1]["response"]
    expected = payloads[-1]["type"].removeprefix("response.")
    if final.get("status") != expected:
        raise _Problem(f"{payloads[-1]['type']} carries a response with status {final.get('status')!r}")


def _items(payloads: list[dict[str, Any]]) -> None:
    items: list[_Item] = []

    def item_at(p: dict[str, Any], kind: str | None = None) -> _Item:
        index = p.get("output_index")
        if not isinstance(index, int) or not 0 <= index < len(items):
            raise _Problem(f"{p['type']} refers to output_index {index!r}, which was never added")
        item = items[index]
        if item.done:
            raise _Problem(f"{p['type']} for output item {index} after its output_item.done")
        if "item_id" in p and p["item_id"] != item.id:
            raise _Problem(
                f"{p['type']} has item_id {p['item_id']!r}, but output item {index} is {item.id!r}"
            )
        if kind is not None and item.kind != kind:
            raise _Problem(f"{p['type']} for output item {index}, a {item.kind} item")
        return item

    def part_at(p: dict[str, Any]) -> _Part:
        item = item_at(p, "message")
        index = p.get("content_index")
        if not isinstance(index, int) or not 0 <= index < len(item.parts):
            raise _Problem(f"{p['type']} refers to content_index {index!r} of item {item.id!r}, never added")
        part = item.parts[index]
        if part.done:
            raise _Problem(f"{p['type']} after content_part.done (item {item.id!r}, part {index})")
        return part

    for p in payloads:
        kind = p["type"]
        if kind == "response.output_item.added":
            new = p.get("item")
            if p.get("output_index") != len(items):
                raise _Problem(
                    f"output_item.added with output_index {p.get('output_index')!r}, expected {len(items)}"
                )
            if not isinstance(new, dict) or not new.get("id") or not isinstance(new.get("type"), str):
                raise _Problem("output_item.added without an item with an id and a type")
            items.append(_Item(str(new["id"]), new["type"]))
        elif kind == "response.content_part.added":
            item = item_at(p, "message")
            part = p.get("part")
            if p.get("content_index") != len(item.parts):
                got = p.get("content_index")
                raise _Problem(f"content_part.added with content_index {got!r}, expected {len(item.parts)}")
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise _Problem("content_part.added without a part with a type")
            item.parts.append(_Part(part["type"]))
        elif kind in _TEXT_DELTAS:
            part = part_at(p)
            if part.kind != _TEXT_DELTAS[kind] or part.text_done:
                raise _Problem(f"{kind} for a {part.kind} part{' already done' if part.text_done else ''}")
            if not isinstance(p.get("delta"), str):
                raise _Problem(f"{kind} whose delta is {_short(p.get('delta'))}, not text")
            part.text += p["delta"]
        elif kind in _TEXT_DONE:
            part = part_at(p)
            part_kind, key = _TEXT_DONE[kind]
            if part.kind != part_kind:
                raise _Problem(f"{kind} for a {part.kind} part")
            if p.get(key) != part.text:
                raise _Problem(
                    f"{kind} has {key} {_short(p.get(key))}, but the deltas made {_short(part.text)}"
                )
            part.text_done = True
        elif kind == "response.content_part.done":
            part = part_at(p)
            text_key = _PART_TEXT.get(part.kind)
            if text_key is not None and not part.text_done:
                raise _Problem(f"content_part.done before response.{part.kind}.done")
            final = p.get("part")
            if text_key is not None and (not isinstance(final, dict) or final.get(text_key) != part.text):
                got = final.get(text_key) if isinstance(final, dict) else final
                raise _Problem(
                    f"content_part.done has {text_key} {_short(got)}, but the deltas made {_short(part.text)}"
                )
            part.done = True
        elif kind == "response.function_call_arguments.delta":
            item = item_at(p, "function_call")
            if item.arguments_done or not isinstance(p.get("delta"), str):
                raise _Problem(
                    f"function_call_arguments.delta after .done, or not text: {_short(p.get('delta'))}"
                )
            item.arguments += p["delta"]
        elif kind == "response.function_call_arguments.done":
            item = item_at(p, "function_call")
            if item.arguments and p.get("arguments") != item.arguments:
                raise _Problem(
                    f"function_call_arguments.done has {_short(p.get('arguments'))}, "
                    f"but the deltas made {_short(item.arguments)}"
                )
            arguments = p.get("arguments")
            item.arguments = arguments if isinstance(arguments, str) else item.arguments
            item.arguments_done = True
        elif kind == "response.output_item.done":
            item = item_at(p)
            if any(not part.done for part in item.parts):
                raise _Problem(f"output_item.done for {item.id!r} before its content_part.done")
            if item.kind == "function_call" and not item.arguments_done:
                raise _Problem(f"output_item.done for {item.id!r} before function_call_arguments.done")
            _matches(p.get("item"), item, "output_item.done")
            item.done = True
    if payloads[-1]["type"] == "response.completed":
        open_items = [i.id for i in items if not i.done]
        if open_items:
            raise _Problem(f"response.completed while output item {open_items[0]!r} was never done")
    output = payloads[-1]["response"].get("output")
    if not isinstance(output, list):
        raise _Problem("the final response has no output list")
    if len(output) != len(items):
        raise _Problem(f"the final response has {len(output)} output items, the stream added {len(items)}")
    for final, item in zip(output, items, strict=True):
        _matches(final, item, "the final response")


def _matches(given: Any, item: _Item, where: str) -> None:
    """``given`` (an item as an event or the final response shows it) is ``item`` as streamed."""
    if not isinstance(given, dict) or given.get("id") != item.id or given.get("type") != item.kind:
        got = (given.get("type"), given.get("id")) if isinstance(given, dict) else given
        raise _Problem(f"{where} shows output item {got!r}, the stream added ({item.kind!r}, {item.id!r})")
    has_arguments = bool(item.arguments) or item.arguments_done
    if item.kind == "function_call" and has_arguments and given.get("arguments") != item.arguments:
        raise _Problem(
            f"{where} has arguments {_short(given.get('arguments'))} for {item.id!r}, "
            f"the stream made {_short(item.arguments)}"
        )
    if item.kind == "message":
        content = given.get("content")
        if not isinstance(content, list) or len(content) != len(item.parts):
            raise _Problem(f"{where} shows message {item.id!r} with other content parts than were streamed")
        for part, streamed in zip(content, item.parts, strict=True):
            key = _PART_TEXT.get(streamed.kind)
            if not isinstance(part, dict) or part.get("type") != streamed.kind:
                raise _Problem(
                    f"{where} shows message {item.id!r} with other content parts than were streamed"
                )
            if key is not None and part.get(key) != streamed.text:
                made = _short(streamed.text)
                raise _Problem(
                    f"{where} has {key} {_short(part.get(key))} in {item.id!r}, the deltas made {made}"
                )


def _in_order(types: list[str], wanted: list[str]) -> str | None:
    at = 0
    for k, name in enumerate(wanted):
        while at < len(types) and types[at] != name:
            at += 1
        if at == len(types):
            if name not in types:
                return f"no {name} event in the stream"
            return f"no {name} after {wanted[k - 1]}"
        at += 1
    return None
