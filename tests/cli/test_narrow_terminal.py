"""Every table the CLI prints, in an 80-column terminal: no line wider, no id or number cut, and
``--format json`` carrying the same rows.

The commands run as subprocesses against real state (a SQLite state dir with keys and spend, a
running gateway for ``hedge top``), with rich told it writes to an 80-column terminal
(``COLUMNS=80``, ``TTY_COMPATIBLE=1``): colours, and ``hedge top``'s live view, are on as for a
person at a terminal; the escape sequences are stripped before lines are measured.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rich.cells import cell_len
from rich.console import Console

from conftest import MASTER_KEY, Gateway, start_gateway, start_mock
from hedge.cli.tables import Col, fit_table
from hedge.record import RequestRecord
from hedge.store.db import connect
from hedge.store.ledger import Ledger
from hedge.store.schema import MIGRATIONS

WIDTH = 80
ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
CUT = "…"  # what rich puts where it cuts a cell


def terminal_env(columns: int = WIDTH) -> dict[str, str]:
    """An environment in which rich writes to a ``columns``-wide terminal (whatever runs the tests)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR", "LINES")}
    env.update({"COLUMNS": str(columns), "LINES": "200", "TTY_COMPATIBLE": "1", "TERM": "xterm-256color"})
    return env


def hedge(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "hedge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=terminal_env() if env is None else env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def screen(out: str) -> list[str]:
    """The lines as a terminal shows them: escape sequences gone, carriage returns start a line."""
    return re.split(r"\r\n|\r|\n", ANSI.sub("", out))


def assert_fits(out: str, width: int = WIDTH) -> list[str]:
    lines = screen(out)
    too_long = [line for line in lines if cell_len(line) > width]
    assert not too_long, "\n".join(too_long)
    assert CUT not in out, out
    return lines


def whole(token: str, lines: Sequence[str]) -> bool:
    """``token`` appears on one line, not as part of a longer word."""
    pattern = re.compile(rf"(?<![\w.,$-]){re.escape(token)}(?![\w.,-])")
    return any(pattern.search(line) for line in lines)


# -- state: keys and spend in a SQLite state dir ----------------------------------------------------


@dataclass
class State:
    config: Path
    keys: list[dict[str, Any]]


KEYS = [
    ["--name", "alice", "--team", "research", "--models", "chat,premium", "--budget-usd", "250.5",
     "--budget-period", "month", "--rpm", "600", "--tpm", "2000000", "--expires", "30d"],
    ["--name", "batch-summariser-nightly", "--team", "data-platform", "--budget-usd", "12000",
     "--budget-period", "total", "--tpm", "150000"],
    ["--name", "bob"],
    ["--name", "ci", "--team", "eng", "--models", "chat", "--rpm", "60"],
]  # fmt: skip


async def _book(db_url: str, keys: list[dict[str, Any]]) -> None:
    db = await connect(db_url)
    await db.migrate(MIGRATIONS)
    ledger = Ledger(db, flush_interval_s=60)
    now = time.time()
    spread = [
        ("cheap", "qwen2.5-72b-instruct", 0.000731, 0.0091),
        ("premium", "gpt-4o", 0.0123, 0.0123),
        ("anthropic-direct", "claude-sonnet-4-5", 0.0447, 0.0523),
    ]
    for i in range(60):
        provider, model, cost, baseline = spread[i % 3]
        key = keys[i % len(keys)]
        ledger(
            RequestRecord(
                request_id=f"req-{i}",
                endpoint="chat",
                alias="chat" if i % 2 else "premium",
                provider=provider,
                model=model,
                prompt_tokens=1_234_567 + i,
                completion_tokens=98_765 + i,
                cost_usd=cost * 1_000 * (1 + i),
                baseline_cost_usd=baseline * 1_000 * (1 + i),
                key_id=key["id"],
                team=key["team"],
                started_at=now - i * 3600,
            )
        )
    await ledger.close()
    await db.close()


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> State:
    root = tmp_path_factory.mktemp("narrow")
    config = root / "hedge.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"master_key": MASTER_KEY},
                "state": {"dir": str(root / "state")},
                "providers": {"cheap": {"style": "openai", "base_url": "http://127.0.0.1:9/v1"}},
                "models": {"chat": {"deployments": [{"provider": "cheap", "model": "m"}]}},
            }
        )
    )
    keys = [
        json.loads(hedge("keys", "create", "--config", str(config), "--format", "json", *k)) for k in KEYS
    ]
    revoked = json.loads(hedge("keys", "revoke", "--config", str(config), keys[2]["id"], "--json"))
    assert revoked["status"] == "revoked"
    asyncio.run(_book(f"sqlite:///{root / 'state' / 'hedge.db'}", keys))
    return State(config, keys)


def test_keys_list_keeps_every_id_whole_in_80_columns(state: State) -> None:
    lines = assert_fits(hedge("keys", "list", "--config", str(state.config)))
    for key in state.keys:
        assert whole(key["id"], lines), (key["id"], lines)
        row = next(line for line in lines if key["id"] in line)
        expected = "revoked" if key["name"] == "bob" else "active"
        assert expected in row, row
    assert any(line.startswith("not shown at 80 columns: ") for line in lines), lines


def test_keys_json_carries_the_table_rows(state: State) -> None:
    args = ("keys", "list", "--config", str(state.config))
    listed = json.loads(hedge(*args, "--format", "json"))
    assert json.loads(hedge(*args, "--json")) == listed, "--json stays an alias of --format json"
    table_ids = [m.group(0) for line in screen(hedge(*args)) if (m := re.match(r"key_[0-9a-f]+", line))]
    assert table_ids == [k["id"] for k in listed]
    assert {k["id"] for k in listed} == {k["id"] for k in state.keys}
    alice = next(k for k in listed if k["name"] == "alice")
    assert alice["budget_usd"] == 250.5 and alice["rpm"] == 600 and alice["tpm"] == 2_000_000
    assert alice["models"] == ["chat", "premium"] and alice["status"] == "active"
    assert isinstance(alice["expires_at"], float) and isinstance(alice["created_at"], float)
    assert {k["status"] for k in listed} == {"active", "revoked"}
    assert "key_hash" not in alice
    wide = screen(hedge(*args, env=terminal_env(200)))
    assert any("2,000,000" in line and "250.5/month" in line for line in wide), "every column at 200"


@pytest.mark.parametrize("by", ["provider", "model", "key", "team", "day"])
def test_spend_fits_80_columns_and_json_matches(state: State, by: str) -> None:
    args = ("spend", "--config", str(state.config), "--by", by, "--since", "30d")
    lines = assert_fits(hedge(*args))
    data = json.loads(hedge(*args, "--format", "json"))
    assert data["rows"], data
    for row in [*data["rows"], data["total"]]:
        assert isinstance(row["requests"], int) and isinstance(row["cost_usd"], float)
        line = next((ln for ln in lines if f"{row['cost_usd']:,.6f}" in ln), None)
        assert line is not None, (row, lines)
        for number in (f"{row['cost_usd']:,.6f}", f"{row['savings_usd']:,.6f}"):  # never left out
            assert whole(number, [line]), (number, line)
    assert data["total"]["requests"] == sum(r["requests"] for r in data["rows"]) == 60


def test_prices_keep_model_names_whole(state: State) -> None:
    lines = assert_fits(hedge("prices", "--config", str(state.config)))
    data = json.loads(hedge("prices", "--config", str(state.config), "--format", "json"))
    assert data["models"]
    for model, price in data["models"].items():
        assert whole(model, lines), model
        assert isinstance(price["input"], int | float)


# -- hedge top against a running gateway ----------------------------------------------------------


@pytest.fixture(scope="module")
def busy_gateway(logs: Path) -> Iterator[Gateway]:
    mock = start_mock("openai", logs)
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "cheap-openai-compatible": {"style": "openai", "base_url": f"{mock.url}/v1", "api_key": "x"},
            "premium": {"style": "openai", "base_url": f"{mock.url}/v1", "api_key": "y"},
        },
        "models": {
            "chat": {
                "baseline": "premium",
                "deployments": [
                    {
                        "provider": "cheap-openai-compatible",
                        "model": "qwen2.5-72b-instruct",
                        "price": {"input": 0.35, "output": 0.4},
                    }
                ],
            },
            "premium": {
                "deployments": [
                    {"provider": "premium", "model": "gpt-4o", "price": {"input": 2.5, "output": 10}}
                ]
            },
        },
    }
    gw = start_gateway(config, logs)
    try:
        for model in ("chat", "chat", "premium", "no-such-alias"):
            httpx.post(
                f"{gw.base_url}/chat/completions",
                headers={"Authorization": f"Bearer {MASTER_KEY}"},
                json={"model": model, "messages": [{"role": "user", "content": "hello there"}]},
                timeout=20,
            )
        yield gw
    finally:
        gw.stop()
        mock.stop()


def test_top_fits_80_columns_and_json_matches(busy_gateway: Gateway) -> None:
    args = ("top", "--url", busy_gateway.url, "--interval", "0.1", "--iterations", "1")
    lines = assert_fits(hedge(*args))
    doc = json.loads(hedge(*args, "--format", "json"))
    assert doc["error"] is None and doc["source"] == f"{busy_gateway.url}/metrics"
    assert {(r["alias"], r["provider"]) for r in doc["rows"]} == {
        ("chat", "cheap-openai-compatible"),
        ("premium", "premium"),
        (None, None),
    }
    for row in doc["rows"]:
        assert whole(row["alias"] or "(no alias)", lines), row
        assert isinstance(row["requests"], int) and isinstance(row["cost_usd"], float)
        assert row["requests_per_s"] is None or isinstance(row["requests_per_s"], float)
    assert doc["summary"]["requests"] == sum(r["requests"] for r in doc["rows"]) == 4
    for breaker in doc["breakers"]:
        assert breaker["state"] == "closed" and breaker["cooling_down"] is False
        assert whole(breaker["deployment"], lines), breaker
    assert {b["deployment"] for b in doc["breakers"]} == {
        "cheap-openai-compatible/qwen2.5-72b-instruct",
        "premium/gpt-4o",
    }


# -- the fitting itself, at many widths -----------------------------------------------------------


COLUMNS = (
    Col("id", "id"),
    Col("name", squeeze=12),
    Col("note", drop=1),
    Col("amount", "number", justify="right"),
    Col("count", "number", drop=2, justify="right"),
    Col("other\nref", "id", drop=3),
)
ROWS = [
    ["key_0123456789abcdef", "a name with several words", "a long free-text note " * 3, "1,234,567.123456",
     "42", "dep/model-x"],
    ["key_fedcba9876543210", "one-hyphenated-long-name-without-spaces", "-", "0.000001", "1,000,000",
     "dep/another-model"],
]  # fmt: skip


# Narrowest widths: id 20, name squeezed to 12, note 9 (its longest word), amount 16, count 9,
# other ref 17; each column takes one more for its padding and one per divider between columns.
LEFT_OUT = [(94, []), (83, ["note"]), (72, ["note", "count"]), (0, ["note", "count", "other ref"])]


@pytest.mark.parametrize("width", [50, 60, 71, 72, 80, 82, 83, 93, 94, 140])
def test_fit_table_never_cuts_and_says_what_it_left_out(width: int) -> None:
    console = Console(width=width, file=io.StringIO(), color_system=None, force_terminal=False)
    console.print(fit_table(width, COLUMNS, ROWS, title="t"), crop=False)
    assert isinstance(console.file, io.StringIO)
    lines = assert_fits(console.file.getvalue(), width)
    rule = next(i for i, line in enumerate(lines) if line.startswith("──"))
    headers = " ".join(lines[1:rule]).split()
    note = " ".join(
        lines[next((i for i, ln in enumerate(lines) if ln.startswith("not shown")), len(lines)) :]
    )
    found = re.search(r"not shown at (\d+) columns: (.*?) \(--format json has all\)", " ".join(note.split()))
    hidden = found.group(2).split(", ") if found else []
    assert found is None or found.group(1) == str(width)
    for col in COLUMNS:
        name = col.header.replace("\n", " ")
        assert (name.split()[0] in headers) != (name in hidden), (name, lines)
        assert col.drop is not None or name not in hidden
    for row in ROWS:
        assert whole(row[0], lines) and whole(row[3], lines), (row, lines)
        if "count" in headers:
            assert whole(row[4], lines), (row[4], lines)
        if "other" in headers:
            assert whole(row[5], lines), (row[5], lines)
    assert hidden == next(names for least, names in LEFT_OUT if width >= least), (width, lines)
