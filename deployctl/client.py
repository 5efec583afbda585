"""The automation service's HTTP API as deployctl uses it: JSON requests, errors with the
service's `detail`, and a job's event stream that resumes where it broke off."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

RECONNECT_DELAYS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0)
"""Seconds before each try to reopen a dropped event stream (about 30 s in all), so a
service restarting behind a load balancer is waited for; the count resets after an event."""
STREAM_READ_TIMEOUT = 60.0
"""The service sends a ping every 15 s on an idle stream: 60 s of silence means it is gone."""


class ApiError(Exception):
    """The service refused or could not be reached; `status` is the HTTP status, None for
    a connection failure."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Event:
    """One server-sent event: `status`, `engine`, `log` or `end`, with its JSON data."""

    name: str
    data: dict[str, Any]
    id: str | None = None


class Client:
    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._send("GET", path, params=_without_none(params or {})).json()

    def text(self, path: str) -> str:
        return self._send("GET", path).text

    def post(
        self, path: str, body: dict[str, Any] | None = None, idempotency_key: str | None = None
    ) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._send("POST", path, json=body, headers=headers).json()

    def _send(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **options)
        except httpx.TransportError as error:
            raise self._unreachable(error) from error
        _raise_for_status(response)
        return response

    def _unreachable(self, error: httpx.TransportError) -> ApiError:
        reason = str(error) or type(error).__name__
        return ApiError(f"cannot reach the automation service at {self.url}: {reason}")

    def events(self, job_id: str, last_event_id: str | None = None) -> Iterator[Event]:
        """The job's events until its `end` (reason `finished`). A stream that breaks off,
        or ends because the service shuts down, is reopened with `Last-Event-ID` = the id of
        the last whole event received, so no engine event is lost or repeated (the service
        sends the current `status` again on each connection)."""
        failures = 0
        while True:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            try:
                with self._http.stream(
                    "GET",
                    f"/jobs/{job_id}/events",
                    headers=headers,
                    timeout=httpx.Timeout(self._http.timeout.connect, read=STREAM_READ_TIMEOUT),
                ) as response:
                    if response.status_code != 200:
                        response.read()
                        _raise_for_status(response)
                    for event in parse_events(response.iter_lines()):
                        failures = 0
                        if event.id is not None:
                            last_event_id = event.id
                        yield event
                        if event.name == "end" and event.data.get("reason") != "shutdown":
                            return
            except httpx.TransportError as error:
                if failures >= len(RECONNECT_DELAYS):
                    raise self._unreachable(error) from error
            else:
                if failures >= len(RECONNECT_DELAYS):
                    raise ApiError(f"the event stream of job {job_id} keeps closing early")
            time.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)])
            failures += 1


def parse_events(lines: Iterator[str]) -> Iterator[Event]:
    """Server-sent events from a stream's lines; an event is dispatched only at the blank
    line that ends it, so one cut off mid-way is never seen (it comes again on resuming)."""
    event_id: str | None = None
    name = "message"
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield Event(name, json.loads("\n".join(data)), event_id)
            event_id, name, data = None, "message", []
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "id":
                event_id = value
            elif field == "event":
                name = value
            elif field == "data":
                data.append(value)


def _raise_for_status(response: httpx.Response) -> None:
    if response.is_success:
        return
    raise ApiError(
        f"{response.request.method} {response.request.url.path}: {response.status_code}"
        f" {response.reason_phrase}: {_detail(response)}",
        response.status_code,
    )


def _detail(response: httpx.Response) -> str:
    """The service's `detail`: a message, or for 422 each field and what is wrong with it."""
    try:
        detail = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return response.text.strip()[:500] or "(no detail)"
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(part) for part in item.get('loc', []))}: {item.get('msg', '')}"
            if isinstance(item, dict)
            else str(item)
            for item in detail
        )
    return str(detail)


def _without_none(params: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}
