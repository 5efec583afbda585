"""SIGTERM, as ECS sends it: stop accepting, finish requests in flight, exit 0 promptly.

The app answers in microseconds, so a request is held in flight honestly: the test sends
its head in two parts and the server cannot answer until the blank line arrives.
"""

import socket
import time
from collections.abc import Callable

import pytest

from tests.app.running_app import RunningApp

HEALTH_HEAD = b"GET /health HTTP/1.1\r\nHost: test\r\n"
END_OF_HEAD = b"\r\n"
PROMPT_EXIT_SECONDS = 3.0


def read_until_closed(connection: socket.socket) -> bytes:
    received = b""
    while chunk := connection.recv(4096):
        received += chunk
    return received


def test_request_in_flight_at_sigterm_is_answered(start_app: Callable[..., RunningApp]) -> None:
    app = start_app()
    with socket.create_connection(("127.0.0.1", app.port), timeout=5) as in_flight:
        in_flight.sendall(HEALTH_HEAD)
        time.sleep(0.2)  # let the server read the first part
        app.terminate()

        time.sleep(0.5)
        assert app.process.poll() is None, "the app exited with a request in flight"
        with pytest.raises(ConnectionRefusedError):  # no longer accepting
            socket.create_connection(("127.0.0.1", app.port), timeout=1).close()

        in_flight.sendall(END_OF_HEAD)
        answer = read_until_closed(in_flight)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nconnection: close\r\n" in head.lower()
    assert body == b'{"message":"Everything is good here 03"}'
    assert app.wait(timeout=PROMPT_EXIT_SECONDS) == 0
    assert app.next_log_line()["path"] == "/health"


def test_idle_keep_alive_connection_does_not_delay_exit(
    start_app: Callable[..., RunningApp],
) -> None:
    app = start_app()
    with socket.create_connection(("127.0.0.1", app.port), timeout=5) as idle:
        idle.sendall(HEALTH_HEAD + END_OF_HEAD)
        assert idle.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")
        app.next_log_line()  # the answer is complete; the connection stays open, idle

        app.terminate()
        assert app.wait(timeout=PROMPT_EXIT_SECONDS) == 0
        assert idle.recv(4096) == b"", "the server did not close the idle connection"
