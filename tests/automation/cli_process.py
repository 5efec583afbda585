"""deployctl as a real process (the console script scripts/setup installs), and a TCP proxy
that cuts an event stream off mid-event, as a dropped connection would."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

DEPLOYCTL = Path(sys.executable).parent / "deployctl"


def cli_environment(url: str, token: str | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AUTOMATION_")}
    env.update(AUTOMATION_URL=url, PYTHONUNBUFFERED="1", NO_COLOR="1", COLUMNS="200")
    if token:
        env["AUTOMATION_TOKEN"] = token
    return env


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def deployctl(url: str, *args: str, token: str | None = None, timeout: float = 60) -> Result:
    done = subprocess.run(
        [str(DEPLOYCTL), *args],
        env=cli_environment(url, token),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def start_deployctl(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(DEPLOYCTL), *args],
        env=cli_environment(url),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As a terminal's Ctrl-C reaches it: a test run started in the background by a shell
        # (`cmd &`) has SIGINT ignored, and the client would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


EVENTS_REQUEST = re.compile(rb"GET /jobs/[^ ]+/events")
LAST_EVENT_ID = re.compile(rb"(?i)\r\nlast-event-id: *([0-9]+)\r\n")


@dataclass
class StreamCutter:
    """Forwards 127.0.0.1:<port> to the service. The first connection that asks for a job's
    events is closed in the middle of the first event mentioning `cut_inside` (part of that
    event reaches the client); later connections pass through. Records each events
    request's Last-Event-ID (None when it sent none)."""

    upstream_port: int
    cut_inside: bytes
    last_event_ids: list[int | None] = field(default_factory=list)
    cut: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stops accepting: shutdown wakes the thread blocked in accept(), close alone does not."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            streaming = threading.Event()
            threading.Thread(
                target=self._requests, args=(client, upstream, streaming), daemon=True
            ).start()
            threading.Thread(
                target=self._answers, args=(upstream, client, streaming), daemon=True
            ).start()

    def _requests(
        self, client: socket.socket, upstream: socket.socket, streaming: threading.Event
    ) -> None:
        while data := _receive(client):
            match = EVENTS_REQUEST.search(data)
            if match:
                found = LAST_EVENT_ID.search(data)
                with self._lock:
                    self.last_event_ids.append(int(found.group(1)) if found else None)
                    if not self.cut.is_set():
                        streaming.set()
            try:
                upstream.sendall(data)
            except OSError:
                break
        _close(client, upstream)

    def _answers(
        self, upstream: socket.socket, client: socket.socket, streaming: threading.Event
    ) -> None:
        seen = b""
        while data := _receive(upstream):
            if streaming.is_set() and not self.cut.is_set():
                start = len(seen)
                seen += data
                where = seen.find(self.cut_inside)
                if where >= 0:
                    keep = max(where + len(self.cut_inside) // 2 - start, 0)
                    with contextlib.suppress(OSError):
                        client.sendall(data[:keep])
                    self.cut.set()
                    break
            try:
                client.sendall(data)
            except OSError:
                break
        _close(client, upstream)


def _receive(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
