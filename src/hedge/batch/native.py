"""Hand batch lines to a provider's own batch API: submit, poll, collect, cancel.

A deployment whose provider declares ``batch: true`` can take a whole set of lines at the
provider's batch price (about half the interactive one). :func:`native_batches` returns the
client for its wire format (OpenAI, Anthropic, Gemini), or None when the provider does not
declare one (so the scheduler runs the lines itself). Each line is an OpenAI chat-completions
body with the upstream ``model`` already set; it goes up translated by the provider's ordinary
chat adapter and comes back as the same adapter translates an answer, so a batch line means
exactly what the interactive request means (and is booked on the usage the adapter read).

The envelopes are pure translations in :mod:`hedge.providers.batch_openai`,
:mod:`hedge.providers.batch_anthropic` and :mod:`hedge.providers.batch_gemini`; HTTP goes
through :class:`~hedge.transport.Transport`, whose errors are the adapter's
(:class:`~hedge.errors.UpstreamError`). A results file is read whole, bounded by the provider's
``max_response_bytes``: size native batches to fit it.

An upstream id is all that needs to survive a restart: :meth:`NativeBatches.poll` and
:meth:`NativeBatches.results` need nothing else. Gemini batch mode takes one model per batch and
inlined requests only (Google bounds those at 20 MB a batch).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import quote

from hedge.config import ProviderConfig
from hedge.errors import InvalidRequest, UpstreamError
from hedge.providers import batch_anthropic, batch_gemini, batch_openai, make_adapter
from hedge.providers.anthropic import ANTHROPIC_VERSION
from hedge.providers.base import Adapter, Translated, UpstreamRequest
from hedge.providers.batch_base import CUSTOM_ID, NativeLine, NativeProgress, NativeResult
from hedge.providers.gemini import GeminiAdapter
from hedge.transport import Transport

__all__ = [
    "BatchNotEnded",
    "NativeBatches",
    "NativeLine",
    "NativeProgress",
    "NativeResult",
    "native_batches",
]


class BatchNotEnded(Exception):
    """Results were asked for before the native batch ended."""


class NativeBatches(Protocol):
    """One provider's batch API, in the gateway's terms."""

    async def submit(self, lines: Sequence[NativeLine]) -> str:
        """Hand ``lines`` to the provider as one batch; its id there.

        Every line is translated before anything is sent: a line the adapter refuses raises its
        :class:`~hedge.errors.InvalidRequest` (naming the ``custom_id``) and nothing is submitted.
        """
        ...

    async def poll(self, upstream_id: str) -> NativeProgress: ...

    async def results(self, upstream_id: str) -> list[NativeResult]:
        """Every line's outcome, once the batch has ended (:class:`BatchNotEnded` before); a batch
        refused as a whole (``failed``) has none. A line missing from the results was never run
        (Gemini lists only the requests a cancelled or expired batch ran; the others list all)."""
        ...

    async def cancel(self, upstream_id: str) -> None:
        """Ask the provider to stop; lines it already ran keep their results."""
        ...


def native_batches(
    transport: Transport, provider_name: str, provider_config: ProviderConfig
) -> NativeBatches | None:
    """The batch API of a provider that declares ``batch: true``; None if it does not or its wire
    format has none (every style Hedge speaks has one)."""
    if not provider_config.batch:
        return None
    if provider_config.style == "openai":
        return OpenAIBatches(transport, provider_name, provider_config)
    if provider_config.style == "anthropic":
        return AnthropicBatches(transport, provider_name, provider_config)
    return GeminiBatches(transport, provider_name, provider_config)


class _Native:
    """What both batch APIs share: the adapter, the credentials and one HTTP call."""

    def __init__(
        self, transport: Transport, name: str, config: ProviderConfig, headers: dict[str, str]
    ) -> None:
        self.transport = transport
        self.name = name
        self.config = config
        self.adapter: Adapter = make_adapter(name, config)
        self.base_url = config.base_url
        self.headers = {**headers, **config.headers}

    async def call(
        self, method: str, url: str, body: bytes = b"", content_type: str = "application/json"
    ) -> bytes:
        headers = {**self.headers, "content-type": content_type} if method != "GET" else self.headers
        request = UpstreamRequest(url, body, headers)
        reply = await self.transport.send(self.name, request, self.config.timeout, self.adapter.error, method)
        return await reply.read()

    def translate(self, lines: Sequence[NativeLine]) -> list[tuple[str, bytes]]:
        """Each line's upstream request body, as the chat adapter writes it."""
        seen: set[str] = set()
        out: list[tuple[str, bytes]] = []
        for line in lines:
            if not CUSTOM_ID.fullmatch(line.custom_id):
                raise InvalidRequest(
                    f"batch line id {line.custom_id!r} must match ^[a-zA-Z0-9_-]{{1,64}}$", param="custom_id"
                )
            if line.custom_id in seen:
                raise InvalidRequest(f"batch line id {line.custom_id!r} is used twice", param="custom_id")
            seen.add(line.custom_id)
            model = line.body.get("model")
            if not isinstance(model, str) or not model:
                raise InvalidRequest(f"batch line {line.custom_id}: 'model' is required", param="model")
            try:
                request = self.adapter.chat_request(line.body, model, stream=False, want_usage=False)
            except InvalidRequest as exc:
                message = f"batch line {line.custom_id}: {exc.message}"
                raise InvalidRequest(message, param=exc.param, code=exc.code) from None
            out.append((line.custom_id, request.body))
        if not out:
            raise InvalidRequest("a native batch needs at least one line")
        return out

    def answer(self, raw: bytes) -> Translated:
        """A successful answer as the chat adapter translates it (its request is not needed: the
        batch adapters read nothing from it)."""
        return self.adapter.chat_response(raw, UpstreamRequest(self.base_url, b""))


class OpenAIBatches(_Native):
    """OpenAI's Batch API: the lines go up as a JSONL file, results come back as two files."""

    def __init__(self, transport: Transport, name: str, config: ProviderConfig) -> None:
        auth = {"authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        super().__init__(transport, name, config, {"accept": "application/json", **auth})

    async def submit(self, lines: Sequence[NativeLine]) -> str:
        content = batch_openai.input_file(self.translate(lines))
        boundary = "hedge-" + secrets.token_hex(16)
        while boundary.encode() in content:  # astronomically unlikely, but then the file would be cut
            boundary = "hedge-" + secrets.token_hex(16)
        form, content_type = batch_openai.multipart(content, boundary)
        file_id = batch_openai.file_id(
            await self.call("POST", f"{self.base_url}/files", form, content_type), self.name
        )
        try:
            raw = await self.call("POST", f"{self.base_url}/batches", batch_openai.create_body(file_id))
        except UpstreamError:
            await self._forget(file_id)
            raise
        return batch_openai.batch_id(raw, self.name)

    async def _forget(self, file_id: str) -> None:
        """Delete an uploaded input file no batch will read (best effort: it expires anyway)."""
        with contextlib.suppress(UpstreamError):
            await self.call("DELETE", f"{self.base_url}/files/{quote(file_id, safe='')}")

    async def _batch(self, upstream_id: str) -> bytes:
        return await self.call("GET", f"{self.base_url}/batches/{quote(upstream_id, safe='')}")

    async def poll(self, upstream_id: str) -> NativeProgress:
        return batch_openai.progress(await self._batch(upstream_id), self.name)

    async def results(self, upstream_id: str) -> list[NativeResult]:
        raw = await self._batch(upstream_id)
        if batch_openai.progress(raw, self.name).status == "running":
            raise BatchNotEnded(f"batch {upstream_id} on provider '{self.name}' has not ended")
        out: list[NativeResult] = []
        for file_id in batch_openai.result_files(raw, self.name):
            content = await self.call("GET", f"{self.base_url}/files/{quote(file_id, safe='')}/content")
            out.extend(batch_openai.results(content, self.name, self.answer, self.adapter.error))
        return out

    async def cancel(self, upstream_id: str) -> None:
        await self.call("POST", f"{self.base_url}/batches/{quote(upstream_id, safe='')}/cancel")


class AnthropicBatches(_Native):
    """Anthropic's Message Batches: the lines go up in one body, results come from ``results_url``."""

    def __init__(self, transport: Transport, name: str, config: ProviderConfig) -> None:
        auth = {"x-api-key": config.api_key} if config.api_key else {}
        super().__init__(transport, name, config, {"anthropic-version": ANTHROPIC_VERSION, **auth})
        self.batches_url = f"{self.base_url}/v1/messages/batches"

    async def submit(self, lines: Sequence[NativeLine]) -> str:
        raw = await self.call("POST", self.batches_url, batch_anthropic.create_body(self.translate(lines)))
        return batch_anthropic.batch_id(raw, self.name)

    async def _batch(self, upstream_id: str) -> bytes:
        return await self.call("GET", f"{self.batches_url}/{quote(upstream_id, safe='')}")

    async def poll(self, upstream_id: str) -> NativeProgress:
        return batch_anthropic.progress(await self._batch(upstream_id), self.name)

    async def results(self, upstream_id: str) -> list[NativeResult]:
        raw = await self._batch(upstream_id)
        url = batch_anthropic.results_url(raw, self.name)
        if url is None:
            raise BatchNotEnded(f"message batch {upstream_id} on provider '{self.name}' has not ended")
        if not url.startswith(self.base_url + "/"):
            # The API key goes with the request: never to a host the provider's config does not name
            # (a proxy in front of the API may pass the API's own URL on). The documented path under
            # base_url is asked instead.
            url = f"{self.batches_url}/{quote(upstream_id, safe='')}/results"
        content = await self.call("GET", url)
        return batch_anthropic.results(content, self.name, self.answer, self.adapter.error)

    async def cancel(self, upstream_id: str) -> None:
        await self.call("POST", f"{self.batches_url}/{quote(upstream_id, safe='')}/cancel")


class GeminiBatches(_Native):
    """Gemini batch mode: the requests go up inlined, their responses come back in the operation."""

    def __init__(self, transport: Transport, name: str, config: ProviderConfig) -> None:
        auth = {"x-goog-api-key": config.api_key} if config.api_key else {}
        super().__init__(transport, name, config, auth)
        self.gemini = GeminiAdapter(name, config)
        self.adapter = self.gemini

    async def submit(self, lines: Sequence[NativeLine]) -> str:
        models = {line.body.get("model") for line in lines}
        if len(models) > 1:
            raise InvalidRequest("a Gemini batch takes one model: split the lines by model", param="model")
        translated = self.translate(lines)
        model = str(lines[0].body["model"])
        display = f"hedge-{lines[0].custom_id}-{len(lines)}"
        body = batch_gemini.create_body(translated, display)
        raw = await self.call("POST", self.gemini.url(model, "batchGenerateContent"), body)
        return batch_gemini.batch_name(raw, self.name)

    def _url(self, upstream_id: str) -> str:
        if not upstream_id.startswith("batches/"):
            raise InvalidRequest(f"not a Gemini batch name: {upstream_id!r}", param="upstream_id")
        return f"{self.gemini.root}/{quote(upstream_id, safe='/')}"

    async def poll(self, upstream_id: str) -> NativeProgress:
        return batch_gemini.progress(await self.call("GET", self._url(upstream_id)), self.name)

    async def results(self, upstream_id: str) -> list[NativeResult]:
        raw = await self.call("GET", self._url(upstream_id))
        if batch_gemini.progress(raw, self.name).status == "running":
            raise BatchNotEnded(f"batch {upstream_id} on provider '{self.name}' has not ended")
        return batch_gemini.results(raw, self.name, self.answer, self.adapter.error)

    async def cancel(self, upstream_id: str) -> None:
        await self.call("POST", f"{self._url(upstream_id)}:cancel")
