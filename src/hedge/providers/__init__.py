"""Provider adapters, one module per wire format, looked up by the ``style`` in config."""

from __future__ import annotations

from hedge.config import ProviderConfig
from hedge.providers.anthropic import AnthropicAdapter
from hedge.providers.base import Adapter
from hedge.providers.gemini import GeminiAdapter
from hedge.providers.openai import OpenAIAdapter, OpenAIPlatformAdapter, openai_platform

ADAPTERS: dict[str, type[Adapter]] = {
    OpenAIAdapter.style: OpenAIAdapter,
    GeminiAdapter.style: GeminiAdapter,
    AnthropicAdapter.style: AnthropicAdapter,
}


def make_adapter(name: str, config: ProviderConfig) -> Adapter:
    try:
        cls = ADAPTERS[config.style]
    except KeyError:
        raise ValueError(f"provider '{name}': style '{config.style}' is not implemented yet") from None
    if cls is OpenAIAdapter and openai_platform(config.base_url):
        cls = OpenAIPlatformAdapter
    return cls(name, config)
