"""The HTTP edge, as pure ASGI middleware: what is refused before any route runs.

Order, cheapest first, so nothing costly happens for a request that will be refused:
1. without tokens, a `Host` that is not this service's (DNS rebinding): 421; an unsafe method
   from another `Origin` (CSRF): 403; with or without tokens, an unsafe method authenticated by
   the dashboard's session cookie whose `Origin` is missing or another site's: 403;
2. a declared `Content-Length` above the limit: 413, before authentication;
3. a request with a body and bad or missing credentials: 401, before any body byte is read;
4. a POST body that is not `application/json`: 415;
5. the body itself, read here into at most the limit (413 as soon as it goes over), within
   a deadline (408), or until the service starts shutting down (503 after a short grace).

Refusals of a request whose body was not read close the connection (`Connection: close`), so
an unread body is never parsed as the next request and never held in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from automation.auth import session_cookie

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DRAIN_SECONDS = 2.0
"""On shutdown, how long a request still sending its body may go on before it gets 503."""
SHOWN_CHARS = 64
"""Client-sent values are echoed in messages up to this many characters."""


def shorten(value: str) -> str:
    """`value` as it may appear in a message: its repr, cut to a short prefix."""
    if len(value) <= SHOWN_CHARS:
        return repr(value)
    return f"{value[:SHOWN_CHARS]!r}… ({len(value)} characters)"


@dataclass(frozen=True)
class EdgePolicy:
    max_body_bytes: int
    body_timeout_seconds: float
    authenticate: Callable[[Mapping[str, str]], object]
    """Given the request's headers, raises HTTPException (401) for credentials that are missing
    or wrong."""
    allowed_hosts: frozenset[str] | None
    """Host names answered (lower case, no port); None when tokens are configured."""
    draining: asyncio.Event
    """Set when the service starts shutting down."""


class Refusal(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


class HttpGuard:
    def __init__(self, app: ASGIApp, policy: EdgePolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            self._check_origin(scope, headers)
            _check_session_origin(scope, headers)
            has_body = self._check_length(headers)
            if not has_body:
                await self.app(scope, receive, send)
                return
            self._check_credentials(headers)
            if scope["method"] == "POST":
                _check_json(headers)
            body = await self._read_body(receive)
        except Refusal as refusal:
            response = JSONResponse(
                {"detail": refusal.detail},
                status_code=refusal.status,
                headers={**refusal.headers, "Connection": "close"},
            )
            await response(scope, receive, send)
            return
        if body is None:  # the client went away
            return
        await self.app(scope, _replay(body, receive), send)

    def _check_origin(self, scope: Scope, headers: Headers) -> None:
        allowed = self.policy.allowed_hosts
        if allowed is None:
            return
        host = headers.get("host", "")
        name = _host_name(host)
        if name not in allowed:
            raise Refusal(
                421,
                f"Host {shorten(host)} is not this service's: without tokens it answers only"
                f" {', '.join(sorted(allowed))} (add names with AUTOMATION_ALLOWED_HOSTS)",
            )
        origin = headers.get("origin")
        own = f"{scope.get('scheme', 'http')}://{host.lower()}"
        if scope["method"] not in SAFE_METHODS and origin is not None and origin.lower() != own:
            raise Refusal(
                403,
                f"cross-origin request refused: Origin {shorten(origin)} is not this service's"
                " own origin",
            )

    def _check_length(self, headers: Headers) -> bool:
        """Whether a body follows; refuses a declared length over the limit."""
        length = headers.get("content-length")
        if length is None:
            return "transfer-encoding" in headers
        if not length.isascii() or not length.isdigit():
            raise Refusal(400, f"Content-Length {shorten(length)} is not a number of bytes")
        if int(length) > self.policy.max_body_bytes:
            raise Refusal(413, self._too_large())
        return int(length) > 0

    def _too_large(self) -> str:
        return (
            f"request body too large: at most {self.policy.max_body_bytes} bytes"
            " (AUTOMATION_MAX_BODY_BYTES)"
        )

    def _check_credentials(self, headers: Headers) -> None:
        try:
            self.policy.authenticate(headers)
        except HTTPException as error:
            raise Refusal(error.status_code, str(error.detail), dict(error.headers or {})) from None

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        reading = asyncio.ensure_future(self._receive_all(receive, chunks))
        draining = asyncio.ensure_future(self.policy.draining.wait())
        try:
            done, _ = await asyncio.wait(
                {reading, draining},
                timeout=self.policy.body_timeout_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if reading not in done and draining in done:
                done, _ = await asyncio.wait({reading}, timeout=DRAIN_SECONDS)
                if reading not in done:
                    raise Refusal(503, "the service is shutting down; send the request again")
            if reading not in done:
                seconds = f"{self.policy.body_timeout_seconds:g}"
                raise Refusal(408, f"the request body did not arrive within {seconds} s")
            size = reading.result()
        finally:
            for task in (reading, draining):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Refusal):
                    await task
        if size < 0:
            return None
        return b"".join(chunks)

    async def _receive_all(self, receive: Receive, chunks: list[bytes]) -> int:
        """Collects the body into `chunks`; its size, or -1 if the client disconnected."""
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return -1
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.policy.max_body_bytes:
                raise Refusal(413, self._too_large())
            chunks.append(chunk)
            if not message.get("more_body", False):
                return size


def _check_session_origin(scope: Scope, headers: Headers) -> None:
    """A browser sends the session cookie with whatever request a page makes of this service;
    SameSite=Strict keeps it off other sites' requests, and this check refuses an unsafe one
    whose `Origin` is not this service's host (the scheme may differ behind a TLS proxy)."""
    if scope["method"] in SAFE_METHODS or "authorization" in headers:
        return
    if session_cookie(headers) is None:
        return
    origin = headers.get("origin")
    host = headers.get("host", "").lower()
    if origin is None or urlsplit(origin).netloc.lower() != host or not host:
        shown = "none" if origin is None else shorten(origin)
        raise Refusal(
            403,
            f"a {scope['method']} authenticated by the session cookie must come from this"
            f" service's own pages (Origin: {shown}); API clients send 'Authorization: Bearer'",
        )


def _check_json(headers: Headers) -> None:
    content_type = headers.get("content-type")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        got = "none" if content_type is None else shorten(content_type)
        raise Refusal(
            415,
            f"the request body must be JSON with 'Content-Type: application/json' (got {got});"
            " with curl: -H 'Content-Type: application/json'",
        )


def _host_name(host: str) -> str:
    """The name in a Host header, lower case, without the port (IPv6 without brackets)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def allowed_hosts(bound_host: str, extra: list[str]) -> frozenset[str]:
    """The bound loopback address, `localhost` (a browser sends that name only for this
    machine) and the configured names."""
    return frozenset({bound_host.lower(), "localhost", *extra})


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once, then the real receive (so a later disconnect is still seen)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
