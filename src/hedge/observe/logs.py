"""Logging: one access line per request, JSON or text formatting, and secret redaction.

The access log (logger ``hedge.access``, level INFO) is built from the request
record, never from the HTTP request: no headers, no bodies, no keys. Error
messages are passed through :func:`redact` first. When the logger is disabled
(``--log-level warning``) the sink returns before doing any work.

``hedge serve --log-format json`` formats *every* line as one JSON object
(uvicorn's and ``hedge.breaker``'s too); the default text format is for people.
Both formatters redact anything that looks like a key, plus the configured
secrets registered with :func:`register_secrets`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import orjson

from hedge.record import RequestRecord
from hedge.redact import MASK, config_secrets, redact, register_secrets

__all__ = ["MASK", "config_secrets", "redact", "register_secrets"]

ACCESS_LOGGER = "hedge.access"
access_log = logging.getLogger(ACCESS_LOGGER)

LogFormat = Literal["json", "text"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# -- the access log ---------------------------------------------------------------------------------


def access_fields(rec: RequestRecord) -> dict[str, Any]:
    """What an access line says about a request: everything in the record but bodies and secrets."""
    return {
        "request_id": rec.request_id,
        "endpoint": rec.endpoint,
        "alias": rec.alias or None,
        "provider": rec.provider,
        "model": rec.model,
        "status": rec.status,
        "stream": rec.stream,
        "prompt_tokens": rec.prompt_tokens,
        "completion_tokens": rec.completion_tokens,
        "cached_tokens": rec.cached_tokens,
        "cost_usd": round(rec.cost_usd, 10),
        "baseline_cost_usd": None if rec.baseline_cost_usd is None else round(rec.baseline_cost_usd, 10),
        "latency_ms": round(rec.latency_ms, 2),
        "ttft_ms": None if rec.ttft_ms is None else round(rec.ttft_ms, 2),
        "attempts": rec.attempts,
        "route": [str(step) for step in rec.route],
        "error": None if rec.error is None else redact(rec.error),
        "dropped_params": rec.dropped_params,
        "key_id": rec.key_id,
        "team": rec.team,
        "tags": sorted(rec.tags),
        "cache_hit": rec.cache_hit,
    }


class _TextLine:
    """The human form of an access line, built only if a text formatter emits it."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        f = self.fields
        served = f"{f['provider']}/{f['model']}" if f["provider"] else "-"
        parts = [
            f["request_id"],
            f["endpoint"],
            f["alias"] or "-",
            "->",
            served,
            str(f["status"]),
            f"{f['latency_ms']:.0f}ms",
        ]
        if f["ttft_ms"] is not None:
            parts.append(f"ttft={f['ttft_ms']:.0f}ms")
        if f["stream"]:
            parts.append("stream")
        parts.append(f"tokens={f['prompt_tokens']}+{f['completion_tokens']}")
        parts.append(f"cost=${f['cost_usd']:.8f}")
        parts.append(f"attempts={f['attempts']}")
        if f["cache_hit"]:
            parts.append("cache_hit")
        if f["key_id"]:
            parts.append(f"key={f['key_id']}")
        if f["team"]:
            parts.append(f"team={f['team']}")
        if len(f["route"]) > 1:
            parts.append("route=" + ",".join(f["route"]))
        if f["error"]:
            parts.append(f"error={f['error']!r}")
        return " ".join(parts)


class AccessLog:
    """Sink writing one ``hedge.access`` line per request record."""

    def __init__(self, logger: logging.Logger = access_log) -> None:
        self.logger = logger

    def __call__(self, rec: RequestRecord) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        fields = access_fields(rec)
        self.logger.info("%s", _TextLine(fields), extra={"access": fields})


# -- formatters ----------------------------------------------------------------------------------


def _iso(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``; access lines add the record."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            out["msg"] = "request"
            out.update(access)
        else:
            out["msg"] = redact(record.getMessage())
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            out["stack"] = redact(self.formatStack(record.stack_info))
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """The usual ``time level logger: message`` line, with secrets masked."""

    def __init__(self, fmt: str = TEXT_FORMAT, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def log_config(fmt: LogFormat = "text", level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` (uvicorn's ``log_config``) sending every logger through one formatter.

    uvicorn applies it in each worker process too, so ``--workers N`` logs the same way.
    """
    formatter = "hedge.observe.logs.JsonFormatter" if fmt == "json" else "hedge.observe.logs.TextFormatter"
    lvl = level.upper()

    def passthrough() -> dict[str, Any]:
        return {"handlers": [], "propagate": True, "level": lvl}

    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"hedge": {"()": formatter}},
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "hedge", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["default"], "level": lvl},
        "loggers": {
            "uvicorn": passthrough(),
            "uvicorn.error": passthrough(),
            "uvicorn.access": passthrough(),
            "hedge": passthrough(),
        },
    }
