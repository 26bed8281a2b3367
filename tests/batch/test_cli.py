"""``hedge batches list|show|cancel`` against the state database a gateway's config names."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import MASTER_KEY
from hedge.batch.store import BatchRow, BatchStore, NewLine, new_id
from hedge.store.db import connect
from hedge.store.schema import MIGRATIONS


def hedge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hedge", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
    )


async def add_batch(url: str, status: str) -> str:
    db = await connect(url)
    await db.migrate(MIGRATIONS)
    batch = BatchRow(
        id=new_id("batch_"),
        owner="key_x",
        key_id="key_x",
        endpoint="/v1/chat/completions",
        model="chat",
        input_file_id="file-x",
        completion_window="24h",
        status=status,
        created_at=1_700_000_000.0,
        deadline=1_700_086_400.0,
    )
    lines = [NewLine(i, f"l{i}", {"model": "chat", "messages": []}) for i in range(3)]
    await BatchStore(db).create_batch(batch, lines)
    await db.close()
    return batch.id


def test_list_show_and_cancel(tmp_path: Path) -> None:
    config = tmp_path / "hedge.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"master_key": MASTER_KEY},
                "providers": {"up": {"style": "openai", "base_url": "http://127.0.0.1:9/v1"}},
                "models": {"chat": {"deployments": [{"provider": "up", "model": "m"}]}},
                "state": {"dir": str(tmp_path)},
            }
        )
    )
    url = f"sqlite:///{tmp_path / 'hedge.db'}"
    running = asyncio.run(add_batch(url, "in_progress"))
    done = asyncio.run(add_batch(url, "completed"))

    listed = hedge("batches", "list", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    assert running in listed.stdout and done in listed.stdout and "in_progress" in listed.stdout

    shown = hedge("batches", "show", running, "--config", str(config), "--format", "json")
    data = json.loads(shown.stdout)
    assert data["status"] == "in_progress" and data["request_counts"]["total"] == 3
    assert data["hedge"]["lines"] == {"pending": 3}

    cancelled = hedge("batches", "cancel", running, "--config", str(config), "--format", "json")
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["status"] == "cancelling"
    refused = hedge("batches", "cancel", done, "--config", str(config))
    assert refused.returncode == 1 and "cannot be cancelled" in refused.stderr
    missing = hedge("batches", "show", "batch_nope", "--config", str(config))
    assert missing.returncode == 1 and "no batch" in missing.stderr
    table = hedge("batches", "show", running, "--config", str(config))
    assert "cancelling" in table.stdout and "pending 3" in table.stdout
