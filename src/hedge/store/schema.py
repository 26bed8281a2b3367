"""Schema migrations, applied in order at start-up; both dialects share the SQL.

A step only one dialect needs is written ``{"postgresql": "..."}`` (see
:func:`hedge.store.db.statement_for`); the other dialects skip it.
"""

from __future__ import annotations

from hedge.store import rollup
from hedge.store.db import Statement

_COST_PARTS = (
    "input_cost_usd",
    "cache_read_cost_usd",
    "cache_write_cost_usd",
    "output_cost_usd",
    "reasoning_cost_usd",
    "request_fee_usd",
)

MIGRATIONS: list[tuple[int, list[Statement]]] = [
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
    (
        3,
        [
            # An upstream may report more than 2^31 tokens; SQLite's INTEGER is 64-bit already.
            {
                "postgresql": "ALTER TABLE hedge_requests ALTER COLUMN prompt_tokens TYPE BIGINT, "
                "ALTER COLUMN completion_tokens TYPE BIGINT, ALTER COLUMN cached_tokens TYPE BIGINT"
            },
            # Tags written before NUL was stripped hold a JSON "\u0000" that jsonb (and so every
            # by=tag query) rejects: remove that escape, but not an escaped backslash followed by
            # the text "u0000" (an even run of backslashes before it).
            {
                "postgresql": r"""UPDATE hedge_requests
                    SET tags = regexp_replace(tags, '(?<!\\)((?:\\\\)*)\\u0000', '\1', 'g')
                    WHERE strpos(tags, '\u0000') > 0"""
            },
        ],
    ),
    (
        4,
        [
            # Responses API responses kept for GET /v1/responses/{id} and previous_response_id
            # (hedge.store.responses): JSON texts, scoped to the key that created them ('' = master key).
            """CREATE TABLE IF NOT EXISTS hedge_responses (
                id TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                response TEXT NOT NULL,
                input_items TEXT NOT NULL,
                conversation TEXT NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS hedge_responses_created ON hedge_responses (created_at)",
        ],
    ),
    (
        5,
        [
            # Each request's route (hedge.record.RouteStep) as a JSON array of [target, outcome, detail]
            # triples, so the dashboard can count per deployment the attempts that failed, not only the
            # deployment that finally served. A column rather than a child table: the ledger stays one
            # row per request, written by the same batched INSERT (and spooled, replayed and quarantined
            # as one row). NULL on rows written before this migration; they count as they always did.
            # A nullable column without a default: no table rewrite on either database.
            "ALTER TABLE hedge_requests ADD COLUMN route TEXT",
        ],
    ),
    (
        7,
        [
            # Token classes kept apart (cache writes, reasoning: parts of prompt_tokens and
            # completion_tokens), the service tier served in, and the cost by class (hedge.record.Charges;
            # NULL on older rows), so a report can show where money went. price_missing / usage_missing
            # flag requests booked at 0 because the deployment had no price or the upstream no usage.
            # Constant defaults and nullable columns: no table rewrite on either database.
            "ALTER TABLE hedge_requests ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE hedge_requests ADD COLUMN reasoning_tokens BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE hedge_requests ADD COLUMN service_tier TEXT",
            "ALTER TABLE hedge_requests ADD COLUMN price_missing INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE hedge_requests ADD COLUMN usage_missing INTEGER NOT NULL DEFAULT 0",
            *(f"ALTER TABLE hedge_requests ADD COLUMN {c} DOUBLE PRECISION" for c in _COST_PARTS),
            # Hourly rollups (hedge.store.rollup), kept by a trigger, built from the last 35 days' rows
            # (older hours are read from the ledger until 'hedge rollups rebuild').
            *rollup.create_statements(),
            *({"sqlite": s} for s in rollup.trigger_statements("sqlite")),
            *({"postgresql": s} for s in rollup.trigger_statements("postgresql")),
            *rollup.state_statements(),
            *({"sqlite": s} for s in rollup.rebuild_statements("sqlite", rollup.MIGRATION_DAYS)),
            *({"postgresql": s} for s in rollup.rebuild_statements("postgresql", rollup.MIGRATION_DAYS)),
        ],
    ),
]
