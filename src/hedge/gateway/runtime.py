"""The composition root: everything a running gateway holds, built once from the config.

Nothing here is rebuilt per request: adapters, the router and the pooled
upstream sessions live as long as the process. Every part is built by the
constructor, of the kind the config asks for (Redis counters or in-memory ones,
SQLite or PostgreSQL), and none is swapped later; :meth:`Runtime.start` only
opens the connections and starts the background writers. :func:`open_runtime`
does both, for faces that run without a server's lifespan (a batch worker,
``hedge check``).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from hedge.access.alerts import Alerts
from hedge.access.gate import Gate
from hedge.access.keys import KeyStore, VirtualKey
from hedge.access.quotas import Quotas
from hedge.access.teams import TeamStore
from hedge.config import Config, ConfigError
from hedge.cost import catalogue
from hedge.cost.catalogue import missing_prices
from hedge.gateway.health import Prober
from hedge.gateway.hooks import Assigner
from hedge.observe.logs import AccessLog, config_secrets, register_secrets
from hedge.observe.loop import LoopWatch
from hedge.observe.metrics import Metrics
from hedge.observe.tracing import Tracer, header_secrets, make_tracer
from hedge.providers import make_adapter
from hedge.providers.base import Adapter
from hedge.record import RequestRecord, Sink
from hedge.resilience.failover import Failover
from hedge.resilience.shared import SharedBreakers
from hedge.routing.conformance import ConformanceGate
from hedge.routing.router import Router
from hedge.store.affinity import Affinity, MemoryAffinity, RedisAffinity
from hedge.store.cache import MemoryCache, RedisCache, ResponseCache
from hedge.store.conformance import JsonlResultStore, results_path
from hedge.store.counters import Counters, MemoryCounters, RedisCounters
from hedge.store.db import Database, database
from hedge.store.evals import MeasuredQuality, QualityStore
from hedge.store.leases import CounterLeases, DatabaseLeases, Leases
from hedge.store.ledger import Ledger
from hedge.store.schema import MIGRATIONS
from hedge.store.signatures import SharedSignatures, shared_memories
from hedge.tasks import stop
from hedge.transport import Transport

log = logging.getLogger("hedge")

QUALITY_REFRESH_S = 30.0
"""How often a running gateway re-reads the quality ``hedge eval --apply`` measured."""


class Runtime:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.adapters: dict[str, Adapter] = {
            name: make_adapter(name, provider) for name, provider in config.providers.items()
        }
        self.catalogue = catalogue.load(config.state.dir)
        self.router = Router(config, self.adapters, catalogue=self.catalogue)
        unpriced = self.router.unpriced
        if unpriced and config.pricing.on_missing == "reject":
            raise ConfigError(missing_prices(unpriced, "reject"))
        if unpriced and config.pricing.on_missing == "warn":
            log.warning("%s", missing_prices(unpriced, "warn"))
        self.transport = Transport(config.providers)
        self.failover = Failover(config.resilience)
        self.conformance = ConformanceGate.from_config(config, JsonlResultStore(results_path(config)))
        self.sinks: list[Sink] = []
        register_secrets(config_secrets(config))
        deployments = [dep.id for alias in self.router.aliases.values() for dep in alias.deployments]
        self.metrics = Metrics(
            aliases=config.models,
            providers=config.providers,
            deployments=deployments,
            breakers=lambda: self.failover.breakers,
        )
        self.sinks += [self.metrics.observe, AccessLog()]
        self.loop_watch = LoopWatch(self.metrics.stalled, self.metrics.collected)
        register_secrets(header_secrets(config.tracing))
        self.tracer: Tracer = make_tracer(config)
        if self.tracer.enabled:  # ends request spans when their record is final (streams: at their end)
            self.sinks.append(self.tracer.finish)
        state = config.state
        self.db: Database = database(database_url(config), state.db_timeout_s)
        self.ledger = Ledger(
            self.db,
            state.flush_interval_s,
            state.flush_batch,
            state_dir=state.dir,  # its spool, for records the database cannot take
            shutdown_timeout_s=state.shutdown_timeout_s,
        )
        self.ledger.on_flush = self.metrics.flushed
        self.keys = KeyStore(self.db, state.key_cache_ttl_s, aliases=config.models)
        self.teams = TeamStore(self.db, state.key_cache_ttl_s, aliases=config.models)
        self.counters: Counters
        self.cache: ResponseCache
        self.shared_breakers: SharedBreakers | None = None
        self.affinity: Affinity
        self.signatures: list[SharedSignatures] = []
        """Gemini thought signatures and Claude's thinking blocks shared by the replicas (Redis)."""
        if state.redis_url:
            self.counters = RedisCounters(state.redis_url, state.redis_prefix)
            self.cache = RedisCache(state.redis_url, state.redis_prefix)
            self.shared_breakers = SharedBreakers(state.redis_url, state.redis_prefix, self.failover)
            self.affinity = RedisAffinity(state.redis_url, state.redis_prefix)
            styles = {adapter.style for adapter in self.adapters.values()}
            self.signatures = shared_memories(state.redis_url, state.redis_prefix, styles)
        else:
            self.counters = MemoryCounters()
            self.cache = MemoryCache()
            self.affinity = MemoryAffinity()
        self.quotas = Quotas(config, self.counters)
        checks = {name: p.health_check for name, p in config.providers.items() if p.health_check is not None}
        leases: Leases = CounterLeases(self.counters) if state.redis_url else DatabaseLeases(self.db)
        self.prober = Prober(
            [dep for alias in self.router.aliases.values() for dep in alias.deployments],
            checks,
            self.transport,
            self.failover,
            leases,
            on_probe=lambda dep, probe: self.metrics.probe(dep.id, probe.error),
        )
        self.alerts = Alerts(
            config.budgets.alerts, self.counters, self.transport.post_json, self.metrics.budget_alert
        )
        self.gate = Gate(self.counters, self.ledger, config.budgets, alerts=self.alerts)
        self.sinks.append(self.ledger)
        self.assigner: Assigner | None = None
        """Splits aliases under experiment across their arms; set by ``hedge.experiments``."""
        self.quality = QualityStore(self.db)
        self.measured_quality: dict[str, MeasuredQuality] = {}
        """What ``hedge eval --apply`` measured, by deployment id, as last read."""
        self._quality_task: asyncio.Task[None] | None = None

    def started(self, rec: RequestRecord) -> None:
        """A request's alias is known: it counts as in flight until ``record(rec)``."""
        self.metrics.started(rec)

    async def start(self) -> None:
        """Open the state store (migrating it); start the ledger writer and the shared breakers."""
        await self.db.connect()
        await self.db.migrate(MIGRATIONS)
        self.ledger.start()
        self.loop_watch.start()
        if self.shared_breakers is not None:
            self.shared_breakers.start()
        for shared in self.signatures:
            shared.start()
        self.gate.start()
        self.prober.start()
        self.transport.warm_up()
        await self.refresh_quality()
        self._quality_task = asyncio.create_task(self._refresh_quality_every(QUALITY_REFRESH_S))

    async def refresh_quality(self) -> None:
        """Read the measured quality and hand its lower bounds to the router (a database that
        cannot be read leaves the last known values in force)."""
        try:
            self.measured_quality = await self.quality.load()
        except Exception as exc:
            log.warning("measured quality cannot be read (%s); keeping the last known values", exc)
            return
        self.router.set_measured_quality({dep: m.ci_low for dep, m in self.measured_quality.items()})

    async def _refresh_quality_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            await self.refresh_quality()

    def record(self, rec: RequestRecord, key: VirtualKey | None = None) -> None:
        """A request is over: book its spend on ``key`` and its deployment's quota, then every sink."""
        if key is not None:
            self.gate.book(rec, key)
        self.quotas.book(rec)
        if rec.provider is not None and rec.prompt_tokens:
            stats = self.router.stats.get(f"{rec.provider}/{rec.model}")
            if stats is not None:
                stats.tokens(rec.prompt_tokens, rec.cached_tokens)
        for sink in self.sinks:
            try:
                sink(rec)
            except Exception:  # a broken observer must never fail a request
                log.exception("request record sink failed")

    async def close(self) -> None:
        await self.loop_watch.close()
        await self.prober.close()
        await stop(self._quality_task)
        await self.gate.drain()
        await self.alerts.drain()
        await self.quotas.drain()
        await self.ledger.close()
        await self.db.close()
        await self.counters.close()
        await self.affinity.close()
        if self.shared_breakers is not None:
            await self.shared_breakers.close()
        for shared in self.signatures:
            await shared.close()
        if isinstance(self.cache, RedisCache):
            await self.cache.close()
        await self.transport.close()
        self.metrics.close()
        await self.tracer.close()  # flush the last requests' spans


def database_url(config: Config) -> str:
    """The configured database, or the embedded default: a SQLite file under ``state.dir``."""
    if config.state.database_url:
        return config.state.database_url
    return f"sqlite:///{Path(config.state.dir) / 'hedge.db'}"


async def open_runtime(config: Config) -> Runtime:
    """A started runtime: the one factory for faces that run without a server (close it when done)."""
    runtime = Runtime(config)
    await runtime.start()
    return runtime
