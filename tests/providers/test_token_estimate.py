"""The local token estimate behind ``/v1/messages/count_tokens`` when no upstream counts."""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import pytest

from hedge.providers.token_estimate import (
    BLOCK_TOKENS,
    IMAGE_MAX_TOKENS,
    REQUEST_TOKENS,
    TURN_TOKENS,
    estimate_input_tokens,
    image_size,
    image_tokens,
)

BASE = REQUEST_TOKENS + TURN_TOKENS
"""A request of one message with no text."""


def png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + b"\0\0\0\0"


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\0\0\0"


def jpeg(width: int, height: int, metadata: int = 100) -> bytes:
    app1 = b"\xff\xe1" + struct.pack(">H", metadata + 2) + b"x" * metadata
    dht = b"\xff\xc4" + struct.pack(">H", 5) + b"\0\0\0"  # 0xC4 is no frame: its bytes are not a size
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app1 + dht + sof + b"\xff\xda"


def webp(kind: bytes, width: int, height: int) -> bytes:
    if kind == b"VP8X":
        payload = b"\0" * 4 + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    elif kind == b"VP8L":
        bits = (width - 1) | (height - 1) << 14
        payload = b"\x2f" + bits.to_bytes(4, "little")
    else:
        payload = b"\0\0\0" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height)
    return b"RIFF\0\0\0\0WEBP" + kind + struct.pack("<I", len(payload)) + payload


def image(data: bytes, media_type: str = "image/png") -> dict[str, Any]:
    source = {"type": "base64", "media_type": media_type, "data": base64.b64encode(data).decode()}
    return {"type": "image", "source": source}


def user(*blocks: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": list(blocks)}]}


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (png(640, 480), (640, 480)),
        (gif(31, 7), (31, 7)),
        (jpeg(1024, 768), (1024, 768)),
        (webp(b"VP8X", 3000, 2000), (3000, 2000)),
        (webp(b"VP8L", 400, 300), (400, 300)),
        (webp(b"VP8 ", 120, 90), (120, 90)),
        (b"not an image", None),
        (b"\xff\xd8\xff\xe1\x00", None),  # a JPEG cut before its frame
    ],
)
def test_image_size_from_headers(data: bytes, size: tuple[int, int] | None) -> None:
    assert image_size(data) == size


def test_image_tokens_follow_anthropics_published_examples() -> None:
    # Anthropic's vision page: 200x200 ~54 tokens, 1000x1000 ~1334, 1092x1092 ~1590.
    assert image_tokens(200, 200) == 54
    assert image_tokens(1000, 1000) == 1334
    assert image_tokens(1092, 1092) == 1590
    # Larger images are scaled down first: to 1568 px on the long edge and about 1,600 tokens.
    assert image_tokens(1568, 100) == 210  # the long edge at its limit: not scaled
    assert image_tokens(3136, 200) == 210  # twice that: halved on both sides
    assert image_tokens(4000, 3000) == IMAGE_MAX_TOKENS
    assert image_tokens(0, 10) == IMAGE_MAX_TOKENS


def test_text_is_counted_by_utf8_bytes() -> None:
    assert estimate_input_tokens(user({"type": "text", "text": "a" * 350})) == BASE + 100
    assert (
        estimate_input_tokens({"model": "m", "messages": [{"role": "user", "content": "a" * 350}]})
        == BASE + 100
    )
    # A character of three UTF-8 bytes weighs three times an ASCII one.
    assert estimate_input_tokens(user({"type": "text", "text": "漢" * 350})) == BASE + 300


def test_framing_per_message_and_system() -> None:
    one = estimate_input_tokens({"model": "m", "messages": [{"role": "user", "content": "x" * 7}]})
    assert one == REQUEST_TOKENS + TURN_TOKENS + 2
    turns = [{"role": r, "content": "x" * 7} for r in ("user", "assistant", "user")]
    assert estimate_input_tokens({"model": "m", "messages": turns}) == REQUEST_TOKENS + 3 * TURN_TOKENS + 6
    system = [{"type": "text", "text": "x" * 7}]
    with_system = estimate_input_tokens({"model": "m", "system": system, "messages": turns[:1]})
    assert with_system == REQUEST_TOKENS + 2 * TURN_TOKENS + 4


def test_images_count_by_their_size_and_unknown_ones_at_the_most() -> None:
    assert estimate_input_tokens(user(image(png(1000, 1000)))) == BASE + 1334
    assert estimate_input_tokens(user(image(jpeg(200, 200, metadata=60_000), "image/jpeg"))) == BASE + 54
    url = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
    assert estimate_input_tokens(user(url)) == BASE + IMAGE_MAX_TOKENS
    assert estimate_input_tokens(user(image(b"garbage"))) == BASE + IMAGE_MAX_TOKENS
    broken = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "!!!"}}
    assert estimate_input_tokens(user(broken)) == BASE + IMAGE_MAX_TOKENS


def test_tools_add_their_definitions_and_the_tool_use_system_prompt() -> None:
    tool = {"name": "get_weather", "input_schema": {"type": "object"}}
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    plain = estimate_input_tokens(body)
    assert plain == BASE + math.ceil(len("hi") / 3.5)
    definition = len(b'{"name":"get_weather","input_schema":{"type":"object"}}')
    auto = estimate_input_tokens({**body, "tools": [tool]})
    assert auto == BASE + 346 + math.ceil((len("hi") + definition) / 3.5)
    forced = estimate_input_tokens(
        {**body, "tools": [tool], "tool_choice": {"type": "tool", "name": "get_weather"}}
    )
    assert auto - forced == 346 - 313
    assert estimate_input_tokens({**body, "tools": []}) == plain


def test_tool_turns_and_uncounted_thinking() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "x" * 7000, "signature": "s"},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "sunny"}],
                    },
                ],
            },
        ],
    }
    text = len("weather?") + len("get_weather") + len('{"city":"Paris"}') + len("sunny")
    expected = REQUEST_TOKENS + 3 * TURN_TOKENS + 2 * BLOCK_TOKENS + -(-text * 2 // 7)
    assert estimate_input_tokens(body) == expected


def test_more_text_never_counts_less() -> None:
    counts = [estimate_input_tokens(user({"type": "text", "text": "word " * n})) for n in range(0, 400, 7)]
    assert counts == sorted(counts)
    assert counts[-1] > counts[0]
