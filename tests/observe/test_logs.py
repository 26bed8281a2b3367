"""Access logs and ``--log-format json``: one JSON line per request, every line JSON, no secrets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import MASTER_KEY, start_gateway, start_mock
from hedge.observe import logs as hedge_logs
from hedge.observe.logs import AccessLog, JsonFormatter, LineHandler, TextFormatter, redact, register_secrets
from hedge.record import Outcome, RequestRecord, RouteStep
from hedge.redact import redact_slowly

GOOD_KEY = "sk-good-provider-key-0001"
BAD_KEY = "sk-bad-provider-key-0003"
CLIENT_WRONG_KEY = "sk-wrong-client-key-123456"
SECRETS = (MASTER_KEY, GOOD_KEY, BAD_KEY, CLIENT_WRONG_KEY)


@dataclass
class Sent:
    request_id: str
    status: int
    alias: str | None = None
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


@dataclass
class Run:
    sent: list[Sent]
    lines: list[str]


@pytest.fixture(scope="module")
def run(logs: Path) -> Iterator[Run]:
    good = start_mock("openai", logs, "--seed", "21", "--api-key", GOOD_KEY)
    config: dict[str, Any] = {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "good": {"style": "openai", "base_url": f"{good.url}/v1", "api_key": GOOD_KEY},
            "badcreds": {"style": "openai", "base_url": f"{good.url}/v1", "api_key": BAD_KEY},
        },
        "models": {
            "chat": {
                "deployments": [{"provider": "good", "model": "small", "price": {"input": 1, "output": 2}}]
            },
            "broken": {"deployments": [{"provider": "badcreds", "model": "small"}]},
        },
        "resilience": {"max_attempts": 1},
    }
    gw = start_gateway(config, logs, "--log-format", "json")
    sent: list[Sent] = []
    try:
        client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)
        for i in range(2):
            raw = client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": f"hello {i}"}]
            )
            usage = raw.parse().usage
            assert usage is not None
            sent.append(
                Sent(
                    raw.headers["x-hedge-request-id"],
                    200,
                    "chat",
                    False,
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    float(raw.headers["x-hedge-cost-usd"]),
                )
            )
        with client.chat.completions.with_streaming_response.create(
            model="chat",
            messages=[{"role": "user", "content": "stream me"}],
            stream=True,
            stream_options={"include_usage": True},
        ) as resp:
            request_id = resp.headers["x-hedge-request-id"]
            usage_chunks = [c.usage for c in resp.parse() if c.usage is not None]
        u = usage_chunks[0]
        assert u is not None
        cost = float(u.model_dump()["hedge_cost_usd"])
        sent.append(Sent(request_id, 200, "chat", True, u.prompt_tokens, u.completion_tokens, cost))
        # A client that pastes a key into the model name gets it echoed in the 404: the log masks it.
        with pytest.raises(openai.NotFoundError) as nf:
            client.chat.completions.create(model=MASTER_KEY, messages=[{"role": "user", "content": "x"}])
        sent.append(Sent(nf.value.response.headers["x-hedge-request-id"], 404))
        with pytest.raises(openai.InternalServerError) as bad:
            client.chat.completions.create(model="broken", messages=[{"role": "user", "content": "x"}])
        sent.append(Sent(bad.value.response.headers["x-hedge-request-id"], 502, "broken"))
        wrong = httpx.post(
            f"{gw.base_url}/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
            headers={"authorization": f"Bearer {CLIENT_WRONG_KEY}"},
        )
        assert wrong.status_code == 401
        sent.append(Sent(wrong.headers["x-hedge-request-id"], 401))
        assert httpx.get(f"{gw.url}/metrics").status_code == 200  # not a model request: no access line
    finally:
        gw.stop()
        good.stop()
    yield Run(sent, [line for line in gw.log.read_text().splitlines() if line.strip()])


def _access(run: Run) -> dict[str, dict[str, Any]]:
    lines = [json.loads(line) for line in run.lines]
    return {line["request_id"]: line for line in lines if line["logger"] == "hedge.access"}


def test_every_line_is_json(run: Run) -> None:
    assert run.lines
    loggers = set()
    for line in run.lines:
        obj = json.loads(line)
        assert {"ts", "level", "logger", "msg"} <= obj.keys(), line
        loggers.add(obj["logger"])
    assert "uvicorn.error" in loggers  # uvicorn's own lines are JSON too
    assert "hedge.access" in loggers


def test_one_access_line_per_request(run: Run) -> None:
    lines = [json.loads(line) for line in run.lines]
    access = [line for line in lines if line["logger"] == "hedge.access"]
    assert len(access) == len(run.sent)
    assert {a["request_id"] for a in access} == {s.request_id for s in run.sent}


def test_access_line_fields(run: Run) -> None:
    access = _access(run)
    for s in run.sent:
        line = access[s.request_id]
        assert line["status"] == s.status
        assert line["alias"] == s.alias
        assert line["stream"] is s.stream
        assert line["endpoint"] == "chat"
        assert line["latency_ms"] >= 0
        if s.status == 200:
            assert (line["provider"], line["model"]) == ("good", "small")
            assert (line["prompt_tokens"], line["completion_tokens"]) == (
                s.prompt_tokens,
                s.completion_tokens,
            )
            assert line["cost_usd"] == pytest.approx(s.cost, rel=1e-6)
            assert line["attempts"] == 1
            assert line["route"] == ["good/small=ok"]
            assert line["error"] is None
            assert (line["ttft_ms"] is not None) is s.stream
        else:
            assert line["error"]
    broken = next(access[s.request_id] for s in run.sent if s.status == 502)
    assert broken["route"] == ["badcreds/small=upstream_auth_error"]
    assert broken["provider"] == "badcreds"
    not_found = next(access[s.request_id] for s in run.sent if s.status == 404)
    assert "***" in not_found["error"]


def test_no_secret_in_the_log(run: Run) -> None:
    text = "\n".join(run.lines)
    for secret in SECRETS:
        assert secret not in text
    assert "Bearer" not in text


# -- in-process units ------------------------------------------------------------------------------


def test_redact_masks_key_shapes() -> None:
    assert redact("Authorization: Bearer abc.def-123") == "Authorization: ***"
    assert redact("sent bearer xyz789 upstream") == "sent bearer *** upstream"
    assert redact("key sk-proj-AbCdEf123456 was refused") == "key sk-*** was refused"
    assert redact("GET /v1beta/models?key=AIzaSyA1234567890abcdefghijkl&alt=sse") == (
        "GET /v1beta/models?key=***&alt=sse"
    )
    assert redact("google AIzaSyA1234567890abcdefghijkl") == "google AIza***"
    assert redact('{"api_key": "hunter22"}') == '{"api_key": "***"}'
    assert redact("x-api-key: topsecret") == "x-api-key: ***"
    assert redact("nothing to hide: model gpt-4o, 12 tokens") == "nothing to hide: model gpt-4o, 12 tokens"


def test_registered_secrets_are_masked() -> None:
    register_secrets(["plainsecretvalue", None, "ab"])
    assert redact("the key plainsecretvalue leaked") == "the key *** leaked"
    assert redact("ab stays: too short to be a secret") == "ab stays: too short to be a secret"


def _record(**fields: Any) -> RequestRecord:
    rec = RequestRecord("req_x", "chat", alias="chat", provider="p", model="m", status=502)
    for name, value in fields.items():
        setattr(rec, name, value)
    return rec


def _capture(formatter: logging.Formatter, level: int = logging.INFO) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"hedge.test.{id(out)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(level)
    return logger, out


def test_access_line_json_and_text() -> None:
    rec = _record(
        error="upstream said: invalid key sk-live-1234567890",
        route=[RouteStep("p/m", Outcome.FAILED, "500"), RouteStep("q/m", Outcome.OK)],
    )
    logger, out = _capture(JsonFormatter())
    AccessLog(logger)(rec)
    line = json.loads(out.getvalue())
    assert line["request_id"] == "req_x" and line["status"] == 502
    assert line["error"] == "upstream said: invalid key sk-***"
    logger, out = _capture(TextFormatter())
    AccessLog(logger)(rec)
    text = out.getvalue()
    assert "req_x chat chat -> p/m 502" in text and "sk-***" in text and "sk-live" not in text


def test_json_formatter_redacts_messages_and_tracebacks() -> None:
    logger, out = _capture(JsonFormatter())
    try:
        raise RuntimeError("boom with Bearer leaked-token")
    except RuntimeError:
        logger.exception("failed calling %s", "https://x.test/v1?key=AIzaSyA1234567890abcdefghijkl")
    line = json.loads(out.getvalue())
    assert line["level"] == "error"
    assert "AIzaSy" not in line["msg"] and "key=***" in line["msg"]
    assert "leaked-token" not in line["exc"] and "RuntimeError" in line["exc"]


def test_access_log_does_no_work_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(rec: RequestRecord) -> dict[str, Any]:
        raise AssertionError("built an access line nobody will see")

    monkeypatch.setattr(hedge_logs, "access_fields", explode)
    logger, out = _capture(JsonFormatter(), level=logging.WARNING)
    AccessLog(logger)(_record())
    assert out.getvalue() == ""
    logger.setLevel(logging.INFO)
    with pytest.raises(AssertionError):
        AccessLog(logger)(_record())


# -- the word checks in front of the patterns --------------------------------------------------------

_NAMES = ("api_key", "API-Key", "x-api-key", "X-Goog-Api-Key", "apikey", "access_token", "Access-Token")
_NAMES += ("accesstoken", "secret", "PASSWORD", "Authorization", "?key=", "&KEY=", "key", "Bearer", "bearer")
_NAMES += ("basic", "sk-", "sk-proj-", "SK-", "AIza", "aiza", "AIzaSyA1234567890abcdefghijkl", "tokens")
_GLUE = (": ", "=", '"', "'", " ", "\t", ",", ";", "&", "?", "-", "_", "***", "\u212a", "\u017f", "é")
_VALUES = ("abc", "XYZ", "0123456789", "sk-live-1234567890", "plainsecretvalue", "bearer abc.def", "8+4")
_PIECE = st.tuples(st.sampled_from(_NAMES), st.sampled_from(_GLUE), st.sampled_from(_VALUES)).map("".join)


@given(st.lists(st.one_of(_PIECE, st.sampled_from(_NAMES + _GLUE + _VALUES)), max_size=8).map("".join))
@settings(max_examples=500, deadline=None)
def test_redact_masks_what_every_pattern_on_every_text_masks(text: str) -> None:
    register_secrets(["plainsecretvalue"])
    assert redact(text) == redact_slowly(text)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("API-KEY=hunter22", "API-KEY=***"),
        ("x-goog-api-key: abcdefgh", "x-goog-api-key: ***"),
        ("ACCESS-TOKEN: t0ken", "ACCESS-TOKEN: ***"),
        ("GET /x?KEY=abc", "GET /x?KEY=***"),
        ("BEARER abc.def", "BEARER ***"),
        ("tokens=8+4 key=vk_1 team=a", "tokens=8+4 key=vk_1 team=a"),
        # re folds the Kelvin sign to k, str.lower does not: non-ASCII text takes every pattern
        ("api_\u212aey: hunter22", "api_\u212aey: ***"),
    ],
)
def test_redact_cases(text: str, masked: str) -> None:
    assert redact(text) == masked


# -- access lines written without a log record -------------------------------------------------------


def _line_handler(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO, LineHandler]:
    out = io.StringIO()
    handler = LineHandler(out)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"hedge.test.lines.{id(out)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out, handler


@pytest.mark.parametrize("formatter", [TextFormatter, JsonFormatter])
def test_an_access_line_is_what_the_formatter_writes(
    formatter: type[logging.Formatter], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_764_000_123.4567)
    rec = _record(
        error="upstream said: invalid key sk-live-1234567890",
        route=[RouteStep("p/m", Outcome.FAILED, "500"), RouteStep("q/m", Outcome.OK)],
        tags={"b", "a"},
        key_id="vk_1",
    )
    fast, fast_out, handler = _line_handler(formatter())
    AccessLog(fast)(rec)
    assert handler._held == []  # no running loop: written at once
    slow, slow_out = _capture(formatter())
    slow.name = fast.name
    AccessLog(slow)(rec)
    assert fast_out.getvalue() == slow_out.getvalue()
    assert "sk-live" not in fast_out.getvalue()


def test_other_handlers_or_filters_get_ordinary_records(caplog: pytest.LogCaptureFixture) -> None:
    logger, out, handler = _line_handler(TextFormatter())
    logger.propagate = True  # caplog's handler sits on the root logger
    with caplog.at_level(logging.INFO, logger=logger.name):
        AccessLog(logger)(_record())
    assert [r.name for r in caplog.records] == [logger.name]
    assert "req_x chat chat -> p/m 502" in out.getvalue()
    logger.propagate = False
    handler.addFilter(lambda record: "502" not in record.getMessage())
    AccessLog(logger)(_record(request_id="req_filtered"))
    assert "req_filtered" not in out.getvalue()


class _Writes(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, s: str) -> int:
        self.writes.append(s)
        return super().write(s)


async def test_the_lines_of_one_loop_turn_leave_in_one_write_and_in_order() -> None:
    out = _Writes()
    handler = LineHandler(out)
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("hedge.test.turn")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for i in range(3):
        AccessLog(logger)(_record(request_id=f"req_{i}"))
    assert out.writes == []  # held until the turn ends
    await asyncio.sleep(0)
    assert len(out.writes) == 1 and [line.split()[4] for line in out.getvalue().splitlines()] == [
        "req_0",
        "req_1",
        "req_2",
    ]
    AccessLog(logger)(_record(request_id="req_3"))
    logger.warning("after req_3")  # an ordinary record writes what is held first
    lines = out.getvalue().splitlines()
    assert "req_3" in lines[-2] and lines[-1].endswith("after req_3")
    AccessLog(logger)(_record(request_id="req_4"))
    handler.flush()  # what logging.shutdown does at exit
    assert "req_4" in out.getvalue()
