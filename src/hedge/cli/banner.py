"""What ``hedge serve`` and ``hedge mock`` say when they start: what runs, where, and what is off.

A new user sees at once whether the config says what they meant (which providers, which aliases
and strategies, where state lives); an on-call engineer sees what is disabled and the setting that
would turn it on. No secret is printed: addresses only, passwords masked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hedge.cli.preflight import shown
from hedge.config import Config
from hedge.gateway.runtime import database_url

if TYPE_CHECKING:
    from hedge.mock.state import Knobs

_MOCK_BASE_PATH = {"openai": "/v1"}
"""What to append to the mock's address for a provider's ``base_url`` (the other styles' adapters
add their own API paths)."""


def mock_banner(style: str, host: str, port: int, knobs: Knobs) -> str:
    """One line saying what the mock is, where to point a provider at it, and how it misbehaves."""
    behaviour = []
    if knobs.latency_ms:
        behaviour.append(f"latency {knobs.latency_ms:g} ms")
    if knobs.fail_rate:
        failing = f"{knobs.fail_status} ({knobs.fail_mode})"
        behaviour.append(f"fails {knobs.fail_rate:.0%} of requests with {failing}")
    if knobs.api_key:
        behaviour.append("requires its API key")
    if knobs.quirks:
        behaviour.append("quirks: " + ", ".join(knobs.quirks))
    if knobs.quality is not None:
        behaviour.append(f"answers 'Answer with: X' right {knobs.quality:.0%} of the time")
    url = f"http://{host}:{port}{_MOCK_BASE_PATH.get(style, '')}"
    return f"hedge mock: {style}-style upstream, base_url {url} ({'; '.join(behaviour) or 'always answers'})"


def serve_banner(config: Config, config_path: str, host: str, port: int, workers: int) -> str:
    """The start-up summary of ``hedge serve``, a few short lines."""
    state = config.state
    processes = f"{workers} worker{'s' if workers != 1 else ''}"
    lines = [f"hedge serve: http://{host}:{port}/v1 ({processes}), config {config_path}"]
    providers = ", ".join(f"{name} ({p.style}, {shown(p.base_url)})" for name, p in config.providers.items())
    lines.append(f"  providers: {providers}")
    aliases = ", ".join(
        f"{name} ({model.strategy}, {len(model.deployments)})" for name, model in config.models.items()
    )
    lines.append(f"  aliases:   {aliases}  (strategy, deployments)")
    lines.append(f"  state:     ledger and keys: {shown(database_url(config))}")
    shared = f"Redis {shown(state.redis_url)}" if state.redis_url else "this process's memory"
    lines.append(f"             counters, cache, breakers: {shared}")
    off = []
    if not state.redis_url and workers > 1:
        off.append("sharing limits between workers (set state.redis_url)")
    if not config.tracing.otlp_endpoint:
        off.append("tracing (set tracing.otlp_endpoint)")
    if not config.server.log_bodies:
        off.append("the body log (set server.log_bodies)")
    if off:
        lines.append(f"  off:       {'; '.join(off)}")
    return "\n".join(lines)
