"""Everything a running gateway holds, built once from the config at start-up.

Nothing here is rebuilt per request: adapters, the router and the pooled
upstream sessions live as long as the process.
"""

from __future__ import annotations

import logging

from hedge.config import Config
from hedge.observe.records import RequestRecord, Sink
from hedge.providers import make_adapter
from hedge.providers.base import Adapter
from hedge.resilience.failover import Failover
from hedge.routing.router import Router
from hedge.transport import Transport

log = logging.getLogger("hedge")


class Runtime:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.adapters: dict[str, Adapter] = {
            name: make_adapter(name, provider) for name, provider in config.providers.items()
        }
        self.router = Router(config, self.adapters)
        self.transport = Transport(config.providers)
        self.failover = Failover(config.resilience)
        self.sinks: list[Sink] = []

    def record(self, rec: RequestRecord) -> None:
        for sink in self.sinks:
            try:
                sink(rec)
            except Exception:  # a broken observer must never fail a request
                log.exception("request record sink failed")

    async def close(self) -> None:
        await self.transport.close()
