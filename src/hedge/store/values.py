"""What every ledger column may hold: values cleaned and clamped before they are written.

PostgreSQL rejects a whole batch for one text value with U+0000 or one integer past its
column; the row builders pass every value through these first, so a hostile upstream or
client cannot stop the ledger (the batch writer's quarantine is only the last resort).
"""

from __future__ import annotations

import math

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
TEXT_LIMIT = 1000
"""Longest value kept in a short text column (names, ids); the rest is cut."""


# -- values every column takes ---------------------------------------------------------------------


def clean_text(value: object, limit: int = TEXT_LIMIT) -> str | None:
    """``value`` as text that any database takes: None stays None; U+0000 (which PostgreSQL
    rejects in text) removed, lone surrogates (which cannot be encoded) replaced, at most
    ``limit`` characters."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii():  # ASCII (the usual case) cannot hold a lone surrogate: no copy to check
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:limit] if len(text) > limit else text


def clamp_int(value: object, low: int = INT64[0], high: int = INT64[1]) -> int:
    """``value`` as an integer inside a column's range ``[low, high]``: out-of-range values are
    clamped, floats truncated (infinities clamped), anything that is not a number is 0 (inside
    the range)."""
    if type(value) is int and low <= value <= high:  # the usual case, decided in one step
        return value
    if isinstance(value, int):  # bool included
        number = int(value)
    elif isinstance(value, float):
        if math.isnan(value):
            number = 0
        elif math.isinf(value):
            number = high if value > 0 else low
        else:
            number = int(value)
    else:
        try:
            number = int(str(value))
        except ValueError:
            number = 0
    return min(max(number, low), high)


def clean_float(value: object, nullable: bool = False) -> float | None:
    """``value`` as a finite float; NaN, infinities and non-numbers become None (or 0.0 for a
    NOT NULL column): SQLite stores NaN as NULL, and no report can add up an infinity."""
    if value is None and nullable:
        return None
    if type(value) is float and math.isfinite(value):  # the usual case, decided in one step
        return value
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if math.isfinite(number):
        return number
    return None if nullable else 0.0
