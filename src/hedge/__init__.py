"""Hedge: an OpenAI-compatible LLM gateway with cost-aware routing, failover and conformance checks."""

__version__ = "0.1.0"
