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
        6,
        [
            # The batch lane (hedge.batch): which batch a ledger row is a line of (NULL: interactive).
            "ALTER TABLE hedge_requests ADD COLUMN batch_id TEXT",
            # Files uploaded with POST /v1/files (content on disk under state.dir/files) and the
            # batches' output and error files (rendered from their lines, so any replica serves them),
            # each scoped to the key that created it ('' = the master key).
            """CREATE TABLE IF NOT EXISTS hedge_files (
                id TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                purpose TEXT NOT NULL,
                filename TEXT NOT NULL,
                bytes BIGINT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                batch_id TEXT
            )""",
            "CREATE INDEX IF NOT EXISTS hedge_files_owner ON hedge_files (owner, created_at)",
            # One row per batch; its timestamps (in_progress_at ...) as one JSON object, its plan as
            # the scheduler last made it, and its native batch upstream if it was handed to one.
            # Counts and cost are summed from the lines, never kept twice.
            """CREATE TABLE IF NOT EXISTS hedge_batches (
                id TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                key_id TEXT,
                endpoint TEXT NOT NULL,
                model TEXT,
                input_file_id TEXT NOT NULL,
                completion_window TEXT NOT NULL,
                status TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                deadline DOUBLE PRECISION NOT NULL,
                times TEXT NOT NULL,
                metadata TEXT,
                errors TEXT,
                output_file_id TEXT,
                error_file_id TEXT,
                plan TEXT,
                native TEXT
            )""",
            "CREATE INDEX IF NOT EXISTS hedge_batches_owner ON hedge_batches (owner, created_at)",
            "CREATE INDEX IF NOT EXISTS hedge_batches_status ON hedge_batches (status)",
            # Every line of every batch: its request, its state (pending, running, succeeded, failed,
            # expired, cancelled), the claim of the replica running it and until when that claim
            # holds (a crashed replica's lines are taken over once it lapses), and its output line.
            """CREATE TABLE IF NOT EXISTS hedge_batch_lines (
                batch_id TEXT NOT NULL,
                idx INTEGER NOT NULL,
                custom_id TEXT NOT NULL,
                body TEXT,
                state TEXT NOT NULL,
                claim TEXT,
                lease_until DOUBLE PRECISION,
                not_before DOUBLE PRECISION NOT NULL,
                attempts INTEGER NOT NULL,
                replica TEXT,
                result TEXT,
                cost_usd DOUBLE PRECISION NOT NULL,
                baseline_cost_usd DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (batch_id, idx)
            )""",
            "CREATE INDEX IF NOT EXISTS hedge_batch_lines_state ON hedge_batch_lines (batch_id, state)",
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
    (
        8,
        [
            # Quality measured by `hedge eval --apply`, one row per deployment (provider/model): the
            # mean and the 95% interval over n graded items, the grader and dataset it came from.
            # The cheapest strategy's min_quality reads ci_low in preference to a configured quality.
            """CREATE TABLE IF NOT EXISTS hedge_quality (
                deployment TEXT PRIMARY KEY,
                quality DOUBLE PRECISION NOT NULL,
                ci_low DOUBLE PRECISION NOT NULL,
                ci_high DOUBLE PRECISION NOT NULL,
                n INTEGER NOT NULL,
                grader TEXT NOT NULL,
                dataset TEXT NOT NULL,
                measured_at DOUBLE PRECISION NOT NULL
            )""",
        ],
    ),
    (
        10,
        [
            # Budgets that degrade (hedge.access.gate): past budget_usd a key is served by its
            # budget_fallback alias, until hard_budget_usd refuses. Nullable columns, no rewrite.
            "ALTER TABLE hedge_keys ADD COLUMN budget_fallback TEXT",
            "ALTER TABLE hedge_keys ADD COLUMN hard_budget_usd DOUBLE PRECISION",
            # Team budgets, enforced with the key budgets of every key whose team is the name.
            """CREATE TABLE IF NOT EXISTS hedge_teams (
                name TEXT PRIMARY KEY,
                budget_usd DOUBLE PRECISION,
                budget_period TEXT,
                hard_budget_usd DOUBLE PRECISION,
                budget_fallback TEXT,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            # A team's spend is initialised from the ledger once per period, like a key's.
            "CREATE INDEX IF NOT EXISTS hedge_requests_team_ts ON hedge_requests (team, ts)",
            # Leases: at most one replica does a periodic job (a health probe of one deployment)
            # per interval, when there is no Redis to hold the lease.
            """CREATE TABLE IF NOT EXISTS hedge_leases (
                name TEXT PRIMARY KEY,
                holder TEXT NOT NULL,
                until DOUBLE PRECISION NOT NULL
            )""",
        ],
    ),
    (
        11,
        [
            # Experiments (hedge.experiments). The ledger marks shadow copies (booked apart from the
            # traffic they copy, never on a key's budget) and the experiment arm a request was
            # assigned; nullable columns without defaults, so no table rewrite.
            "ALTER TABLE hedge_requests ADD COLUMN shadow INTEGER",
            "ALTER TABLE hedge_requests ADD COLUMN experiment TEXT",
            "ALTER TABLE hedge_requests ADD COLUMN arm TEXT",
            "CREATE INDEX IF NOT EXISTS hedge_requests_experiment ON hedge_requests (experiment, ts)",
            # Spend reports read whole hours from the rollups and take shadow copies out of them.
            "CREATE INDEX IF NOT EXISTS hedge_requests_shadow ON hedge_requests (ts) WHERE shadow = 1",
            # Quality feedback on a request (POST /v1/feedback): one value per request and metric,
            # the latest wins; key_id is the key that made (and so may rate) the request.
            """CREATE TABLE IF NOT EXISTS hedge_feedback (
                request_id TEXT NOT NULL,
                metric TEXT NOT NULL,
                value DOUBLE PRECISION NOT NULL,
                key_id TEXT,
                ts DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (request_id, metric)
            )""",
            # A shadow pair: the primary's answer and the candidate's, and the grade of the one
            # against the other (score NULL and grade_error set when the grader failed).
            """CREATE TABLE IF NOT EXISTS hedge_shadow_pairs (
                shadow_request_id TEXT PRIMARY KEY,
                primary_request_id TEXT NOT NULL,
                ts DOUBLE PRECISION NOT NULL,
                alias TEXT NOT NULL,
                target TEXT NOT NULL,
                grader TEXT NOT NULL,
                status INTEGER NOT NULL,
                score DOUBLE PRECISION,
                grade_error TEXT,
                primary_answer TEXT,
                shadow_answer TEXT,
                primary_cost_usd DOUBLE PRECISION NOT NULL,
                shadow_cost_usd DOUBLE PRECISION NOT NULL,
                primary_latency_ms DOUBLE PRECISION,
                shadow_latency_ms DOUBLE PRECISION
            )""",
            "CREATE INDEX IF NOT EXISTS hedge_shadow_pairs_ts ON hedge_shadow_pairs (alias, target, ts)",
            # Each change of an adaptive experiment's weights, with its evidence (JSON). One row per
            # decision slot (floor(ts / interval_s)): replicas deciding the same slot insert the same
            # key and the first one wins, so the weights move once per interval across replicas.
            # config_hash ties a change to the arms it was made for: a new config starts afresh.
            """CREATE TABLE IF NOT EXISTS hedge_experiment_changes (
                experiment TEXT NOT NULL,
                slot BIGINT NOT NULL,
                ts DOUBLE PRECISION NOT NULL,
                config_hash TEXT NOT NULL,
                weights TEXT NOT NULL,
                evidence TEXT NOT NULL,
                PRIMARY KEY (experiment, slot)
            )""",
        ],
    ),
    (
        12,
        [
            # Most requests belong to no team and to no experiment, and a NULL is never looked up
            # (``team = ?``, ``experiment = ?`` imply IS NOT NULL, so both planners still use these):
            # indexing only the rows that have one spares every other insert two index updates.
            "DROP INDEX IF EXISTS hedge_requests_team_ts",
            "CREATE INDEX IF NOT EXISTS hedge_requests_team_ts ON hedge_requests (team, ts) "
            "WHERE team IS NOT NULL",
            "DROP INDEX IF EXISTS hedge_requests_experiment",
            "CREATE INDEX IF NOT EXISTS hedge_requests_experiment ON hedge_requests (experiment, ts) "
            "WHERE experiment IS NOT NULL",
        ],
    ),
]
