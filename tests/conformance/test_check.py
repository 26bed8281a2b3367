"""``hedge check`` against real mock upstreams: clean mocks pass, every quirk is caught, the CLI's formats.

Mocks run as subprocesses (started in parallel, once per module). The check
itself runs in-process through ``hedge.cli.main`` (one test runs the real
``hedge check`` command), so stdout and the exit status are exactly the CLI's.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import MASTER_KEY, Mock, start_mock
from hedge.cli import main
from hedge.conformance.suite import load_cases
from hedge.store.conformance import JsonlResultStore

BUILTIN = [c.id for c in load_cases()]
CHAT_STREAM_CASES = {"stream", "stream-usage", "stream-tools", "stream-unicode"}
STREAM_CASES = {*CHAT_STREAM_CASES, "responses-stream"}
NON_STREAM_CASES = set(BUILTIN) - STREAM_CASES
SKIPPED = {
    "openai": {
        "reasoning-effort": "model gpt-4o does not reason",
        "prompt-cache": "no 'cache_markers' capability",
    },
    "anthropic": {"n": "no 'n' capability"},
    "gemini": {"prompt-cache": "no 'cache_markers' capability"},
}
"""Per style, the built-in cases its mock deployment skips, and why: gpt-4o does not reason, only
Anthropic honours prompt-cache markers, Anthropic has no n > 1."""
RESPONSES_CASES = {c.id for c in load_cases() if c.api == "responses"}

# The deployments, by provider name: (mock key, style, upstream model).
MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4", "gemini": "gemini-2.5-flash"}

# quirk -> (the cases it must fail, a phrase from the reason of the first of them). The Responses
# cases fail the same way whether the request is translated to chat or passed through to the mock's
# own /v1/responses; the chat stream's role chunk never reaches a Responses client.
TRANSLATION_REPAIRS: dict[str, set[str]] = {"tool-args-object": {"responses-function-call"}}
"""Quirks the Responses translation repairs (arguments sent as an object become text), so only the
deployment that passes Responses through (the upstream's own output) still fails those cases."""

OPENAI_QUIRKS: dict[str, tuple[set[str], str]] = {
    "ignore-stop": ({"stop"}, "content contains 'three'"),
    "stop-included": ({"stop"}, "content contains 'three'"),
    "no-stream-usage": ({"stream-usage", "responses-stream"}, "reported no usage in the stream"),
    "tool-args-object": (
        {"tool-call", "parallel-tools", "stream-tools", "responses-function-call", "failed-generation"},
        "are a JSON object, not a string holding JSON",
    ),
    "drop-system": ({"system", "multi-turn", "responses-instructions"}, "does not match /HELLO WORLD/"),
    "no-role-in-first-chunk": (CHAT_STREAM_CASES, "has no role 'assistant'"),
    "error-as-200": (NON_STREAM_CASES - set(SKIPPED["openai"]), "upstream 200"),
}
# Quirks that reach a client through the native adapters (the others are normalised by design).
NATIVE_QUIRKS: dict[str, set[str]] = {
    "ignore-stop": {"stop"},
    "stop-included": {"stop"},
    "no-stream-usage": {"stream-usage", "responses-stream"},
    "drop-system": {"system", "multi-turn", "responses-instructions"},
    "error-as-200": NON_STREAM_CASES,
}

CONTEXT_WINDOWS = {"id": "long-context", "params": {"context_window": 3000}}


@pytest.fixture(scope="module")
def mocks(logs: Path) -> Iterator[dict[str, Mock]]:
    """A clean mock per style, and one openai mock per quirk (``quirk:NAME``), started in parallel."""
    specs: dict[str, tuple[str, tuple[str, ...]]] = {style: (style, ()) for style in MODELS}
    specs.update({f"quirk:{q}": ("openai", ("--quirk", q)) for q in OPENAI_QUIRKS})
    with ThreadPoolExecutor(len(specs)) as pool:
        futures = {key: pool.submit(start_mock, style, logs, *args) for key, (style, args) in specs.items()}
        started = {key: f.result() for key, f in futures.items()}
    yield started
    for mock in started.values():
        mock.stop()


def config_for(tmp_path: Path, providers: dict[str, tuple[Mock, str]], **price: float) -> Path:
    """A config with one provider per entry (name -> (mock, style)) and one alias over all of them;
    style ``openai-native`` is an openai provider with ``responses_api: true``."""
    config: dict[str, Any] = {"server": {"master_key": MASTER_KEY}, "providers": {}, "models": {}}
    deployments = []
    for name, (mock, given) in providers.items():
        style = given.removesuffix("-native")
        base = f"{mock.url}/v1" if style == "openai" else mock.url
        config["providers"][name] = {"style": style, "base_url": base, "api_key": "sk-x"}
        if given == "openai-native":
            config["providers"][name]["responses_api"] = True
        deployments.append(
            {"provider": name, "model": MODELS[style], "price": price or {"input": 2.0, "output": 8.0}}
        )
    config["models"]["chat"] = {"deployments": deployments}
    path = tmp_path / "hedge.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_cases(tmp_path: Path, cases: list[dict[str, Any]], name: str = "cases.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cases, allow_unicode=True))
    return path


def check(capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path, *args: str) -> tuple[int, str]:
    """Run ``hedge check`` in-process; returns (exit status, stdout)."""
    argv = ["check", "--config", str(config), "--results", str(tmp_path / "results.jsonl"), *args]
    code = main(argv)
    return code, capsys.readouterr().out


def check_json(
    capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path, *args: str
) -> tuple[int, dict[str, Any]]:
    code, out = check(capsys, config, tmp_path, "--format", "json", *args)
    data: dict[str, Any] = json.loads(out)
    return code, data


def by_status(data: dict[str, Any], status: str) -> dict[tuple[str, str], str]:
    return {(r["deployment"], r["case"]): r["reason"] for r in data["results"] if r["status"] == status}


# -- clean mocks ----------------------------------------------------------------------------------


def test_clean_mocks_of_every_style_pass_every_case(
    mocks: dict[str, Mock], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Responses cases among them, translated to each style's own API."""
    config = config_for(tmp_path, {style: (mocks[style], style) for style in MODELS})
    cases = write_cases(tmp_path, [CONTEXT_WINDOWS])
    code, data = check_json(capsys, config, tmp_path, "--all", "--cases", str(cases))
    assert code == 0, by_status(data, "fail")
    assert by_status(data, "fail") == {}
    # The only skips: what the adapters' capabilities and the models' families say they cannot do.
    skipped = by_status(data, "skip")
    assert set(skipped) == {(f"{style}/{MODELS[style]}", case) for style in MODELS for case in SKIPPED[style]}
    for (dep, case), reason in skipped.items():
        assert SKIPPED[dep.split("/")[0]][case] in reason
    summary = data["summary"]
    assert summary["deployments"] == 3 and summary["cases"] == len(BUILTIN)
    assert summary["passed"] == 3 * len(BUILTIN) - len(skipped)
    assert summary["ok"] is True and summary["exit_status"] == 0
    assert summary["cost_usd"] > 0
    assert all(d["cost_usd"] > 0 and d["latency_ms"] > 0 for d in summary["by_deployment"].values())


def test_long_context_skips_without_a_context_window(
    mocks: dict[str, Mock], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path, {"openai": (mocks["openai"], "openai")})
    code, data = check_json(capsys, config, tmp_path, "--all", "--only", "long-context,plain")
    assert code == 0
    assert by_status(data, "skip") == {
        (
            "openai/gpt-4o",
            "long-context",
        ): "context window unknown (set context_window on the deployment)"
    }


def test_long_context_fails_when_the_prompt_is_not_fully_counted(
    mocks: dict[str, Mock], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The filler is 75% of the window; asking for more than that must fail on the prompt count."""
    config = config_for(tmp_path, {"openai": (mocks["openai"], "openai")})
    strict = {"id": "long-context", "params": {"context_window": {"openai/gpt-4o": 2000}}}
    cases = write_cases(tmp_path, [strict])
    code, data = check_json(
        capsys, config, tmp_path, "--all", "--only", "long-context", "--cases", str(cases)
    )
    assert code == 0, data
    # Same window, stricter expectation: 90% of the window counted.
    case = next(c for c in load_cases() if c.id == "long-context").model_dump()
    case["params"] = {"context_window": 2000}
    case["expect"] = [{"usage": {"min_prompt_tokens": "90%"}}]
    cases = write_cases(tmp_path, [case])
    code, data = check_json(
        capsys, config, tmp_path, "--all", "--only", "long-context", "--cases", str(cases)
    )
    assert code == 1
    reason = by_status(data, "fail")[("openai/gpt-4o", "long-context")]
    assert "prompt tokens, fewer than 1800" in reason


# -- quirks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("quirk", list(OPENAI_QUIRKS))
def test_each_openai_quirk_is_caught(
    quirk: str, mocks: dict[str, Mock], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a deployment whose Responses requests are translated to chat, and on one that serves them
    itself (``responses_api: true``) alike."""
    mock = mocks[f"quirk:{quirk}"]
    config = config_for(tmp_path, {"quirky": (mock, "openai"), "native": (mock, "openai-native")})
    cases = write_cases(tmp_path, [CONTEXT_WINDOWS])
    code, data = check_json(capsys, config, tmp_path, "--all", "--cases", str(cases))
    expected, phrase = OPENAI_QUIRKS[quirk]
    assert code == 1
    translated = expected - TRANSLATION_REPAIRS.get(quirk, set())
    for deployment, want in (("quirky/gpt-4o", translated), ("native/gpt-4o", expected)):
        failed = {
            case: reason for (dep, case), reason in by_status(data, "fail").items() if dep == deployment
        }
        assert set(failed) == want, deployment
        assert any(phrase in reason for reason in failed.values()), failed
    assert data["summary"]["required_failed"] == len(translated) + len(expected)


def test_error_as_200_is_caught_by_the_error_cases(
    mocks: dict[str, Mock], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path, {"quirky": (mocks["quirk:error-as-200"], "openai")})
    code, data = check_json(capsys, config, tmp_path, "--all", "--only", "error-param,error-model")
    assert code == 1
    failed = by_status(data, "fail")
    assert failed[("quirky/gpt-4o", "error-param")].startswith("provider answered 200, expected 4xx")
    assert failed[("quirky/gpt-4o", "error-model")].startswith("provider answered 200, expected 4xx")


@pytest.mark.parametrize("style", ["anthropic", "gemini"])
def test_native_style_quirks_are_caught(
    style: str, mocks: dict[str, Mock], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mock = mocks[style]
    config = config_for(tmp_path, {style: (mock, style)})
    cases = write_cases(tmp_path, [CONTEXT_WINDOWS])
    try:
        for quirk, expected in NATIVE_QUIRKS.items():
            mock.configure(quirks=[quirk])
            code, data = check_json(capsys, config, tmp_path, "--all", "--cases", str(cases))
            failed = {case for (_, case) in by_status(data, "fail")}
            if style == "anthropic" and quirk == "drop-system":
                # JSON mode is a system instruction
                expected = expected | {"json-mode", "json-schema", "responses-json-schema"}
            expected = expected - set(SKIPPED[style])
            assert code == 1, quirk
            assert failed == expected, quirk
    finally:
        mock.configure(quirks=[])


def test_failed_generation_is_caught(
    mocks: dict[str, Mock], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Gemini deployment that ends its generations with MALFORMED_FUNCTION_CALL fails the case,
    naming the reason, instead of passing a 200 ``stop`` with nothing in it."""
    mock = mocks["gemini"]
    config = config_for(tmp_path, {"gemini": (mock, "gemini")})
    try:
        mock.configure(finish_reason="MALFORMED_FUNCTION_CALL")
        code, data = check_json(
            capsys, config, tmp_path, "--all", "--only", "failed-generation,cross-provider-tools"
        )
    finally:
        mock.configure(finish_reason=None)
    assert code == 1
    failed = by_status(data, "fail")
    assert set(failed) == {
        ("gemini/gemini-2.5-flash", "failed-generation"),
        ("gemini/gemini-2.5-flash", "cross-provider-tools"),
    }
    assert all("MALFORMED_FUNCTION_CALL" in reason for reason in failed.values()), failed


# -- the CLI --------------------------------------------------------------------------------------


def test_json_output_schema(
    mocks: dict[str, Mock], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path, {"a": (mocks["openai"], "openai"), "b": (mocks["gemini"], "gemini")})
    code, data = check_json(capsys, config, tmp_path, "--all", "--only", "plain,stop,n")
    assert code == 0
    assert set(data) == {"results", "summary"}
    assert len(data["results"]) == 6
    for r in data["results"]:
        assert set(r) == {"deployment", "case", "status", "reason", "latency_ms"}
        assert r["status"] in ("pass", "fail", "skip")
        assert isinstance(r["latency_ms"], int | float) and r["latency_ms"] > 0
    # Matrix order: deployments in config order, cases in suite order.
    assert [(r["deployment"], r["case"]) for r in data["results"]] == [
        (d, c) for d in ("a/gpt-4o", "b/gemini-2.5-flash") for c in ("plain", "stop", "n")
    ]
    summary = data["summary"]
    for key in ("ok", "exit_status", "checked_at", "hedge_version", "passed", "failed", "skipped"):
        assert key in summary
    assert summary["passed"] == 6 and summary["failed"] == 0
    assert set(summary["by_deployment"]) == {"a/gpt-4o", "b/gemini-2.5-flash"}


FAILING_CASE = {
    "id": "says-apple",
    "title": "Mentions apples",
    "request": {"messages": [{"role": "user", "content": "Say banana"}]},
    "expect": [{"finish_reason": "stop"}, {"content": {"contains": "apple"}}],
}
PASSING_CASE = {
    "id": "says-banana",
    "request": {"messages": [{"role": "user", "content": "Say banana"}]},
    "expect": [{"content": {"regex": "(?i)banana"}}, {"usage": True}],
}


def test_user_cases_can_pass_and_fail(
    mocks: dict[str, Mock], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path, {"oa": (mocks["openai"], "openai")})
    cases = write_cases(tmp_path, [PASSING_CASE, FAILING_CASE])
    code, data = check_json(capsys, config, tmp_path, "--all", "--cases", str(cases), "--no-builtin")
    assert code == 1
    assert [(r["case"], r["status"]) for r in data["results"]] == [
        ("says-banana", "pass"),
        ("says-apple", "fail"),
    ]
    assert data["results"][1]["reason"] == "content 'gpt-4o says: Say banana' lacks 'apple'"

    # Not required: reported as failed, but the run passes.
    optional = write_cases(tmp_path, [{**FAILING_CASE, "required": False}], "optional.yaml")
    code, data = check_json(
        capsys, config, tmp_path, "--all", "--cases", str(optional), "--only", "says-apple"
    )
    assert code == 0
    assert data["results"][0]["status"] == "fail"
    assert data["summary"]["required_failed"] == 0


def test_responses_cases_pass_on_a_provider_that_serves_the_responses_api(
    mocks: dict[str, Mock], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``responses_api: true``: the cases' requests are passed through to the mock's own /v1/responses."""
    mock = mocks["openai"]
    before = mock.stats()["by_path"]
    config = config_for(tmp_path, {"native": (mock, "openai-native")})
    code, data = check_json(capsys, config, tmp_path, "--all", "--only", ",".join(sorted(RESPONSES_CASES)))
    assert code == 0, by_status(data, "fail")
    assert {r["case"]: r["status"] for r in data["results"]} == dict.fromkeys(RESPONSES_CASES, "pass")
    after = mock.stats()["by_path"]
    # One request per case, and one more for the function call round trip's second step; no chat.
    assert after["/v1/responses"] - before.get("/v1/responses", 0) == len(RESPONSES_CASES) + 1
    assert after.get("/v1/chat/completions") == before.get("/v1/chat/completions")


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CHAT_ROUND_TRIP = {
    "id": "chat-round-trip",
    "requires": ["tools"],
    "request": {
        "messages": [{"role": "user", "content": "What is the weather in Paris? Use get_weather."}],
        "tools": [WEATHER_TOOL],
    },
    "expect": [{"finish_reason": "tool_calls"}, {"tool_calls": {"count": 1, "names": ["get_weather"]}}],
    "steps": [
        {
            "request": {
                "messages": [{"role": "tool", "tool_call_id": "$call_id", "content": '{"temp_c": 21}'}],
                "tools": [WEATHER_TOOL],
            },
            "expect": [{"finish_reason": "stop"}, {"content": {"regex": "21"}}],
        }
    ],
}


def test_steps_continue_the_conversation(
    mocks: dict[str, Mock], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A chat case's step is sent after the earlier messages and the assistant's tool call; a Responses
    case's step after the earlier items; a failing step is named; so is a call that is not there."""
    builtin = next(c for c in load_cases() if c.id == "responses-function-call").model_dump(exclude_none=True)
    (step,) = builtin["steps"]
    wrong_answer = {
        **builtin,
        "id": "responses-wrong-step",
        "steps": [{**step, "expect": [{"content": {"contains": "apple"}}]}],
    }
    no_such_call = copy.deepcopy({**builtin, "id": "responses-no-such-call"})
    no_such_call["steps"][0]["request"]["input"][0]["call_id"] = "$call_id[1]"
    wrong_first = {**builtin, "id": "responses-wrong-first", "expect": [{"tool_calls": {"count": 2}}]}
    cases = write_cases(tmp_path, [CHAT_ROUND_TRIP, wrong_answer, no_such_call, wrong_first])
    providers = {style: (mocks[style], style) for style in MODELS}
    config = config_for(tmp_path, {**providers, "native": (mocks["openai"], "openai-native")})
    code, data = check_json(capsys, config, tmp_path, "--all", "--cases", str(cases), "--no-builtin")
    assert code == 1
    results = {
        (r["deployment"].split("/")[0], r["case"]): (r["status"], r["reason"]) for r in data["results"]
    }
    for provider in [*MODELS, "native"]:
        assert results[provider, "chat-round-trip"] == ("pass", "")
        status, reason = results[provider, "responses-wrong-step"]
        assert (
            status == "fail" and reason.startswith("step 2: content '") and reason.endswith("lacks 'apple'")
        )
        assert "the tool returned" in reason  # the mocks saw the function's output after their own call
        assert results[provider, "responses-no-such-call"] == (
            "fail",
            "step 2: $call_id[1]: the answer before has 1 function calls",
        )
        assert results[provider, "responses-wrong-first"] == ("fail", "step 1: 1 function calls, expected 2")


def test_user_case_overrides_a_builtin_by_id(
    mocks: dict[str, Mock], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path, {"oa": (mocks["openai"], "openai")})
    folder = tmp_path / "cases"
    folder.mkdir()
    write_cases(folder, [{**FAILING_CASE, "id": "plain"}])
    code, data = check_json(capsys, config, tmp_path, "--all", "--cases", str(folder), "--only", "plain")
    assert code == 1
    assert "lacks 'apple'" in data["results"][0]["reason"]


def test_junit_report(mocks: dict[str, Mock], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_for(
        tmp_path, {"oa": (mocks["openai"], "openai"), "an": (mocks["anthropic"], "anthropic")}
    )
    cases = write_cases(tmp_path, [FAILING_CASE])
    report = tmp_path / "report.xml"
    code, out = check(
        capsys, config, tmp_path, "--all", "--cases", str(cases), "--only", "plain,n,says-apple",
        "--format", "junit", "--output", str(report),
    )  # fmt: skip
    assert code == 1
    assert out == ""
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["oa/gpt-4o", "an/claude-sonnet-4"]
    for suite in suites:
        cases_by_name = {c.get("name"): c for c in suite.findall("testcase")}
        assert list(cases_by_name) == ["plain", "n", "says-apple"]
        assert cases_by_name["plain"].find("failure") is None
        failure = cases_by_name["says-apple"].find("failure")
        assert failure is not None and "lacks 'apple'" in (failure.get("message") or "")
        assert suite.get("failures") == "1"
    skipped = suites[1].findall("testcase")[1].find("skipped")
    assert skipped is not None and "'n' capability" in (skipped.get("message") or "")
    assert suites[1].get("skipped") == "1" and suites[0].get("skipped") == "0"


def test_markdown_report(mocks: dict[str, Mock], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_for(tmp_path, {"oa": (mocks["quirk:ignore-stop"], "openai")})
    code, out = check(capsys, config, tmp_path, "--all", "--only", "plain,stop", "--format", "markdown")
    assert code == 1
    lines = out.splitlines()
    header = lines.index("| deployment | `plain` | `stop` | latency | cost |")
    assert lines[header + 1] == "| --- | :-: | :-: | --: | --: |"
    assert lines[header + 2].startswith("| `oa/gpt-4o` | ✅ | ❌ [1] |")
    assert any(line.startswith("1. `oa/gpt-4o` · `stop` · fail: content contains 'three'") for line in lines)


def test_table_report(mocks: dict[str, Mock], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_for(tmp_path, {"oa": (mocks["quirk:ignore-stop"], "openai")})
    code, out = check(capsys, config, tmp_path, "--all", "--only", "plain,stop")
    assert code == 1
    assert "oa/gpt-4o" in out and "✓" in out and "✗1" in out
    assert "[1] oa/gpt-4o · stop · fail: content contains 'three'" in out
    assert "1 deployment x 2 cases: 1 passed, 1 failed, 0 skipped (1 required case failed)" in out


def test_results_are_recorded_and_watch_reruns(
    mocks: dict[str, Mock], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path, {"oa": (mocks["openai"], "openai")})
    results = tmp_path / "state" / "conformance.jsonl"
    code = main(
        ["check", "--config", str(config), "--all", "--only", "plain,n", "--format", "json",
         "--results", str(results), "--watch", "0.05", "--max-runs", "2"]
    )  # fmt: skip
    assert code == 0
    runs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(runs) == 2 and runs[0]["summary"]["checked_at"] < runs[1]["summary"]["checked_at"]
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(records) == 4
    assert set(records[0]) == {
        "checked_at", "hedge_version", "deployment", "case", "status", "reason", "latency_ms", "required"
    }  # fmt: skip
    latest = JsonlResultStore(results).latest("oa/gpt-4o")
    assert set(latest) == {"plain", "n"}
    assert latest["plain"].status == "pass"
    assert latest["plain"].checked_at.isoformat() == runs[1]["summary"]["checked_at"]
    assert JsonlResultStore(results).latest("other/model") == {}


def test_unrouted_deployment_can_be_checked(
    mocks: dict[str, Mock], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path, {"oa": (mocks["openai"], "openai")})
    code, data = check_json(capsys, config, tmp_path, "--deployment", "oa/gpt-4o-mini", "--only", "plain")
    assert code == 0
    assert data["results"][0]["deployment"] == "oa/gpt-4o-mini"
    assert data["summary"]["cost_usd"] == 0  # not routed: no price configured


def test_usage_and_config_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "hedge.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"master_key": "k"},
                "providers": {"p": {"style": "openai", "base_url": "http://127.0.0.1:9/v1"}},
                "models": {"chat": {"deployments": [{"provider": "p", "model": "m"}]}},
            }
        )
    )
    bad_case = write_cases(tmp_path, [{"id": "x", "request": {"messages": []}, "expect": [{"usage": True}]}])
    unknown_check = write_cases(
        tmp_path, [{**PASSING_CASE, "expect": [{"contents": {"contains": "x"}}]}], "unknown.yaml"
    )
    for args, message in [
        (["--model", "nope"], "unknown model alias 'nope' (known: chat)"),
        (["--deployment", "q/m"], "unknown provider 'q' (known: p)"),
        (["--all", "--cases", str(bad_case)], "case 'x': request: needs a non-empty 'messages' list"),
        (["--all", "--cases", str(unknown_check)], "expect[0]: unknown check 'contents'"),
        (["--all", "--cases", str(tmp_path / "missing.yaml")], "no such file or directory"),
        (["--all", "--only", "nope"], "unknown case 'nope'"),
        (["--all", "--max-runs", "2"], "--max-runs needs --watch"),
    ]:
        assert main(["check", "--config", str(config), *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err, (args, err)
    assert main(["check", "--config", str(tmp_path / "nope.yaml"), "--all"]) == 2
    assert "config error" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["check", "--config", str(config)])  # no --model/--deployment/--all
    assert exc.value.code == 2


def test_hedge_check_command(mocks: dict[str, Mock], tmp_path: Path) -> None:
    """The installed command end to end: a quirky provider fails the run with status 1."""
    config = config_for(
        tmp_path, {"oa": (mocks["openai"], "openai"), "q": (mocks["quirk:drop-system"], "openai")}
    )
    result = subprocess.run(
        [sys.executable, "-m", "hedge", "check", "--config", str(config), "--model", "chat",
         "--only", "plain,system", "--format", "json", "--no-results"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert [(r["deployment"], r["case"], r["status"]) for r in data["results"]] == [
        ("oa/gpt-4o", "plain", "pass"),
        ("oa/gpt-4o", "system", "pass"),
        ("q/gpt-4o", "plain", "pass"),
        ("q/gpt-4o", "system", "fail"),
    ]
    assert not (tmp_path / ".hedge").exists()
