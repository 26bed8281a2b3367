"""Durable state: the spend ledger, virtual keys and conformance results, in SQLite or PostgreSQL."""
