"""Each adapter reports the token classes apart (cache reads, cache writes, reasoning) and the tier
the upstream served in, from the providers' documented usage objects."""

from __future__ import annotations

from typing import Any

import pytest

from hedge.providers.anthropic import usage_from_anthropic
from hedge.providers.base import Usage
from hedge.providers.gemini import usage_of as gemini_usage
from hedge.providers.openai_responses import usage_of as responses_usage


@pytest.mark.parametrize(
    ("read", "data", "expected"),
    [
        # https://platform.openai.com/docs/guides/reasoning (the usage of a reasoning model's answer)
        (
            lambda d: Usage.from_openai(d, "default"),
            {
                "prompt_tokens": 9,
                "completion_tokens": 1186,
                "total_tokens": 1195,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 1024,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            Usage(9, 1186, 0, 0, 1024, "default"),
        ),
        # https://docs.claude.com/en/docs/build-with-claude/prompt-caching (a first, cache-writing call)
        (
            usage_from_anthropic,
            {
                "cache_creation_input_tokens": 188086,
                "cache_read_input_tokens": 0,
                "input_tokens": 21,
                "output_tokens": 393,
                "service_tier": "standard",
            },
            Usage(188107, 393, 0, 188086, 0, "standard"),
        ),
        (
            usage_from_anthropic,
            {
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 188086,
                "input_tokens": 21,
                "output_tokens": 393,
            },
            Usage(188107, 393, 188086, 0, 0, None),
        ),
        # https://ai.google.dev/api/generate-content#UsageMetadata (thinking tokens billed as output)
        (
            gemini_usage,
            {
                "promptTokenCount": 10,
                "candidatesTokenCount": 20,
                "thoughtsTokenCount": 30,
                "cachedContentTokenCount": 4,
                "totalTokenCount": 60,
            },
            Usage(10, 50, 4, 0, 30, None),
        ),
        # https://platform.openai.com/docs/api-reference/responses/object (usage, service_tier)
        (
            responses_usage,
            {
                "service_tier": "flex",
                "usage": {
                    "input_tokens": 328,
                    "input_tokens_details": {"cached_tokens": 128},
                    "output_tokens": 52,
                    "output_tokens_details": {"reasoning_tokens": 40},
                    "total_tokens": 380,
                },
            },
            Usage(328, 52, 128, 0, 40, "flex"),
        ),
        # a tier that is not a short plain name is not kept (it is stored and shown)
        (lambda d: Usage.from_openai(d, "x" * 80), {"prompt_tokens": 1}, Usage(1)),
        (lambda d: Usage.from_openai(d, "flex; drop"), {"prompt_tokens": 1}, Usage(1)),
    ],
)
def test_token_classes_and_tier(read: Any, data: dict[str, Any], expected: Usage) -> None:
    assert read(data) == expected
