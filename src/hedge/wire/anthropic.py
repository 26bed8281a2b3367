"""Anthropic Messages API vocabulary: its stop reasons and error types, as the API documents them.

A leaf shared by the Anthropic adapter (upstream), the ``/v1/messages`` face (inbound) and the
Anthropic-style mock, so the three spell the API's words the same way. Only the words live here;
each side's translation logic stays its own.
"""

from __future__ import annotations

STOP_REASONS = frozenset(
    {
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    }
)
"""Every ``stop_reason`` a message may end with."""

FINISH_BY_STOP: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "length",  # a server-tool loop paused: incomplete, to be continued, as a length cut is
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
"""OpenAI's ``finish_reason`` for each Anthropic ``stop_reason``."""

STOP_BY_FINISH: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
"""The Anthropic ``stop_reason`` that says what each OpenAI ``finish_reason`` says."""

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""The ``error.type`` Anthropic sends with each HTTP status (anything else: ``api_error``)."""
