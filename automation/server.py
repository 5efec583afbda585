"""uvicorn with the limits it lacks, and a shutdown that always ends, with status 0.

uvicorn gives a keep-alive timeout (`timeout_keep_alive`) and a drain deadline on shutdown
(`timeout_graceful_shutdown`). It has no deadline for a new connection's request headers (an
idle or slowly-sending connection is held for ever), no limit on header bytes with httptools
(`h11_max_incomplete_event_size` is for h11 only), and `limit_concurrency` still accepts every
connection (it answers 503 only once the headers are in). The protocol below adds those: a
header deadline (408) from the connection's start and after each response, a header size
limit (431), and a connection cap enforced when a connection is made (503 at once). Body
deadlines and limits are in `automation.http_guard`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import HANDLED_SIGNALS

from automation.http_guard import DRAIN_SECONDS

log = logging.getLogger("automation.server")
MAX_HEADER_BYTES = 64 * 1024
LINGER_SECONDS = 1.0
"""After a refusal, how long unread request bytes are drained before the socket is closed."""
EXIT_MARGIN_SECONDS = 4.5
"""After a shutdown signal the process exits within the job grace period plus this."""


@dataclass(frozen=True)
class Limits:
    max_connections: int
    header_timeout_seconds: float
    max_header_bytes: int = MAX_HEADER_BYTES


def _raw_response(status: int, reason: str, detail: str) -> bytes:
    body = ('{"detail": "' + detail + '"}').encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class LingeringTransport:
    """Closes as a server must when request bytes may still be coming (a 413 before the body):
    send everything, shut down the sending side, then read and drop what arrives for a moment
    before the real close. Closing at once with unread bytes makes the kernel send a reset,
    which can destroy the answer before the client reads it."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self.lingering = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def close_now(self) -> None:
        self.lingering = True
        self._transport.close()

    def close(self) -> None:
        if self.is_closing():
            return
        self.lingering = True
        if not self._transport.can_write_eof():
            self._transport.close()
            return
        self._transport.write_eof()
        self._transport.resume_reading()
        self._loop.call_later(LINGER_SECONDS, self._transport.close)


def guarded_protocol(limits: Limits) -> type[HttpToolsProtocol]:
    class GuardedProtocol(HttpToolsProtocol):
        LIMITS: ClassVar[Limits] = limits
        _header_timer: asyncio.TimerHandle | None = None
        _header_bytes = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._lingering = LingeringTransport(transport, self.loop)
            super().connection_made(self._lingering)  # type: ignore[arg-type]
            if len(self.connections) > self.LIMITS.max_connections:
                log.warning("refused a connection: %d open", len(self.connections) - 1)
                self._refuse(
                    503,
                    "Service Unavailable",
                    f"too many connections (at most {self.LIMITS.max_connections})",
                )
                return
            self._await_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_header_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._lingering.lingering:
                return  # after the answer: dropped
            if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
                self._await_headers()  # the next request on a kept-alive connection
            if self._header_timer is not None:
                self._header_bytes += len(data)
            super().data_received(data)
            # still no complete headers after this (bounded: one socket read) chunk
            if self._header_timer is not None and (
                self._header_bytes > self.LIMITS.max_header_bytes
            ):
                self._refuse(
                    431,
                    "Request Header Fields Too Large",
                    f"request line and headers over {self.LIMITS.max_header_bytes} bytes",
                )

        def on_headers_complete(self) -> None:
            self._stop_header_timer()
            super().on_headers_complete()

        def _await_headers(self) -> None:
            self._header_bytes = 0
            self._header_timer = self.loop.call_later(
                self.LIMITS.header_timeout_seconds, self._headers_late
            )

        def _stop_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            seconds = f"{self.LIMITS.header_timeout_seconds:g}"
            self._refuse(408, "Request Timeout", f"no complete request headers in {seconds} s")

        def _refuse(self, status: int, reason: str, detail: str) -> None:
            self._stop_header_timer()
            if not self.transport.is_closing():
                self.transport.write(_raw_response(status, reason, detail))
                self._lingering.close_now()

    return GuardedProtocol


class Server(uvicorn.Server):
    """Exits 0 after a shutdown signal (uvicorn re-raises the signal once it has shut down,
    so the process died of it: status 143), and within the deadline whatever hangs."""

    def __init__(
        self, config: uvicorn.Config, on_exit: Callable[[], None], deadline_seconds: float
    ) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        self._deadline_seconds = deadline_seconds
        self._watchdog: threading.Thread | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._watchdog is None:
            log.info("signal %d: shutting down (exit within %.1f s)", sig, self._deadline_seconds)
            self._watchdog = threading.Thread(target=self._exit_at_deadline, daemon=True)
            self._watchdog.start()
            self._on_exit()
        super().handle_exit(sig, frame)

    def _exit_at_deadline(self) -> None:
        time.sleep(self._deadline_seconds)
        log.error("shutdown did not finish in %.1f s: exiting now", self._deadline_seconds)
        logging.shutdown()
        os._exit(0)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


def serve(
    app: Any,
    *,
    host: str,
    port: int,
    log_level: str,
    limits: Limits,
    keep_alive_seconds: int,
    shutdown_grace_seconds: float,
    on_exit: Callable[[], None],
) -> bool:
    """Runs until a shutdown signal; False if the app failed to start."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=guarded_protocol(limits),
        timeout_keep_alive=keep_alive_seconds,
        timeout_graceful_shutdown=round(DRAIN_SECONDS + 1),
    )
    server = Server(config, on_exit, shutdown_grace_seconds + EXIT_MARGIN_SECONDS)
    server.run()
    return server.started
