"""Upstream errors: Retry-After parsing, and the client status and retry policy of each upstream status."""

from __future__ import annotations

import pytest

from hedge.providers.errors import parse_retry_after, upstream_error


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


@pytest.mark.parametrize(
    ("status", "client_status", "retryable"),
    [
        (400, 400, False),
        (413, 413, False),
        (401, 502, True),
        (429, 429, True),
        (500, 502, True),
        (503, 503, True),
        (529, 503, True),
        (504, 504, True),
        (404, 502, True),
    ],
)
def test_upstream_error_policy(status: int, client_status: int, retryable: bool) -> None:
    err = upstream_error("prov", status, {}, "boom")
    assert (err.status, err.retryable, err.upstream_status) == (client_status, retryable, status)
