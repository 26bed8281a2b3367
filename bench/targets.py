"""The processes under test: mock upstreams, Hedge, and a LiteLLM proxy in its own virtualenv.

Every process is started in its own session (process group) with its output in
a log file, and stopped by its own id: SIGTERM to its group, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
TMP = RESULTS / "tmp"
LITELLM_VENV = BENCH / ".venv-litellm"
# The newest release whose `proxy` extra resolves from the package index this was written against
# (later ones need `litellm-proxy`/`litellm-proxy-extras` builds it did not have). Override with
# --litellm-spec. 1.82.7 and 1.82.8 were malicious uploads and are refused whatever the spec says.
LITELLM_SPEC = "litellm[proxy]==1.108.7"
LITELLM_BAD_VERSIONS = {"1.82.7", "1.82.8"}

MASTER_KEY = "sk-bench"
UPSTREAM_MODEL = "bench-model"
HOST = "127.0.0.1"


class StartError(RuntimeError):
    """A process under test could not be installed or started; the message says why."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


def _spawn(
    name: str, cmd: list[str], port: int, env: dict[str, str] | None = None, unset: tuple[str, ...] = ()
) -> Proc:
    # Each process runs in a fresh directory of its own, so whatever state it keeps relative to its
    # working directory (Hedge's default SQLite ledger under .hedge/) starts empty and is not shared.
    workdir = TMP / name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    log = TMP / f"{name}.log"
    fh = open(log, "wb")  # noqa: SIM115 - owned by the child for its lifetime
    popen = subprocess.Popen(
        cmd,
        stdout=fh,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset},
        cwd=workdir,
    )
    fh.close()
    return Proc(name, popen, port, log)


def http(
    method: str, url: str, body: Any = None, key: str | None = MASTER_KEY, timeout: float = 10.0
) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    if key:
        req.add_header("authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status: int = resp.status
            return status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(proc: Proc, path: str, timeout: float, key: str | None = MASTER_KEY) -> float:
    """Poll ``path`` until it answers 200; raise StartError if the process dies or time runs out."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StartError(f"{proc.name} exited with code {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            status, _ = http("GET", proc.base + path, key=key, timeout=2)
            if status == 200:
                return time.monotonic() - t0
            last = f"HTTP {status}"
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(0.25)
    raise StartError(f"{proc.name} not ready after {timeout:.0f}s ({last}):\n{proc.log_tail()}")


def probe_chat(proc: Proc, model: str) -> None:
    """One whole and one streamed completion must work before the target is measured."""
    body = {"model": model, "messages": [{"role": "user", "content": "probe"}], "max_tokens": 8}
    status, raw = http("POST", proc.base + "/v1/chat/completions", body, timeout=30)
    if status != 200 or b'"choices"' not in raw:
        raise StartError(f"{proc.name}: probe request failed: HTTP {status} {raw[:300]!r}")
    status, raw = http("POST", proc.base + "/v1/chat/completions", {**body, "stream": True}, timeout=30)
    if status != 200 or b"[DONE]" not in raw:
        raise StartError(f"{proc.name}: probe stream failed: HTTP {status} {raw[:300]!r}")


# --- mock upstreams and Hedge ------------------------------------------------------------------


def start_mock(name: str, latency_ms: float) -> Proc:
    port = free_port()
    cmd = [sys.executable, "-m", "hedge", "mock", "--style", "openai", "--host", HOST, "--port", str(port)]
    cmd += ["--latency-ms", str(latency_ms), "--log-level", "warning"]
    proc = _spawn(name, cmd, port)
    wait_ready(proc, "/v1/models", 30)
    return proc


def hedge_config(upstreams: dict[str, Proc]) -> dict[str, Any]:
    """One openai-style provider per mock and one alias per provider, named like the mock."""
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            name: {"style": "openai", "base_url": f"{mock.base}/v1", "api_key": "sk-x"}
            for name, mock in upstreams.items()
        },
        "models": {
            name: {"deployments": [{"provider": name, "model": UPSTREAM_MODEL}]} for name in upstreams
        },
    }


def start_hedge(
    upstreams: dict[str, Proc],
    workers: int = 1,
    name: str = "hedge",
    server: dict[str, Any] | None = None,
    provider: dict[str, Any] | None = None,
) -> Proc:
    """``server`` and ``provider`` settings are added to the config's server and to every provider."""
    TMP.mkdir(parents=True, exist_ok=True)
    cfg = TMP / f"{name}.yaml"
    config = hedge_config(upstreams)
    config["server"].update(server or {})
    for settings in config["providers"].values():
        settings.update(provider or {})
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    cmd = [sys.executable, "-m", "hedge", "serve", "--config", str(cfg), "--host", HOST, "--port", str(port)]
    cmd += ["--workers", str(workers), "--log-level", "warning"]
    proc = _spawn(name, cmd, port)
    wait_ready(proc, "/health", 60)
    for alias in upstreams:
        probe_chat(proc, alias)
    return proc


# --- LiteLLM -----------------------------------------------------------------------------------


def litellm_python() -> Path:
    return LITELLM_VENV / "bin" / "python"


def litellm_version() -> str | None:
    py = litellm_python()
    if not py.exists():
        return None
    try:
        out = subprocess.run(
            [str(py), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _spec_version(spec: str) -> str | None:
    return spec.split("==", 1)[1].strip() if "==" in spec else None


def _check_venv_safety() -> None:
    """Refuse to run a LiteLLM install that carries the known malicious start-up hook."""
    for site in LITELLM_VENV.glob("lib/python*/site-packages"):
        if (site / "litellm_init.pth").exists():
            raise StartError(
                f"{site}/litellm_init.pth present: a compromised LiteLLM build; delete {LITELLM_VENV}"
            )


def ensure_litellm(spec: str = LITELLM_SPEC, timeout: float = 1200.0, log: Path | None = None) -> str:
    """Create ``bench/.venv-litellm`` and install ``spec`` there (skipped if already installed)."""
    wanted = _spec_version(spec)
    if wanted in LITELLM_BAD_VERSIONS:
        raise StartError(f"refusing to install litellm {wanted}: a known malicious release")
    have = litellm_version()
    if (
        have is not None
        and (wanted is None or have == wanted)
        and (LITELLM_VENV / "bin" / "litellm").exists()
    ):
        _check_venv_safety()
        return have
    log = log or TMP / "litellm-install.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    steps: list[list[str]] = []
    if not litellm_python().exists():
        steps.append([sys.executable, "-m", "venv", str(LITELLM_VENV)])
    pip = [str(litellm_python()), "-m", "pip", "install", "--disable-pip-version-check"]
    steps.append([*pip, "--upgrade", "pip"])
    steps.append([*pip, spec, *(f"litellm!={v}" for v in sorted(LITELLM_BAD_VERSIONS))])
    with open(log, "ab") as fh:
        for cmd in steps:
            fh.write(("$ " + " ".join(cmd) + "\n").encode())
            fh.flush()
            left = deadline - time.monotonic()
            try:
                code = subprocess.run(
                    cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=max(left, 1)
                ).returncode
            except subprocess.TimeoutExpired:
                raise StartError(f"installing {spec} took over {timeout:.0f}s (log: {log})") from None
            if code != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-8:])
                raise StartError(f"`{' '.join(cmd[-3:])}` failed with code {code} (log: {log}):\n{tail}")
    have = litellm_version()
    if have is None:
        raise StartError(f"litellm is not importable after installing {spec} (log: {log})")
    if have in LITELLM_BAD_VERSIONS:
        raise StartError(f"pip resolved litellm {have}, a known malicious release; not running it")
    _check_venv_safety()
    return have


def litellm_config(upstreams: dict[str, Proc]) -> dict[str, Any]:
    """The same mocks as openai-compatible providers; logging, spend tracking and the DB off."""
    return {
        "model_list": [
            {
                "model_name": name,
                "litellm_params": {
                    "model": f"openai/{UPSTREAM_MODEL}",
                    "api_base": f"{mock.base}/v1",
                    "api_key": "sk-x",
                },
            }
            for name, mock in upstreams.items()
        ],
        "litellm_settings": {
            "set_verbose": False,
            "json_logs": False,
            "turn_off_message_logging": True,
            "request_timeout": 60,
            "num_retries": 0,
        },
        "general_settings": {
            "master_key": MASTER_KEY,
            "disable_spend_logs": True,
            "disable_error_logs": True,
            "store_model_in_db": False,
            "background_health_checks": False,
        },
    }


LITELLM_ENV = {
    # Use the cost map shipped in the package instead of fetching it (no internet here).
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOG": "ERROR",
    "LITELLM_TELEMETRY": "False",
    "DISABLE_SCHEMA_UPDATE": "True",
    "STORE_MODEL_IN_DB": "False",
}
# No database, no cache, no exporters: whatever the calling shell has set, the proxy does not see it.
LITELLM_UNSET = ("DATABASE_URL", "REDIS_HOST", "REDIS_URL", "OTEL_EXPORTER", "OTEL_ENDPOINT")


def start_litellm(upstreams: dict[str, Proc], timeout: float = 180.0) -> Proc:
    TMP.mkdir(parents=True, exist_ok=True)
    cfg = TMP / "litellm.yaml"
    cfg.write_text(yaml.safe_dump(litellm_config(upstreams), sort_keys=False))
    port = free_port()
    exe = LITELLM_VENV / "bin" / "litellm"
    cmd = [str(exe), "--config", str(cfg), "--host", HOST, "--port", str(port), "--num_workers", "1"]
    proc = _spawn("litellm", cmd, port, LITELLM_ENV, LITELLM_UNSET)
    wait_ready(proc, "/health/liveliness", timeout, key=None)
    for alias in upstreams:
        probe_chat(proc, alias)
    return proc


def stop_all(procs: list[Proc]) -> None:
    for proc in reversed(procs):
        with contextlib.suppress(Exception):
            proc.stop()
