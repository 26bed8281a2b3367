"""Schema migrations, applied in order at start-up; both dialects share the SQL."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE IF NOT EXISTS hedge_requests (
                request_id TEXT PRIMARY KEY,
                ts DOUBLE PRECISION NOT NULL,
                key_id TEXT,
                team TEXT,
                alias TEXT,
                endpoint TEXT,
                provider TEXT,
                model TEXT,
                status INTEGER NOT NULL,
                stream INTEGER NOT NULL,
                prompt_tokens INTEGER NOT NULL,
                completion_tokens INTEGER NOT NULL,
                cached_tokens INTEGER NOT NULL,
                cost_usd DOUBLE PRECISION NOT NULL,
                baseline_cost_usd DOUBLE PRECISION,
                latency_ms DOUBLE PRECISION,
                ttft_ms DOUBLE PRECISION,
                attempts INTEGER NOT NULL,
                tags TEXT,
                cache_hit INTEGER NOT NULL,
                error TEXT
            )""",
            "CREATE INDEX IF NOT EXISTS hedge_requests_ts ON hedge_requests (ts)",
            "CREATE INDEX IF NOT EXISTS hedge_requests_key_ts ON hedge_requests (key_id, ts)",
            """CREATE TABLE IF NOT EXISTS hedge_keys (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                team TEXT,
                key_hash TEXT NOT NULL UNIQUE,
                key_prefix TEXT NOT NULL,
                models TEXT,
                budget_usd DOUBLE PRECISION,
                budget_period TEXT,
                rpm INTEGER,
                tpm INTEGER,
                expires_at DOUBLE PRECISION,
                created_at DOUBLE PRECISION NOT NULL,
                revoked_at DOUBLE PRECISION
            )""",
        ],
    ),
    (
        2,
        [
            # Request and response bodies, only written with server.log_bodies (truncated, never headers).
            """CREATE TABLE IF NOT EXISTS hedge_bodies (
                request_id TEXT PRIMARY KEY,
                request TEXT,
                response TEXT
            )""",
        ],
    ),
]
