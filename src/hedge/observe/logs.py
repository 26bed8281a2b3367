"""Logging: one access line per request, JSON or text formatting, and secret redaction.

The access log (logger ``hedge.access``, level INFO) is built from the request
record, never from the HTTP request: no headers, no bodies, no keys. Error
messages are passed through :func:`redact` first. When the logger is disabled
(``--log-level warning``) the sink returns before doing any work.

``hedge serve --log-format json`` formats *every* line as one JSON object
(uvicorn's and ``hedge.breaker``'s too); the default text format is for people.
Both formatters redact anything that looks like a key, plus the configured
secrets registered with :func:`register_secrets`.

An access line is written once per request, so its cost is the gateway's: through
``logging`` (a ``LogRecord``, the handler chain, ``Formatter.format``, a ``write`` and a
``flush``) it took about a sixth of the CPU of a small proxied request. When the lines
would reach nothing but the :class:`LineHandler` that :func:`log_config` installs (what
``hedge serve`` sets up), :class:`AccessLog` formats the line itself, byte for byte what
the formatter would have written, and the handler writes the lines of one event-loop
turn in one ``write``. Any other set-up (an extra handler, a filter, pytest's
``caplog``) gets ordinary log records.
"""

from __future__ import annotations

import asyncio
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

    __slots__ = ("rec",)

    def __init__(self, rec: RequestRecord) -> None:
        self.rec = rec

    def __str__(self) -> str:
        r = self.rec
        served = f"{r.provider}/{r.model}" if r.provider else "-"
        parts = [r.request_id, r.endpoint, r.alias or "-", "->", served, str(r.status)]
        parts.append(f"{r.latency_ms:.0f}ms")
        if r.ttft_ms is not None:
            parts.append(f"ttft={r.ttft_ms:.0f}ms")
        if r.stream:
            parts.append("stream")
        parts.append(f"tokens={r.prompt_tokens}+{r.completion_tokens}")
        parts.append(f"cost=${r.cost_usd:.8f}")
        parts.append(f"attempts={r.attempts}")
        if r.cache_hit:
            parts.append("cache_hit")
        if r.key_id:
            parts.append(f"key={r.key_id}")
        if r.team:
            parts.append(f"team={r.team}")
        if len(r.route) > 1:
            parts.append("route=" + ",".join(str(step) for step in r.route))
        if r.error:
            parts.append(f"error={redact(r.error)!r}")
        return " ".join(parts)


class AccessLog:
    """Sink writing one ``hedge.access`` line per request record."""

    def __init__(self, logger: logging.Logger = access_log) -> None:
        self.logger = logger

    def __call__(self, rec: RequestRecord) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        handler = _sole_line_handler(logger)
        line = None if handler is None else handler.access_line(logger.name, rec)
        if handler is None or line is None:
            logger.info("%s", _TextLine(rec), extra={"access": access_fields(rec)})
            return
        handler.write_line(line)


def _sole_line_handler(logger: logging.Logger) -> LineHandler | None:
    """The one handler an INFO record of ``logger`` would reach, if it is a plain :class:`LineHandler`.

    Walks the chain ``Logger.callHandlers`` walks; ``None`` as soon as anything there could
    see or change the record (a filter, a second handler, a disabled logger), so those get
    a real ``LogRecord``.
    """
    found: LineHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.disabled or current.filters:
            return None
        for handler in current.handlers:
            if found is not None or type(handler) is not LineHandler or handler.filters:
                return None
            if handler.level > logging.INFO:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    return found


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stream handler :func:`log_config` installs; it also takes pre-formatted access lines.

    Access lines are held until the end of the event loop's turn and then written together,
    so a busy gateway makes one ``write`` per turn rather than one per request, and they are
    visible as soon as the turn ends. Any other record first writes what is held, so the
    order of lines is the order they were logged in; ``flush`` (which ``logging.shutdown``
    calls at exit) writes what is held too.
    """

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._held: list[str] = []
        self._flush_scheduled = False

    def access_line(self, name: str, rec: RequestRecord) -> str | None:
        """The access line this handler's formatter would write, or ``None`` if it is not one of ours."""
        formatter = self.formatter
        if type(formatter) is JsonFormatter or type(formatter) is TextFormatter:
            return formatter.access_line(name, rec, time.time())
        return None

    def write_line(self, line: str) -> None:
        """Hold one formatted line until the end of this loop turn (write it now outside a loop)."""
        with self._guard():
            self._held.append(line)
            if self._flush_scheduled:
                return
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            else:
                self._flush_scheduled = True
        if loop is None:
            self.flush()
        else:
            loop.call_soon(self.flush)

    def flush(self) -> None:
        with self._guard():
            self._flush_scheduled = False
            if self._held:
                text = self.terminator.join(self._held) + self.terminator
                self._held.clear()
                try:
                    self.stream.write(text)
                except Exception:  # a log line that cannot be written must not fail a request
                    return
            super().flush()

    def emit(self, record: logging.LogRecord) -> None:
        if self._held:
            self.flush()
        super().emit(record)

    def _guard(self) -> Any:
        assert self.lock is not None
        return self.lock


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

    def access_line(self, name: str, rec: RequestRecord, created: float) -> str:
        """What :meth:`format` makes of an access record logged at ``created``, without the record."""
        out: dict[str, Any] = {"ts": _iso(created), "level": "info", "logger": name, "msg": "request"}
        out.update(access_fields(rec))
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """The usual ``time level logger: message`` line, with secrets masked."""

    def __init__(self, fmt: str = TEXT_FORMAT, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self._second = -1
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))

    def access_line(self, name: str, rec: RequestRecord, created: float) -> str | None:
        """What :meth:`format` makes of an access record logged at ``created``, without the record.

        ``None`` unless this is the default format: only that one is spelled out here. The
        time is ``formatTime``'s (local time, ``,msecs``), its seconds formatted once a second.
        """
        if self._fmt != TEXT_FORMAT or self.datefmt is not None or self.converter is not time.localtime:
            return None
        second = int(created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, time.localtime(created))
            self._second = second
        msecs = int((created - second) * 1000)
        return redact(f"{self._stamp},{msecs:03d} INFO {name}: {_TextLine(rec)}")


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
            "default": {
                "class": "hedge.observe.logs.LineHandler",
                "formatter": "hedge",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": lvl},
        "loggers": {
            "uvicorn": passthrough(),
            "uvicorn.error": passthrough(),
            "uvicorn.access": passthrough(),
            "hedge": passthrough(),
        },
    }
