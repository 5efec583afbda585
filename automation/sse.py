"""A job's server-sent events: `status`, then the engine's events as `engine` or `log`, then `end`.

- `status` (`{"id", "status"}`): at once, and on each change of the job's status;
- `engine` / `log` (`log`: the engine's diagnostic and stdout events, text meant for a person):
  the engine event's JSON, with `id:` = its `sequence`. Debug-severity diagnostics are left out
  unless `?debug=true`; the ids then skip, and resuming still works;
- `end` (`{"id", "status", "error", "reason"}`): the last message, when the job has finished
  (`reason: "finished"`) or the service is shutting down (`reason: "shutdown"`; reconnect with
  `Last-Event-ID` to go on).

Resuming: `Last-Event-ID: N` sends the events whose `sequence` is greater than N. The store
numbers a job's events 1, 2, … in the order the engine sent them (its `sequence` starts at 0),
so an event's store position is never below its `sequence`: reading after position N and
dropping what is ≤ N by `sequence` neither replays nor skips.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent

from automation.models import Job
from automation.runner import InvalidRequest, JobSignals
from automation.store import Store

WAIT_SECONDS = 5.0
"""How long a stream sleeps between store reads if no wake-up comes (a safety net)."""
PING_SECONDS = 15
SHUTDOWN_GRACE_SECONDS = 1.0
"""On shutdown, how long a stream has to send its `end` event before it is cut."""
LOG_EVENTS = ("diagnosticEvent", "stdoutEvent")


def parse_last_event_id(value: str | None) -> int:
    """The last `sequence` the client has, or -1 for none."""
    if value is None or value == "":
        return -1
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        shown = repr(value[:24]) + ("…" if len(value) > 24 else "")
        raise InvalidRequest(
            f"Last-Event-ID {shown} is not an event id of this stream (a sequence number)"
        )
    return int(value)


def job_event_response(
    store: Store, signals: JobSignals, job_id: str, last_event_id: str | None, debug: bool
) -> EventSourceResponse:
    after = parse_last_event_id(last_event_id)
    stopping = anyio.Event()
    return EventSourceResponse(
        _stream(store, signals, job_id, after, debug, stopping),
        ping=PING_SECONDS,
        shutdown_event=stopping,
        shutdown_grace_period=SHUTDOWN_GRACE_SECONDS,
    )


async def _stream(
    store: Store,
    signals: JobSignals,
    job_id: str,
    after: int,
    debug: bool,
    stopping: anyio.Event,
) -> AsyncIterator[ServerSentEvent]:
    """Replay from the store, then follow. The job is read before its events and a status
    is sent only once no stored event is left, so every event stored before the job finished
    is sent before its last status and `end`; waits are woken by the runner after it stores."""
    position = max(after, 0)
    sent_status = None
    while True:
        wake = signals.current(job_id)
        job = store.require(job_id)
        batch = store.events_after(job_id, position)
        for position, data in batch:  # noqa: B007 (the position is kept for the next read)
            message = _engine_message(data, after, debug)
            if message is not None:
                yield message
        if batch:
            continue
        if job.status is not sent_status:
            sent_status = job.status
            yield _json_event("status", {"id": job.id, "status": job.status.value})
        if job.status.finished:
            yield _end(job, "finished")
            return
        await _wait_any(wake, stopping)
        if stopping.is_set():
            yield _end(store.require(job_id), "shutdown")
            return


def _engine_message(data: str, after: int, debug: bool) -> ServerSentEvent | None:
    event: dict[str, Any] = json.loads(data)
    sequence = event.get("sequence")
    if not isinstance(sequence, int) or sequence <= after:
        return None
    diagnostic = event.get("diagnosticEvent")
    if not debug and isinstance(diagnostic, dict) and diagnostic.get("severity") == "debug":
        return None
    name = "log" if any(kind in event for kind in LOG_EVENTS) else "engine"
    return ServerSentEvent(data=data, id=str(sequence), event=name)


def _json_event(name: str, data: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(data), event=name)


def _end(job: Job, reason: str) -> ServerSentEvent:
    return _json_event(
        "end", {"id": job.id, "status": job.status.value, "error": job.error, "reason": reason}
    )


async def _wait_any(wake: asyncio.Event, stopping: anyio.Event) -> None:
    waits = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopping.wait())}
    try:
        await asyncio.wait(waits, timeout=WAIT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
