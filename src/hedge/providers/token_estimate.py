"""A local estimate of an Anthropic Messages request's input tokens, when no upstream can count them.

``POST /v1/messages/count_tokens`` asks an Anthropic-style deployment of the request's route for
the real count; when the route has none (or the one asked failed) the gateway answers this
estimate instead, and says so (``x-hedge-token-count: estimated``). Anthropic's tokenizer is not
public, so this is arithmetic on sizes, with these bases:

* **text** (system, text blocks, tool inputs and tool definitions): one token per
  :data:`BYTES_PER_TOKEN` bytes of UTF-8, over the whole request. Byte length rather than
  characters, so a script that takes several bytes a character (CJK: 3) weighs more per
  character, as it does in byte-level BPE tokenizers;
* **framing**: :data:`REQUEST_TOKENS` a request and :data:`TURN_TOKENS` a message (and for the
  system prompt), :data:`BLOCK_TOKENS` a ``tool_use`` / ``tool_result`` block. Anthropic does not
  publish its framing; these are a few tokens, the order of magnitude of what chat formats use;
* **tools**: the JSON of each definition, as text, plus the tool-use system prompt Anthropic adds
  once: :data:`TOOL_PROMPT_TOKENS` (346 tokens with ``tool_choice`` auto or none, 313 with any or
  tool: the figures its tool-use pricing page gives for the Claude 4 models; Claude 3 models
  ranged from 159 to 530);
* **images**: Anthropic's published rule, ``width * height / 750`` after scaling down to at most
  :data:`IMAGE_MAX_EDGE` pixels on the long edge and about :data:`IMAGE_MAX_TOKENS` tokens. The
  size is read from the PNG, GIF, WebP or JPEG header of base64 data; an image whose size cannot
  be read (a URL source, a header past the first :data:`_HEADER_BYTES`) counts as
  :data:`IMAGE_MAX_TOKENS`, the most one image takes under that rule;
* ``thinking`` / ``redacted_thinking`` blocks count nothing (Anthropic leaves earlier turns'
  thinking out of the context); any other block counts the size of its JSON as text (an
  over-count for a base64 document, which the face refuses anyway, as ``/v1/messages`` does).

Error bound: **not measured against Anthropic's tokenizer** (not available here); it is reasoned
from tokenizers of the same kind. English prose takes about 3.3 to 4.5 bytes a token in them, so
the text part reads between about 6 % low and 30 % high; code and JSON take fewer bytes a token
(2.5 to 3.5), so they may read up to about 30 % low. Expect the total within about 30 % of
Anthropic's count for English prose and code, further off for other scripts (a factor of two
either way is possible), for models whose tokenizer or image limits differ (newer models accept
larger images, which then take more tokens than this rule gives), and for requests dominated by
images of unreadable size. Nor does the estimate know which model would serve: providers count
the same text differently, and so do Anthropic's own model generations.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

BYTES_PER_TOKEN = 3.5
REQUEST_TOKENS = 3
TURN_TOKENS = 4
BLOCK_TOKENS = 3
TOOL_PROMPT_TOKENS = {"auto": 346, "none": 346, "any": 313, "tool": 313}
IMAGE_MAX_EDGE = 1568
IMAGE_MAX_TOKENS = 1600
IMAGE_PIXELS_PER_TOKEN = 750
_HEADER_BYTES = 256 * 1024
"""How much of a base64 image is decoded to find its size (a JPEG's may follow large metadata)."""
_UNCOUNTED_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
    """The estimated input tokens of a (validated) Messages or token counting request body."""
    tally = _Tally()
    tally.fixed += REQUEST_TOKENS
    system = body.get("system")
    if system:
        tally.fixed += TURN_TOKENS
        tally.content(system)
    for message in body.get("messages") or ():
        tally.fixed += TURN_TOKENS
        if isinstance(message, Mapping):
            tally.content(message.get("content"))
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        choice = body.get("tool_choice")
        kind = choice.get("type") if isinstance(choice, Mapping) else None
        prompt = TOOL_PROMPT_TOKENS.get(kind) if isinstance(kind, str) else None
        tally.fixed += TOOL_PROMPT_TOKENS["auto"] if prompt is None else prompt
        for tool in tools:
            tally.text_bytes += len(orjson.dumps(tool))
    return tally.total()


def image_tokens(width: int, height: int) -> int:
    """Anthropic's rule for one image: ``width * height / 750``, after the downscaling it applies."""
    if width <= 0 or height <= 0:
        return IMAGE_MAX_TOKENS
    area = width * height
    scale = min(
        1.0,
        IMAGE_MAX_EDGE / max(width, height),
        math.sqrt(IMAGE_MAX_TOKENS * IMAGE_PIXELS_PER_TOKEN / area),
    )
    return max(1, min(IMAGE_MAX_TOKENS, math.ceil(area * scale * scale / IMAGE_PIXELS_PER_TOKEN)))


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the start of a PNG, GIF, WebP or JPEG file, or None if not found there."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


class _Tally:
    """Text bytes and fixed tokens, summed over the request, turned into tokens once."""

    __slots__ = ("fixed", "text_bytes")

    def __init__(self) -> None:
        self.fixed = 0
        self.text_bytes = 0

    def total(self) -> int:
        return self.fixed + math.ceil(self.text_bytes / BYTES_PER_TOKEN)

    def text(self, value: Any) -> None:
        if isinstance(value, str):
            self.text_bytes += len(value) if value.isascii() else len(value.encode("utf-8", "replace"))

    def content(self, content: Any) -> None:
        """A message's (or the system prompt's, or a tool result's) content: a string or blocks."""
        if isinstance(content, str):
            self.text(content)
        elif isinstance(content, list):
            self.blocks(content)

    def blocks(self, blocks: Iterable[Any]) -> None:
        for block in blocks:
            if not isinstance(block, Mapping):
                continue
            kind = block.get("type")
            if kind == "text":
                self.text(block.get("text"))
            elif kind == "image":
                self.fixed += _image_block_tokens(block.get("source"))
            elif kind == "tool_use":
                self.fixed += BLOCK_TOKENS
                self.text(block.get("name"))
                self.text_bytes += len(orjson.dumps(block.get("input") or {}))
            elif kind == "tool_result":
                self.fixed += BLOCK_TOKENS
                self.content(block.get("content"))
            elif kind not in _UNCOUNTED_BLOCKS:
                self.text_bytes += len(orjson.dumps(block))


def _image_block_tokens(source: Any) -> int:
    if not isinstance(source, Mapping) or source.get("type") != "base64":
        return IMAGE_MAX_TOKENS
    data = source.get("data")
    if not isinstance(data, str):
        return IMAGE_MAX_TOKENS
    head = data[: _HEADER_BYTES // 3 * 4]  # whole 4-character groups: 3 bytes each
    try:
        size = image_size(base64.b64decode(head[: len(head) // 4 * 4]))
    except (binascii.Error, ValueError):
        size = None
    return IMAGE_MAX_TOKENS if size is None else image_tokens(*size)


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
        return width, height
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


_JPEG_FRAMES = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
"""The start-of-frame markers, which carry the image's size (0xC4, 0xC8 and 0xCC are not frames)."""


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG's marker segments up to its first frame header."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _JPEG_FRAMES:
            if i + 9 > len(data):
                return None
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        if length < 2:
            return None
        i += 2 + length
    return None
