"""The web app: a plain RSGI application (granian's native interface), no framework.

Two fixed routes need no router. Requests/s on one core against the seed's Express app:
FastAPI on granian about 1.3x, Starlette on uvicorn about 3x; this app, request log line
included, about 4.8x (bench/app_throughput.py runs the comparison).
"""

import asyncio
import json
import os
import sys
import time
from functools import partial
from typing import TextIO

# granian documents this import; its module re-exports the name without `__all__`.
from granian.rsgi import HTTPProtocol, Scope  # type: ignore[attr-defined]

from app import contract, logs
from app.settings import Settings, load_settings

HELLO_MESSAGE = "Hello from Docker"
ALLOWED_METHODS = ("GET", "HEAD")  # HEAD: granian sends the GET headers without the body
_JSON = ("content-type", "application/json; charset=utf-8")


def _json_body(message: str) -> bytes:
    """The same bytes Express's `res.json` sends: compact JSON."""
    return json.dumps({"message": message}, separators=(",", ":")).encode()


class App:
    """Answers `GET /` and `GET /health`, and writes one JSON line per request to `log`."""

    def __init__(self, settings: Settings, log: TextIO) -> None:
        self._bodies = {
            "/": _json_body(HELLO_MESSAGE),
            contract.HEALTH_PATH: _json_body(settings.health_message),
        }
        self._not_found = _json_body("Not Found")
        self._method_not_allowed = _json_body("Method Not Allowed")
        self._allow = ("allow", ", ".join(ALLOWED_METHODS))
        self._settings = settings
        self._version_json = json.dumps(settings.version)
        self._log = log

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called by the worker before it binds; the loop's first turn comes after the bind."""
        listening = partial(
            logs.write_event, "listening", port=self._settings.port, version=self._settings.version
        )
        loop.call_soon(listening)

    async def __rsgi__(self, scope: Scope, protocol: HTTPProtocol) -> None:
        started = time.perf_counter()
        status = self._respond(scope, protocol)
        duration_ms = (time.perf_counter() - started) * 1000
        # One JSON object per line, written out by hand: json.dumps of a dict cost about
        # 4 µs more per request here, a tenth of the app's throughput. Every string still
        # goes through json.dumps. The query string is left out: callers put tokens there.
        self._log.write(
            f'{{"method":{json.dumps(scope.method)},"path":{json.dumps(scope.path)},'
            f'"status":{status},"duration_ms":{duration_ms:.3f},"version":{self._version_json}}}\n'
        )
        # Flushed per line: CloudWatch should see a request when it happens, not when a
        # buffer fills (a pipe's stdout is block-buffered).
        self._log.flush()

    def _respond(self, scope: Scope, protocol: HTTPProtocol) -> int:
        body = self._bodies.get(scope.path)
        if body is None:
            protocol.response_bytes(404, [_JSON], self._not_found)
            return 404
        if scope.method not in ALLOWED_METHODS:
            protocol.response_bytes(405, [_JSON, self._allow], self._method_not_allowed)
            return 405
        protocol.response_bytes(200, [_JSON], body)
        return 200


def create_app() -> App:
    """The factory granian calls in its worker process (the environment is inherited)."""
    return App(load_settings(os.environ), sys.stdout)
