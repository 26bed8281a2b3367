"""Chaos test: load through a real gateway while its database, its Redis and the gateway itself fail.

    . .venv/bin/activate && python bench/chaos.py [--quick] [--json out.json]

The ledger promises that what a client was served is booked: a clean shutdown loses
nothing, even with the database down (records wait in the spool under ``state.dir``),
and a crash loses at most ``flush_interval_s`` of traffic. This script checks that
promise end to end with real processes, all on 127.0.0.1:

* one ``hedge mock --style openai`` upstream;
* a private ``redis-server`` on a free port (killed and restarted; the shared one is never touched);
* PostgreSQL (the shared server, a schema of this run's own, dropped at the end) reached through the
  TCP fault proxy of ``tests/faultproxy.py``, which can refuse connections or swallow bytes;
* ``hedge serve`` on PostgreSQL (through the proxy) and the private Redis.

A load driver keeps a fixed number of chat completions in flight, half with the master key, half
with a virtual key (so the key lookup and the Redis budget counters are on the path), and notes
for every request its phase, status, error code and ``x-hedge-request-id``. The phases: steady;
PostgreSQL refused; PostgreSQL blackholed; PostgreSQL back; Redis killed; Redis back; the gateway
stopped with SIGTERM while PostgreSQL is refused (then restarted on the same state dir); steady;
the gateway killed with SIGKILL (then restarted); steady. Then it waits until the ledger holds
every served id or stops growing, reads ``hedge_requests`` straight from PostgreSQL, and prints
per phase: requests sent, served (200), client-visible 5xx by code, connections refused while the
gateway was down, served requests found in the ledger and those lost; ``--json`` writes the same.

It exits 1 when an invariant fails: a record lost outside the SIGKILL phase, more lost there than
``flush_interval_s`` of that phase's traffic (with a margin), any 500, or a connection error while
the gateway was up; 2 when ``redis-server`` is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import asyncpg
import httpx
import yaml

from hedge.cli.net import free_port

ROOT = Path(__file__).resolve().parent.parent
PG_BASE = os.environ.get("HEDGE_CHAOS_PG", "postgresql://postgres@127.0.0.1:5432/test")
MASTER_KEY = "sk-hedge-chaos"
FLUSH_INTERVAL_S = 0.5
DB_TIMEOUT_S = 1.0
SHUTDOWN_TIMEOUT_S = 2.0
KEY_CACHE_TTL_S = 0.5
MOCK_LATENCY_MS = 10
CONCURRENCY = 16
KILL_MARGIN = 1.5
"""The SIGKILL phase may lose ``flush_interval_s * KILL_MARGIN`` seconds of its traffic (plus one record):
a record waits up to one interval in memory, then for the write itself to commit."""
CLIENT_TIMEOUT_S = 30.0
"""Per request; far above anything expected (``db_timeout_s`` is the longest wait on an outage)."""
EXPECTED_5XX = frozenset({"limits_unavailable", "no_deployment_available"})
"""What an outage may show a client: 503s that say which store is unavailable."""
START_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 60.0
SETTLE_TIMEOUT_S = 60.0
QUICK_PHASE_S = 2.5
FULL_PHASE_S = 10.0


# -- the fault proxy the outage tests use ----------------------------------------------------------


class Proxy(Protocol):
    port: int

    def start(self) -> Proxy: ...

    def set_mode(self, mode: str) -> None: ...

    def close(self) -> None: ...


def _fault_proxy(target_host: str, target_port: int) -> Proxy:
    """``tests/faultproxy.py``'s proxy, loaded by path: one implementation for the tests and this script."""
    spec = importlib.util.spec_from_file_location("faultproxy", ROOT / "tests" / "faultproxy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return cast(Proxy, module.FaultProxy(target_host, target_port))


# -- processes -------------------------------------------------------------------------------------


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def _until(what: str, check: Callable[[], Any], within_s: float, log: Path | None = None) -> None:
    """Poll an async or sync ``check`` until it is true; raise after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"timed out after {within_s:.0f} s waiting for {what}\n{_tail(log) if log else ''}"
            )
        await asyncio.sleep(0.05)


@dataclass
class Proc:
    """A child process this script started, stopped by its own pid and nothing else."""

    name: str
    argv: list[str]
    log: Path
    ready: Callable[[], Any]
    popen: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            out.write(f"--- {time.strftime('%H:%M:%S')} starting: {' '.join(self.argv)}\n".encode())
            # Popen returns once the child is forked; only the readiness poll below waits.
            self.popen = subprocess.Popen(  # noqa: ASYNC220
                self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
            )
        popen = self.popen

        async def up() -> bool:
            if popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {popen.returncode}:\n{_tail(self.log)}")
            result = self.ready()
            return bool(await result if asyncio.iscoroutine(result) else result)

        await _until(f"{self.name} to be ready", up, START_TIMEOUT_S, self.log)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        self.popen.send_signal(sig)

    async def wait(self, within_s: float = EXIT_TIMEOUT_S) -> int:
        assert self.popen is not None
        popen = self.popen
        await _until(f"{self.name} to exit", lambda: popen.poll() is not None, within_s, self.log)
        return popen.returncode

    def stop(self) -> None:
        """Best effort at the end: TERM, then KILL if it does not go within a few seconds."""
        if not self.running:
            return
        assert self.popen is not None
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


async def _http_ok(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            return (await client.get(url)).status_code < 500
    except httpx.HTTPError:
        return False


async def _redis_ping(port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 1.0)).startswith(b"+PONG")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


# -- the load --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    phase: str
    key: str  # "master" | "virtual"
    sent_at: float
    done_at: float = 0.0
    status: int | None = None
    code: str | None = None
    request_id: str | None = None
    error: str | None = None
    """Exception class when no response came back."""
    gateway_down: bool = False
    """The connection failed while the gateway was stopped or restarting."""


@dataclass
class Load:
    """Keeps ``concurrency`` chat completions in flight; every request's outcome is kept."""

    url: str
    keys: dict[str, str]
    concurrency: int
    phase: str = "warm-up"
    down: bool = False
    """Set while the gateway is being stopped or started: connection errors then are expected."""
    down_since: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=CLIENT_TIMEOUT_S) as client:
            kinds = list(self.keys)
            await asyncio.gather(
                *(self._worker(client, kinds[i % len(kinds)]) for i in range(self.concurrency))
            )

    def stop(self) -> None:
        self._stop.set()

    async def _worker(self, client: httpx.AsyncClient, kind: str) -> None:
        headers = {"authorization": f"Bearer {self.keys[kind]}"}
        while not self._stop.is_set():
            n = next(self._counter)
            body = {
                "model": "chat",
                "max_tokens": 16,
                "messages": [{"role": "user", "content": f"chaos {n}"}],
            }
            out = Outcome(self.phase, kind, time.monotonic())
            down_at_send = self.down
            try:
                resp = await client.post(f"{self.url}/v1/chat/completions", json=body, headers=headers)
            except httpx.TransportError as exc:
                out.error = type(exc).__name__
                out.gateway_down = down_at_send or self.down or self.down_since > out.sent_at
            else:
                out.status = resp.status_code
                out.request_id = resp.headers.get("x-hedge-request-id")
                if resp.status_code != 200:
                    out.code = _error_code(resp)
            out.done_at = time.monotonic()
            self.outcomes.append(out)
            if out.error:  # back off a little rather than spin on a closed port
                await asyncio.sleep(0.05)


def _error_code(resp: httpx.Response) -> str:
    try:
        error = resp.json()["error"]
        return str(error.get("code") or error.get("type") or "?")
    except (ValueError, KeyError, TypeError, AttributeError):
        return "not-openai-shaped"


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class Rig:
    """Everything one run starts, so that all of it is stopped whatever happens."""

    tmp: Path
    schema: str
    proxy: Proxy
    mock: Proc
    redis: Proc
    gateway: Proc
    gateway_url: str
    state_dir: Path

    def stop(self) -> None:
        for proc in (self.gateway, self.mock, self.redis):
            with contextlib.suppress(Exception):
                proc.stop()
        with contextlib.suppress(Exception):
            self.proxy.close()


def _config(mock_port: int, db_url: str, redis_port: int, state_dir: Path) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "up": {"style": "openai", "base_url": f"http://127.0.0.1:{mock_port}/v1", "api_key": "sk-up"}
        },
        "models": {
            "chat": {
                "deployments": [{"provider": "up", "model": "gpt-4o", "price": {"input": 1, "output": 2}}]
            }
        },
        "state": {
            "database_url": db_url,
            "redis_url": f"redis://127.0.0.1:{redis_port}/0",
            "flush_interval_s": FLUSH_INTERVAL_S,
            "db_timeout_s": DB_TIMEOUT_S,
            "shutdown_timeout_s": SHUTDOWN_TIMEOUT_S,
            "key_cache_ttl_s": KEY_CACHE_TTL_S,
            "dir": str(state_dir),
        },
    }


@contextlib.asynccontextmanager
async def rig(keep: bool = False) -> AsyncIterator[Rig]:
    tmp = Path(tempfile.mkdtemp(prefix="hedge-chaos-"))
    schema = "chaos_" + secrets.token_hex(4)
    conn = await asyncpg.connect(PG_BASE)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    pg_host, pg_port = _host_port(PG_BASE)
    proxy = _fault_proxy(pg_host, pg_port).start()
    mock_port, redis_port, gw_port = free_port(), free_port(), free_port()
    state_dir = tmp / "state"
    db_url = f"postgresql://postgres@127.0.0.1:{proxy.port}/{PG_BASE.rsplit('/', 1)[1]}?search_path={schema}"
    config_path = tmp / "hedge.yaml"
    config_path.write_text(yaml.safe_dump(_config(mock_port, db_url, redis_port, state_dir)))
    py = sys.executable
    mock = Proc(
        "mock",
        [
            py,
            "-m",
            "hedge",
            "mock",
            "--style",
            "openai",
            "--port",
            str(mock_port),
            "--latency-ms",
            str(MOCK_LATENCY_MS),
        ],
        tmp / "mock.log",
        lambda: _http_ok(f"http://127.0.0.1:{mock_port}/_mock/stats"),
    )
    redis = Proc(
        "redis",
        [
            "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(tmp),
        ],
        tmp / "redis.log",
        lambda: _redis_ping(redis_port),
    )
    gw_url = f"http://127.0.0.1:{gw_port}"
    gateway = Proc(
        "gateway",
        [
            py,
            "-m",
            "hedge",
            "serve",
            "--config",
            str(config_path),
            "--port",
            str(gw_port),
            "--log-level",
            "warning",
        ],
        tmp / "gateway.log",
        lambda: _http_ok(f"{gw_url}/health"),
    )
    r = Rig(tmp, schema, proxy, mock, redis, gateway, gw_url, state_dir)
    ok = False
    try:
        for proc in (mock, redis, gateway):
            await proc.start()
        yield r
        ok = True
    finally:
        r.stop()
        with contextlib.suppress(Exception):
            conn = await asyncpg.connect(PG_BASE)
            try:
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            finally:
                await conn.close()
        if ok and not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:  # kept for a look after a failure, or when asked
            print(f"chaos: logs and state kept in {tmp}", file=sys.stderr)


def _host_port(url: str) -> tuple[str, int]:
    parsed = httpx.URL(url)
    return parsed.host or "127.0.0.1", parsed.port or 5432


async def _create_key(url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.post(
            f"{url}/admin/keys",
            json={"name": "chaos", "budget_usd": 1_000_000, "budget_period": "total"},
            headers={"authorization": f"Bearer {MASTER_KEY}"},
        )
    if resp.status_code != 201:
        raise RuntimeError(f"could not create the virtual key: {resp.status_code} {resp.text}")
    return str(resp.json()["key"])


async def _ledger_ids(schema: str) -> set[str]:
    conn = await asyncpg.connect(PG_BASE)
    try:
        rows = await conn.fetch(f"SELECT request_id FROM {schema}.hedge_requests")
    finally:
        await conn.close()
    return {row["request_id"] for row in rows}


def _spooled(state_dir: Path) -> int:
    """Records waiting in the ledger's spool files (one JSON line each)."""
    total = 0
    for path in (state_dir / "spool").glob("ledger-*.jsonl"):
        with contextlib.suppress(OSError):
            total += path.read_bytes().count(b"\n")
    return total


@dataclass
class Marks:
    """Times and measurements of the scenario, beside the per-request outcomes."""

    phases: list[tuple[str, float, float]] = field(default_factory=list)
    term_exit_s: float | None = None
    term_exit_code: int | None = None
    kill_phase_start: float = 0.0
    kill_at: float = 0.0
    restarts: dict[str, float] = field(default_factory=dict)
    settle_s: float = 0.0
    settled_by: str = ""


async def scenario(r: Rig, load: Load, phase_s: float, marks: Marks) -> None:
    async def phase(name: str, seconds: float, before: Callable[[], Any] | None = None) -> None:
        load.phase = name
        start = time.monotonic()
        if before is not None:
            result = before()
            if asyncio.iscoroutine(result):
                await result
        await asyncio.sleep(seconds)  # the phase's load runs meanwhile
        marks.phases.append((name, start, time.monotonic()))

    async def proxy_mode(mode: str) -> None:
        await asyncio.to_thread(r.proxy.set_mode, mode)

    async def restart_gateway(label: str) -> None:
        began = time.monotonic()
        await r.gateway.start()
        marks.restarts[label] = time.monotonic() - began
        load.down = False

    async def kill_redis() -> None:
        r.redis.signal(signal.SIGKILL)
        await r.redis.wait()

    async def stop_gateway(name: str, sig: signal.Signals, refuse_db: bool) -> None:
        """``name``: half a phase of load, the signal, the exit, the restart, half a phase more."""
        load.phase = name
        start = time.monotonic()
        if refuse_db:
            await proxy_mode("refuse")
        await asyncio.sleep(phase_s / 2)
        load.down, load.down_since = True, time.monotonic()
        signalled = time.monotonic()
        if sig == signal.SIGKILL:
            marks.kill_phase_start, marks.kill_at = start, signalled
        r.gateway.signal(sig)
        code = await r.gateway.wait()
        if sig == signal.SIGTERM:
            marks.term_exit_s, marks.term_exit_code = time.monotonic() - signalled, code
        if refuse_db:
            await proxy_mode("pass")
        await restart_gateway(name)
        await asyncio.sleep(phase_s / 2)
        marks.phases.append((name, start, time.monotonic()))

    await phase("steady", phase_s)
    await phase("pg refused", phase_s, lambda: proxy_mode("refuse"))
    await phase("pg blackholed", phase_s, lambda: proxy_mode("blackhole"))
    await phase("pg back", phase_s, lambda: proxy_mode("pass"))
    await phase("redis killed", phase_s, kill_redis)
    await phase("redis back", phase_s, r.redis.start)
    await stop_gateway("gateway TERM", signal.SIGTERM, refuse_db=True)
    await phase("steady 2", phase_s)
    await stop_gateway("gateway KILL", signal.SIGKILL, refuse_db=False)
    await phase("steady 3", phase_s)


async def settle(r: Rig, served: set[str], marks: Marks) -> set[str]:
    """Wait until the ledger holds every served id, or has stopped growing with the spool empty."""
    began = time.monotonic()
    quiet_s = max(2.0, 4 * FLUSH_INTERVAL_S)
    last_count, last_change = -1, time.monotonic()
    ids: set[str] = set()
    while True:
        ids = await _ledger_ids(r.schema)
        now = time.monotonic()
        if served <= ids:
            marks.settled_by = "every served id booked"
            break
        if len(ids) != last_count:
            last_count, last_change = len(ids), now
        elif now - last_change >= quiet_s and _spooled(r.state_dir) == 0:
            marks.settled_by = f"ledger unchanged for {quiet_s:.1f} s, spool empty"
            break
        if now - began > SETTLE_TIMEOUT_S:
            marks.settled_by = f"gave up after {SETTLE_TIMEOUT_S:.0f} s ({_spooled(r.state_dir)} spooled)"
            break
        await asyncio.sleep(0.2)
    marks.settle_s = time.monotonic() - began
    return ids


# -- the report ------------------------------------------------------------------------------------


def _summary(name: str, seconds: float, outs: list[Outcome], ledger: set[str]) -> dict[str, Any]:
    served = [o.request_id for o in outs if o.status == 200 and o.request_id]
    errors_5xx = Counter(f"{o.status} {o.code}" for o in outs if o.status is not None and o.status >= 500)
    other = Counter(f"{o.status} {o.code}" for o in outs if o.status is not None and 200 < o.status < 500)
    in_ledger = sum(1 for rid in served if rid in ledger)
    return {
        "phase": name,
        "seconds": round(seconds, 2),
        "sent": len(outs),
        "served": len(served),
        "served_per_s": round(len(served) / seconds, 1) if seconds > 0 else 0.0,
        "served_by_key": dict(sorted(Counter(o.key for o in outs if o.status == 200).items())),
        "errors_5xx": dict(sorted(errors_5xx.items())),
        "status_500": sum(1 for o in outs if o.status == 500),
        "other_status": dict(sorted(other.items())),
        "refused_while_down": sum(1 for o in outs if o.error and o.gateway_down),
        "conn_errors_while_up": sum(1 for o in outs if o.error and not o.gateway_down),
        "in_ledger": in_ledger,
        "lost": len(served) - in_ledger,
    }


def kill_loss_bound(served_per_s: float) -> int:
    """Records a SIGKILL may lose: ``flush_interval_s`` of traffic, with the margin (see ``KILL_MARGIN``)."""
    return math.ceil(served_per_s * FLUSH_INTERVAL_S * KILL_MARGIN) + 1


def report(load: Load, marks: Marks, ledger: set[str], quick: bool, phase_s: float) -> dict[str, Any]:
    by_phase: dict[str, list[Outcome]] = {}
    for o in load.outcomes:
        by_phase.setdefault(o.phase, []).append(o)
    phases = [
        _summary(name, end - start, by_phase.get(name, []), ledger) for name, start, end in marks.phases
    ]
    total_s = marks.phases[-1][2] - marks.phases[0][1] if marks.phases else 0.0
    measured = [o for name, _, _ in marks.phases for o in by_phase.get(name, [])]
    total = _summary("total", total_s, measured, ledger)
    before_kill = [
        o for o in by_phase.get("gateway KILL", []) if o.status == 200 and o.done_at <= marks.kill_at
    ]
    window = marks.kill_at - marks.kill_phase_start
    kill_rate = len(before_kill) / window if window > 0 else 0.0
    kill = next((p for p in phases if p["phase"] == "gateway KILL"), {"lost": 0})
    term = next((p for p in phases if p["phase"] == "gateway TERM"), {"lost": 0})
    bound = kill_loss_bound(kill_rate)
    lost_at = [
        o.done_at for o in by_phase.get("gateway KILL", []) if o.status == 200 and o.request_id not in ledger
    ]
    # A response already on its way may reach the client just after the signal: that counts as 0 s.
    oldest_lost_s = max(0.0, marks.kill_at - min(lost_at)) if lost_at else 0.0
    checks = [
        ("no record lost across SIGTERM", term["lost"] == 0, f"{term['lost']} lost"),
        (
            "no record lost outside the SIGKILL phase",
            sum(p["lost"] for p in phases if p["phase"] != "gateway KILL") == 0,
            ", ".join(f"{p['phase']}: {p['lost']}" for p in phases if p["lost"]) or "none lost",
        ),
        (
            f"SIGKILL loses at most {FLUSH_INTERVAL_S} s of traffic (x{KILL_MARGIN} + 1)",
            kill["lost"] <= bound,
            f"{kill['lost']} lost, bound {bound} at {kill_rate:.0f} served/s",
        ),
        ("no 500", total["status_500"] == 0, f"{total['status_500']} x 500"),
        (
            "every 5xx is an expected 503",
            all(
                k.split(" ", 1)[0] == "503" and k.split(" ", 1)[1] in EXPECTED_5XX
                for k in total["errors_5xx"]
            ),
            ", ".join(total["errors_5xx"]) or "none",
        ),
        (
            "no connection error while the gateway was up",
            total["conn_errors_while_up"] == 0,
            f"{total['conn_errors_while_up']}",
        ),
    ]
    return {
        "quick": quick,
        "phase_s": phase_s,
        "concurrency": load.concurrency,
        "flush_interval_s": FLUSH_INTERVAL_S,
        "db_timeout_s": DB_TIMEOUT_S,
        "shutdown_timeout_s": SHUTDOWN_TIMEOUT_S,
        "key_cache_ttl_s": KEY_CACHE_TTL_S,
        "mock_latency_ms": MOCK_LATENCY_MS,
        "phases": phases,
        "total": total,
        "ledger_rows": len(ledger),
        "term_exit_s": round(marks.term_exit_s, 2) if marks.term_exit_s is not None else None,
        "term_exit_code": marks.term_exit_code,
        "restart_s": {k: round(v, 2) for k, v in marks.restarts.items()},
        "kill": {
            "served_per_s_before": round(kill_rate, 1),
            "lost": kill["lost"],
            "bound": bound,
            "oldest_lost_s_before_kill": round(oldest_lost_s, 3),
        },
        "settle_s": round(marks.settle_s, 2),
        "settled_by": marks.settled_by,
        "checks": [{"check": c, "ok": ok, "detail": d} for c, ok, d in checks],
        "ok": all(ok for _, ok, _ in checks),
    }


def _status_note(code: int | None) -> str:
    if code == -signal.SIGTERM:
        return ": uvicorn re-raises the signal once its clean shutdown is done"
    return ""


def render(result: dict[str, Any]) -> str:
    head = ["phase", "s", "sent", "served", "5xx", "refused while down", "in ledger", "lost", "5xx by code"]
    rows = []
    for p in [*result["phases"], result["total"]]:
        codes = ", ".join(f"{k}: {v}" for k, v in p["errors_5xx"].items())
        if p["other_status"]:
            codes += (", " if codes else "") + ", ".join(f"{k}: {v}" for k, v in p["other_status"].items())
        if p["conn_errors_while_up"]:
            codes += (", " if codes else "") + f"connection errors while up: {p['conn_errors_while_up']}"
        cells = [p["phase"], f"{p['seconds']:.1f}", p["sent"], p["served"], sum(p["errors_5xx"].values())]
        cells += [p["refused_while_down"], p["in_ledger"], p["lost"], codes or "-"]
        rows.append([str(c) for c in cells])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]

    def line(cells: list[str]) -> str:
        out = [
            c.ljust(w) if i in (0, len(head) - 1) else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    r, kill = result, result["kill"]
    restarts = ", ".join(f"{k} {v} s" for k, v in r["restart_s"].items())
    text = [
        f"hedge chaos test ({'quick' if r['quick'] else 'full'}): {r['concurrency']} requests in flight, "
        f"{r['phase_s']:g} s phases, flush_interval_s {r['flush_interval_s']}, db_timeout_s "
        f"{r['db_timeout_s']}, shutdown_timeout_s {r['shutdown_timeout_s']}, mock latency "
        f"{r['mock_latency_ms']} ms",
        "",
        line(head),
        line(["-" * w for w in widths]),
        *(line(row) for row in rows[:-1]),
        line(["-" * w for w in widths]),
        line(rows[-1]),
        "",
        f"SIGTERM with PostgreSQL refused: exited in {r['term_exit_s']} s (status {r['term_exit_code']}"
        f"{_status_note(r['term_exit_code'])}); restarts took {restarts}",
        f"SIGKILL: {kill['lost']} served records lost; bound {kill['bound']} ({r['flush_interval_s']} s x "
        f"{KILL_MARGIN} at {kill['served_per_s_before']} served/s, + 1); the oldest was served "
        f"{kill['oldest_lost_s_before_kill']} s before the kill",
        f"ledger: {r['ledger_rows']} rows in all; settled in {r['settle_s']} s ({r['settled_by']})",
        "",
        *(f"{'ok  ' if c['ok'] else 'FAIL'}  {c['check']}: {c['detail']}" for c in r["checks"]),
    ]
    return "\n".join(text)


async def run(quick: bool, phase_s: float, concurrency: int, keep: bool = False) -> dict[str, Any]:
    async with rig(keep) as r:
        virtual = await _create_key(r.gateway_url)
        load = Load(r.gateway_url, {"master": MASTER_KEY, "virtual": virtual}, concurrency)
        marks = Marks()
        driver = asyncio.ensure_future(load.run())
        try:
            await scenario(r, load, phase_s, marks)
        finally:
            load.stop()
            await driver
        served = {o.request_id for o in load.outcomes if o.status == 200 and o.request_id}
        ledger = await settle(r, served, marks)
        return report(load, marks, ledger, quick, phase_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_PHASE_S:g} s phases instead of {FULL_PHASE_S:g} s"
    )
    parser.add_argument("--phase-s", type=float, help="seconds per phase (overrides --quick)")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="requests kept in flight")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument(
        "--keep", action="store_true", help="keep the logs and state dir (printed) at the end"
    )
    args = parser.parse_args(argv)
    phase_s = args.phase_s or (QUICK_PHASE_S if args.quick else FULL_PHASE_S)
    if shutil.which("redis-server") is None:
        print("chaos: redis-server is not installed", file=sys.stderr)
        return 2
    result = asyncio.run(run(args.quick, phase_s, args.concurrency, args.keep))
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
