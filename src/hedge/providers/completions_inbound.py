"""Inbound legacy text completions: ``POST /v1/completions`` served by chat models, on any provider.

OpenAI's legacy completions API takes a ``prompt`` and answers ``text_completion`` objects. Hedge
serves it by translation on both sides of the one chat pipeline, so routing, failover, cost and
the ledger work unchanged and every wire style (OpenAI, Anthropic, Gemini) can answer:

- :func:`to_chat` turns a completions body into an OpenAI chat body (and a :class:`Legacy` that
  remembers what the way back needs: the prompt for ``echo``, whether logprobs and usage were
  asked for);
- :func:`to_text_completion` turns the chat completion into a ``text_completion`` object;
- :class:`CompletionEvents` turns the chat stream's chunks into the legacy stream's chunks.

Nothing is silently changed in meaning: what chat models cannot honour is refused with a 400
naming the parameter (``suffix``, ``best_of`` above 1, several prompts, token-id prompts, ``echo``
with ``logprobs``), and so is any parameter the legacy API does not have. The body extension
``hedge`` (routing hints) is accepted as on every face.
"""

from __future__ import annotations

import codecs
import time
from dataclasses import dataclass, field
from typing import Any

from hedge.errors import InvalidRequest, invalid_type
from hedge.wire.sse import DONE, frame

LEGACY_DEFAULT_MAX_TOKENS = 16
"""The legacy API's own default for ``max_tokens``, applied when the client sends none.

A completions client that omits ``max_tokens`` was promised 16 tokens by the API it speaks, and
may rely on it (short completions, bounded cost); a chat upstream left to its own default would
write up to the model's limit, at up to the model's price, and the budget reservation would be
made for that. So the face keeps the legacy contract rather than the chat one.
"""

MAX_LOGPROBS = 5
"""The legacy API's limit for ``logprobs``."""

_PASSED = (
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "user",
    "logit_bias",
    "n",
    "stop",
    "stream",
    "stream_options",
    "hedge",
)
"""Parameters with the same name and meaning in chat completions: passed as they are (the chat
validation then checks their types and ranges, naming the same parameter)."""

KNOWN = frozenset({"model", "prompt", "max_tokens", "echo", "suffix", "best_of", "logprobs", *_PASSED})
"""Every parameter of a completions request (the SDK's ``CompletionCreateParams``), plus ``hedge``."""

_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter"}
"""Chat finish reasons the legacy API has; any other (``tool_calls`` ...) reads as ``stop``."""


@dataclass(frozen=True, slots=True)
class Legacy:
    """What rendering the answer needs from the completions request."""

    prompt: str
    echo: bool = False
    logprobs: int | None = None
    """The legacy ``logprobs`` (alternatives per token); ``None``: not asked for."""
    include_usage: bool = False
    """``stream_options.include_usage`` on a streamed request: end with a usage chunk."""


# -- the request ---------------------------------------------------------------------------------------


def _type_error(param: str, expected: str, value: Any) -> InvalidRequest:
    return invalid_type(param, expected, value)


def _refused(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_parameter")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _prompt(value: Any) -> str:
    """The one prompt, as a string; a 400 naming ``prompt`` for what a chat model cannot take."""
    if isinstance(value, str):
        return value
    if value is None:
        raise InvalidRequest(
            "Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter"
        )
    if isinstance(value, list):
        if not value:
            raise InvalidRequest(
                "Invalid 'prompt': empty array. Expected a string or an array of one string.",
                param="prompt",
                code="empty_array",
            )
        if all(isinstance(p, str) for p in value):
            if len(value) == 1:
                return str(value[0])
            raise _refused(
                "prompt",
                f"'prompt' holds {len(value)} prompts; this gateway serves completions with chat models, "
                "one prompt per request. Send one request per prompt.",
            )
        if all(_is_int(t) for t in value) or all(
            isinstance(p, list) and all(_is_int(t) for t in p) for p in value
        ):
            raise _refused(
                "prompt",
                "'prompt' is given as token ids; this gateway serves completions with chat models of "
                "many providers, whose tokenizers differ, so it cannot decode them. Send the prompt as text.",
            )
    raise _type_error("prompt", "a string or an array of one string", value)


def to_chat(body: dict[str, Any]) -> tuple[dict[str, Any], Legacy]:
    """Translate a completions request into an OpenAI chat body, and what the answer's rendering needs.

    The prompt becomes the one user message of the conversation. Chat models take conversations,
    not raw text to continue: every chat API wants at least one user turn (Anthropic and Gemini
    refuse a conversation without one), and a system or assistant message alone is no prompt. A
    single user message is also the one translation that adds no words of Hedge's own to what the
    model reads. The answer is then the model's reply to the prompt, which for an instruction
    ("Write a haiku about ...") is what the client wanted, and for a text to continue is the
    model's continuation as it chooses to write it.
    """
    unknown = [k for k in body if k not in KNOWN]
    if unknown:
        names = ", ".join(unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise InvalidRequest(
            f"Unrecognized request argument{plural} supplied: {names}",
            param=unknown[0],
            code="unknown_parameter",
        )
    prompt = _prompt(body.get("prompt"))

    suffix = body.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise _type_error("suffix", "a string", suffix)
    if suffix:
        raise _refused(
            "suffix",
            "'suffix' (text to insert before) is not supported: chat models cannot fill in the middle "
            "of a text. Remove it.",
        )

    echo = body.get("echo")
    if echo is not None and not isinstance(echo, bool):
        raise _type_error("echo", "a boolean", echo)

    n = body.get("n")
    best_of = body.get("best_of")
    if best_of is not None:
        if not _is_int(best_of):
            raise _type_error("best_of", "an integer", best_of)
        if best_of > 1:
            raise _refused(
                "best_of",
                f"'best_of' {best_of} is not supported: choosing the best of several completions needs "
                "their log probabilities, which chat models do not all give. Remove it, or use 'n' for "
                "several completions.",
            )
        if _is_int(n) and n > best_of:
            raise InvalidRequest(
                f"Invalid value for 'best_of': {best_of}; it must be at least 'n' ({n}).",
                param="best_of",
                code="invalid_value",
            )

    logprobs = body.get("logprobs")
    if logprobs is not None:
        if not _is_int(logprobs):
            raise _type_error("logprobs", "an integer", logprobs)
        if not 0 <= logprobs <= MAX_LOGPROBS:
            raise InvalidRequest(
                f"Invalid value for 'logprobs': {logprobs}; it must be between 0 and {MAX_LOGPROBS}.",
                param="logprobs",
                code="invalid_value",
            )
        if echo:
            raise _refused(
                "logprobs",
                "'logprobs' with 'echo' is not supported: chat models give log probabilities of what "
                "they write, not of the prompt. Remove one of them.",
            )

    max_tokens = body.get("max_tokens")
    chat: dict[str, Any] = {}
    if "model" in body:
        chat["model"] = body["model"]
    chat["messages"] = [{"role": "user", "content": prompt}]
    chat["max_tokens"] = LEGACY_DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    for name in _PASSED:
        value = body.get(name)
        if value is not None:
            chat[name] = value
    if logprobs is not None:
        chat["logprobs"] = True
        chat["top_logprobs"] = logprobs

    options = body.get("stream_options")
    include_usage = (
        body.get("stream") is True and isinstance(options, dict) and options.get("include_usage") is True
    )
    return chat, Legacy(prompt, bool(echo), logprobs, include_usage)


# -- logprobs ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Offsets:
    """Character offsets of tokens in a choice's text, from the tokens' UTF-8 bytes.

    A chat token may be part of a character (its ``bytes`` then end mid-sequence); counting
    decoded characters rather than the length of the token's display string keeps every later
    offset right. A token that starts inside a character gets that character's offset.
    """

    at: int = 0
    _decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )

    def advance(self, token: dict[str, Any]) -> int:
        start = self.at
        raw = token.get("bytes")
        if isinstance(raw, list) and all(_is_int(b) and 0 <= b < 256 for b in raw):
            data = bytes(raw)
        else:
            data = str(token.get("token") or "").encode()
        self.at += len(self._decoder.decode(data))
        return start


def legacy_logprobs(chat_logprobs: Any, offsets: _Offsets) -> dict[str, Any] | None:
    """A chat choice's ``logprobs`` (``{"content": [{token, logprob, bytes, top_logprobs}]}``) in the
    legacy shape: ``tokens``, ``token_logprobs``, ``top_logprobs`` and ``text_offset``, one entry per
    token; ``None`` when the upstream gave none.

    ``top_logprobs[i]`` maps each alternative the upstream gave (``top_logprobs`` = the legacy
    ``logprobs``) to its log probability, plus the sampled token, which the legacy API always
    includes ("up to ``logprobs``+1 elements"). ``text_offset[i]`` is the character offset of the
    token in the choice's ``text``.
    """
    if not isinstance(chat_logprobs, dict):
        return None
    content = chat_logprobs.get("content")
    if not isinstance(content, list):
        return None
    tokens: list[str] = []
    token_logprobs: list[float | None] = []
    top: list[dict[str, float]] = []
    text_offset: list[int] = []
    for entry in content:
        if not isinstance(entry, dict):
            continue
        token = str(entry.get("token") or "")
        logprob = entry.get("logprob")
        tokens.append(token)
        token_logprobs.append(logprob if isinstance(logprob, int | float) else None)
        alternatives = {
            str(alt.get("token") or ""): alt["logprob"]
            for alt in entry.get("top_logprobs") or ()
            if isinstance(alt, dict) and isinstance(alt.get("logprob"), int | float)
        }
        if token not in alternatives and isinstance(logprob, int | float):
            alternatives[token] = logprob
        top.append(alternatives)
        text_offset.append(offsets.advance(entry))
    return {
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top,
        "text_offset": text_offset,
    }


# -- the answer ----------------------------------------------------------------------------------------


def _id(chat_id: Any) -> str:
    return "cmpl-" + str(chat_id or "").removeprefix("chatcmpl-")


def _text(message: dict[str, Any]) -> str:
    """The reply's text; a refusal (chat models may refuse in a field of its own) is the reply's text."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    refusal = message.get("refusal")
    return refusal if isinstance(refusal, str) else ""


def to_text_completion(completion: dict[str, Any], legacy: Legacy) -> dict[str, Any]:
    """Translate an OpenAI chat completion into a legacy ``text_completion`` object."""
    choices = []
    for choice in sorted(completion.get("choices") or (), key=lambda c: int(c.get("index") or 0)):
        text = _text(choice.get("message") or {})
        logprobs = None
        if legacy.logprobs is not None:
            logprobs = legacy_logprobs(choice.get("logprobs"), _Offsets())
        choices.append(
            {
                "text": legacy.prompt + text if legacy.echo else text,
                "index": int(choice.get("index") or 0),
                "logprobs": logprobs,
                "finish_reason": _FINISH.get(choice.get("finish_reason") or "stop", "stop"),
            }
        )
    out: dict[str, Any] = {
        "id": _id(completion.get("id")),
        "object": "text_completion",
        "created": completion.get("created") or int(time.time()),
        "model": completion.get("model") or "",
        "choices": choices,
    }
    if completion.get("system_fingerprint"):
        out["system_fingerprint"] = completion["system_fingerprint"]
    if completion.get("usage") is not None:
        out["usage"] = completion["usage"]
    return out


class CompletionEvents:
    """Turns OpenAI chat stream chunks into legacy completion stream chunks (``text_completion``
    objects whose choices carry ``text`` deltas), then the usage chunk if asked for and ``[DONE]``."""

    def __init__(self, legacy: Legacy) -> None:
        self.legacy = legacy
        self._id: str | None = None
        self._created = 0
        self._model = ""
        self._fingerprint: str | None = None
        self._echoed: set[int] = set()
        self._offsets: dict[int, _Offsets] = {}

    def _base(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self._id or _id(None),
            "object": "text_completion",
            "created": self._created or int(time.time()),
            "model": self._model,
        }
        if self._fingerprint:
            out["system_fingerprint"] = self._fingerprint
        return out

    def chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        if self._id is None:
            self._id = _id(chunk.get("id"))
            self._created = chunk.get("created") or int(time.time())
        self._model = chunk.get("model") or self._model
        self._fingerprint = chunk.get("system_fingerprint") or self._fingerprint
        legacy = self.legacy
        choices = []
        for choice in chunk.get("choices") or ():
            index = int(choice.get("index") or 0)
            delta = choice.get("delta") or {}
            text = delta.get("content") or delta.get("refusal") or ""
            if legacy.echo and index not in self._echoed:
                self._echoed.add(index)
                text = legacy.prompt + text
            logprobs = None
            if legacy.logprobs is not None:
                offsets = self._offsets.setdefault(index, _Offsets())
                logprobs = legacy_logprobs(choice.get("logprobs"), offsets)
            finish = choice.get("finish_reason")
            if not text and finish is None and not (logprobs and logprobs["tokens"]):
                continue  # the role announcement, a tool call's pieces ...: nothing the legacy API carries
            choices.append(
                {
                    "text": text,
                    "index": index,
                    "logprobs": logprobs,
                    "finish_reason": None if finish is None else _FINISH.get(finish, "stop"),
                }
            )
        if not choices:
            return []
        out = {**self._base(), "choices": choices}
        if legacy.include_usage:
            out["usage"] = None  # as OpenAI does: every chunk but the last has usage, null
        return [frame(out)]

    def finish(self, usage: dict[str, Any] | None) -> list[bytes]:
        """The end of a stream that ended well: the usage chunk (when asked for), then ``[DONE]``."""
        out = []
        if self.legacy.include_usage:
            out.append(frame({**self._base(), "choices": [], "usage": usage}))
        out.append(DONE)
        return out
