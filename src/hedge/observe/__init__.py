"""Seeing what happened: per-request records and aggregates."""
