"""Retention: old jobs, with their events, log lines and idempotency keys, are deleted in the
background (at start, then every hour), and the freed pages go back to the file system.

Kept whatever their age: queued and running jobs, and the newest `kept_deploys` successful ups of
each environment (their source snapshots are kept for rollback; the newest is what the
environment runs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from automation.store import Pruned, Store, now

log = logging.getLogger("automation.retention")

INTERVAL_SECONDS = 3600.0


@dataclass(frozen=True)
class RetentionPolicy:
    days: int
    kept_deploys: int


class Retention:
    def __init__(
        self, store: Store, policy: RetentionPolicy, clock: Callable[[], datetime] = now
    ) -> None:
        self.store = store
        self.policy = policy
        self._now = clock

    def prune_once(self) -> Pruned:
        before = self._now() - timedelta(days=self.policy.days)
        pruned = self.store.prune(before, keep_ups=self.policy.kept_deploys)
        if pruned.jobs:
            self.store.release_free_pages()
            log.info(
                "retention: deleted %d job(s) finished before %s (%d events, %d log lines)",
                pruned.jobs,
                before.isoformat(timespec="seconds"),
                pruned.events,
                pruned.logs,
            )
        return pruned

    async def run(self, interval_seconds: float = INTERVAL_SECONDS) -> None:
        """Prune now, then every `interval_seconds`, until cancelled (a failure is logged and
        retried at the next round: the service keeps serving)."""
        while True:
            try:
                await asyncio.to_thread(self.prune_once)
            except Exception:
                log.exception("retention: pruning failed; retrying in %ss", interval_seconds)
            await asyncio.sleep(interval_seconds)
