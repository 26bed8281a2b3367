"""Optional extras: whether the modules an opt-in feature needs are installed.

A leaf (it imports nothing of Hedge's), so the config can check an extra while it validates
and the feature's own module, which imports the config, can check it again at start-up,
without either importing the other.
"""

from __future__ import annotations

import importlib

TRACING_INSTALL_HINT = "pip install 'hedge-gateway[tracing]'"

TRACING_MODULES = (
    "opentelemetry.trace",
    "opentelemetry.sdk.trace",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
)
"""What ``observe/tracing.py`` imports when tracing is on."""


def missing_extra() -> str | None:
    """Why tracing cannot run in this environment (the ``tracing`` extra is missing), or None."""
    for name in TRACING_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            return (
                f"tracing needs OpenTelemetry, which is not installed (no module {name}); "
                + TRACING_INSTALL_HINT
            )
    return None
