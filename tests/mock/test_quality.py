"""The mocks' ``quality`` knob: a model of known quality, so evaluations have ground truth.

A user message ending ``Answer with: X`` is answered ``X`` for the configured share of such requests
and with a plausible near miss otherwise; without the knob (and for every other message) the mock
is the plain echoing upstream every other test relies on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from conftest import Mock, start_mock
from hedge.mock.behaviour import answer_marker, near_miss


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What is the capital of France? Answer with: Paris", "Paris"),
        ("2+2?\nanswer with:   4  \n", "4"),
        ('Pick one.\nAnswer with: "New York"', "New York"),
        ("Answer with: A\nActually, Answer with: B", "B"),
        ("Tell me a joke", None),
        ("Answer with:", None),
    ],
)
def test_the_marker_names_the_right_answer(text: str, expected: str | None) -> None:
    assert answer_marker(text) == expected


@pytest.mark.parametrize(
    ("answer", "miss"),
    [
        ("Paris", "Pairs"),
        ("42", "43"),
        ("1", "2"),
        ("3.14", "3.15"),
        ("B", "C"),
        ("z", "a"),
        ("New York", "New oYrk"),
        ("??", "I don't know"),
    ],
)
def test_a_miss_is_plausible_and_wrong(answer: str, miss: str) -> None:
    assert near_miss(answer, 0) == miss
    for draw in range(8):
        wrong = near_miss(answer, draw)
        assert wrong != answer and answer not in wrong


@pytest.fixture(scope="module")
def seeded(logs: Path) -> Iterator[dict[str, Mock]]:
    mocks = {
        "openai": start_mock("openai", logs, "--quality", "0.9", "--seed", "7"),
        "anthropic": start_mock("anthropic", logs, "--quality", "0.9", "--seed", "7"),
    }
    yield mocks
    for m in mocks.values():
        m.stop()


def _ask_openai(mock: Mock, n: int) -> list[str]:
    client = openai.OpenAI(base_url=f"{mock.url}/v1", api_key="k", max_retries=0)
    out = []
    for i in range(n):
        done = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"Item {i}. Answer with: {1000 + i}"}]
        )
        out.append(done.choices[0].message.content or "")
    return out


def test_the_share_of_right_answers_is_the_quality_and_the_seed_repeats_it(seeded: dict[str, Mock]) -> None:
    mock = seeded["openai"]
    mock.reset()
    answers = _ask_openai(mock, 100)
    right = sum(a == str(1000 + i) for i, a in enumerate(answers))
    assert 88 <= right <= 92  # low-discrepancy: within a couple of 90, not sqrt(n) away
    assert all(a.lstrip("-").isdigit() for a in answers)  # the wrong ones are plausible numbers
    stats = mock.stats()
    assert (stats["graded"], stats["graded_right"]) == (100, right)
    mock.reset()  # the same seed, the same sequence
    assert _ask_openai(mock, 100) == answers


def test_the_knob_is_set_at_run_time_and_off_means_a_plain_echo(seeded: dict[str, Mock]) -> None:
    mock = seeded["openai"]
    mock.configure(quality=1.0)
    assert _ask_openai(mock, 5) == [str(1000 + i) for i in range(5)]
    mock.configure(quality=0.0)
    assert all(a != str(1000 + i) for i, a in enumerate(_ask_openai(mock, 5)))
    mock.configure(quality=None)
    assert _ask_openai(mock, 1) == ["m says: Item 0. Answer with: 1000"]
    bad = httpx.post(f"{mock.url}/_mock/config", json={"quality": 1.5})
    assert bad.status_code == 400 and "quality" in bad.json()["error"]
    mock.configure(quality=0.9)


def test_other_styles_play_the_same_quality(seeded: dict[str, Mock]) -> None:
    mock = seeded["anthropic"]
    mock.configure(quality=1.0)
    client = anthropic.Anthropic(base_url=mock.url, api_key="k", max_retries=0)
    msg = client.messages.create(
        model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "Answer with: Lyon"}]
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "Lyon"
    plain = client.messages.create(
        model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    assert plain.content[0].type == "text" and plain.content[0].text == "claude-x says: hi"


def test_the_flag_is_checked(logs: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "hedge", "mock", "--quality", "2"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and "--quality" in done.stderr


def test_gemini_and_the_responses_api_play_it_too() -> None:
    from starlette.testclient import TestClient

    from hedge.mock.server import create_mock_app
    from hedge.mock.state import Knobs

    gemini = TestClient(create_mock_app("gemini", Knobs(quality=1.0)))
    asked = {"contents": [{"role": "user", "parts": [{"text": "Capital of Norway? Answer with: Oslo"}]}]}
    done = gemini.post("/v1beta/models/gemini-x:generateContent", headers={"x-goog-api-key": "k"}, json=asked)
    assert done.json()["candidates"][0]["content"]["parts"] == [{"text": "Oslo"}]
    responses = TestClient(create_mock_app("openai", Knobs(quality=0.0)))
    body = {"model": "m", "input": "Capital of Norway? Answer with: Oslo"}
    done = responses.post("/v1/responses", headers={"authorization": "Bearer k"}, json=body)
    assert done.json()["output"][0]["content"][0]["text"] == "Osol"
