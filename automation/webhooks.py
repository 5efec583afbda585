"""Signed webhooks: job.finished, verification.failed, rollback.started, drift.found.

Each delivery is a JSON body `{"id", "event", "timestamp", "job"}` (the job as the API shows
it: secrets are already `[secret]`) POSTed with `X-Automation-Signature: sha256=<hex of
HMAC-SHA256(secret, raw body)>`, `X-Automation-Delivery` (the id, the same on every try) and
`X-Automation-Event`. Up to 3 tries, 5 s each, 1 s then 2 s apart; every try is recorded.

Deliveries run in tasks of their own, never awaited by the job runner: an endpoint that hangs
or fails costs only its own tries. Deliveries still pending when the service stops are lost
(they are recorded up to the last try made).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx

from automation.models import Job
from automation.settings import WebhookSpec
from automation.store import Store

log = logging.getLogger("automation.webhooks")
TRIES = 3
TIMEOUT_SECONDS = 5.0
BACKOFF_SECONDS = (1.0, 2.0)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def shown_endpoint(url: str) -> str:
    """The URL without its query, fragment or credentials (they may hold a key)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class Webhooks:
    def __init__(self, endpoints: list[WebhookSpec], store: Store) -> None:
        self.endpoints = endpoints
        self.store = store
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def emit(self, event: str, job: Job) -> None:
        """Queue a delivery of `event` to every endpoint that wants it; returns at once."""
        for endpoint in self.endpoints:
            if event not in endpoint.events:
                continue
            if "*" not in endpoint.environments and job.environment not in endpoint.environments:
                continue
            task = asyncio.get_running_loop().create_task(self._deliver(endpoint, event, job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, endpoint: WebhookSpec, event: str, job: Job) -> None:
        delivery = uuid.uuid4().hex
        body = json.dumps(
            {
                "id": delivery,
                "event": event,
                "timestamp": datetime.now(UTC).isoformat(),
                "job": job.model_dump(mode="json"),
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "ecs-fargate-app-automation",
            "X-Automation-Signature": signature(endpoint.secret.get_secret_value(), body),
            "X-Automation-Delivery": delivery,
            "X-Automation-Event": event,
        }
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False)
        for attempt in range(1, TRIES + 1):
            started = time.perf_counter()
            status: int | None = None
            error: str | None = None
            try:
                response = await self._client.post(endpoint.url, content=body, headers=headers)
                status = response.status_code
                if not 200 <= status < 300:
                    error = f"answered {status}"
            except httpx.HTTPError as failure:
                error = f"{type(failure).__name__}: {failure}"[:300] or type(failure).__name__
            self.store.record_delivery(
                delivery=delivery,
                event=event,
                endpoint=shown_endpoint(endpoint.url),
                job_id=job.id,
                attempt=attempt,
                status=status,
                ok=error is None,
                error=error,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            if error is None:
                return
            log.warning(
                "webhook %s to %s, try %d: %s", event, shown_endpoint(endpoint.url), attempt, error
            )
            if attempt < TRIES:
                await asyncio.sleep(BACKOFF_SECONDS[attempt - 1])

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
