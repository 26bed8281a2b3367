"""Where conformance results are kept between runs, behind a two-method interface.

:class:`ResultStore` is all a consumer needs: ``append`` a run's records, and
ask for the ``latest`` status of every case on one deployment (what a
``require_conformance`` routing gate would read). :class:`JsonlResultStore`
keeps one JSON object per line in a file (``.hedge/conformance.jsonl`` by
default); a store backed by the SQL state store only has to implement the same
two methods.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple, Protocol

import orjson

from hedge.config import Config

DEFAULT_PATH = Path(".hedge") / "conformance.jsonl"


def results_path(config: Config) -> Path:
    """Where ``hedge check`` records results and the routing gate reads them: under ``state.dir``."""
    return Path(config.state.dir) / "conformance.jsonl"


@dataclass(frozen=True, slots=True)
class ConformanceRecord:
    """One case's result on one deployment in one run."""

    checked_at: datetime
    """When the run started (timezone-aware, UTC)."""
    hedge_version: str
    deployment: str
    """``PROVIDER/MODEL``, as :attr:`hedge.routing.deployment.Deployment.id`."""
    case: str
    status: str
    """``pass``, ``fail`` or ``skip``."""
    reason: str
    latency_ms: float
    required: bool = True

    def to_json(self) -> bytes:
        data = asdict(self)
        data["checked_at"] = self.checked_at.isoformat()
        data["latency_ms"] = round(self.latency_ms, 1)
        return orjson.dumps(data)


class Latest(NamedTuple):
    status: str
    checked_at: datetime


class ResultStore(Protocol):
    def append(self, records: Iterable[ConformanceRecord]) -> None:
        """Keep a run's records."""
        ...

    def latest(self, deployment_id: str) -> dict[str, Latest]:
        """For each case ever checked on ``deployment_id``: its most recent status and when it was checked."""
        ...


class JsonlResultStore:
    """A JSON-lines file, appended to; a line that cannot be read (e.g. cut short) is ignored."""

    def __init__(self, path: str | Path = DEFAULT_PATH) -> None:
        self.path = Path(path)

    def append(self, records: Iterable[ConformanceRecord]) -> None:
        lines = b"".join(r.to_json() + b"\n" for r in records)
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as f:
            f.write(lines)

    def latest(self, deployment_id: str) -> dict[str, Latest]:
        out: dict[str, Latest] = {}
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return out
        for line in raw.splitlines():
            with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                data = orjson.loads(line)
                if data["deployment"] != deployment_id:
                    continue
                checked_at = datetime.fromisoformat(data["checked_at"])
                case = str(data["case"])
                previous = out.get(case)
                if previous is None or checked_at >= previous.checked_at:
                    out[case] = Latest(str(data["status"]), checked_at)
        return out
