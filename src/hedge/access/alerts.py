"""Soft-limit alerts: a key or team reached a share of its budget.

Checked after each booking settles (off the request path): for every configured percentage the
spend has reached, the first replica to claim the threshold for the budget period
(:meth:`~hedge.store.counters.Counters.once`) raises the alert, so each fires at most once per
threshold and period however many replicas book. An alert is a WARNING log line, a count in the
``hedge_budget_alerts`` metric (through ``on_alert``), and a JSON POST to the webhook when one is
configured; a webhook that fails is logged and not retried (the log line and metric still stand).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from hedge.config import BudgetAlertsConfig
from hedge.store.counters import Counters

log = logging.getLogger("hedge.budget")

Post = Callable[[str, object, float], Awaitable[int]]
"""``post(url, payload, timeout_s) -> status``: how a webhook is sent (the transport's)."""


@dataclass(frozen=True, slots=True)
class Alert:
    scope: str
    """``key`` or ``team``."""
    id: str
    """The key's id or the team's name."""
    name: str
    threshold_pct: float
    spent_usd: float
    budget_usd: float
    period: str

    def payload(self) -> dict[str, object]:
        return {"type": "hedge.budget_alert", **asdict(self)}


class Alerts:
    def __init__(
        self,
        config: BudgetAlertsConfig,
        counters: Counters,
        post: Post | None = None,
        on_alert: Callable[[Alert], None] | None = None,
    ) -> None:
        self.config = config
        self.counters = counters
        self._post = post
        self.on_alert = on_alert
        self._fired: set[str] = set()
        """Thresholds this replica already saw claimed, so it asks the counters once, not each booking."""
        self._pending: set[asyncio.Task[None]] = set()

    async def check(
        self,
        scope: str,
        subject_id: str,
        name: str,
        spent: float,
        budget: float,
        period: str,
        period_key: str,
        ttl_s: float,
    ) -> list[Alert]:
        """Raise the alerts ``spent`` has reached for this budget period; returns the ones raised here."""
        raised: list[Alert] = []
        if budget <= 0:
            return raised
        for pct in self.config.thresholds_pct:
            if spent < budget * pct / 100:
                break
            claim = f"alert:{scope}:{subject_id}:{period_key}:{pct:g}"
            if claim in self._fired:
                continue
            claimed = await self.counters.once(claim, ttl_s)  # a store error: asked again next booking
            if len(self._fired) > 100_000:
                self._fired.clear()
            self._fired.add(claim)
            if not claimed:
                continue
            alert = Alert(scope, subject_id, name, pct, round(spent, 6), budget, period)
            self._raise(alert)
            raised.append(alert)
        return raised

    def _raise(self, alert: Alert) -> None:
        log.warning(
            "budget alert: %s %s reached %g%% of its %s budget (%.6f of %g USD)",
            alert.scope,
            alert.name,
            alert.threshold_pct,
            alert.period,
            alert.spent_usd,
            alert.budget_usd,
        )
        if self.on_alert is not None:
            try:
                self.on_alert(alert)
            except Exception:
                log.exception("budget alert observer failed")
        url = self.config.webhook_url
        if url is not None and self._post is not None:
            task = asyncio.ensure_future(self._send(url, alert))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _send(self, url: str, alert: Alert) -> None:
        assert self._post is not None
        try:
            status = await self._post(url, alert.payload(), self.config.webhook_timeout_s)
        except Exception as exc:
            log.warning("budget alert webhook failed: %s", exc)
            return
        if status >= 300:
            log.warning("budget alert webhook answered %d", status)

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
