"""stdout carries JSON lines only: one at startup, one per request, one at exit."""

import http.client
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from app.logs import JsonFormatter
from tests.app.running_app import RunningApp


def send(app: RunningApp, method: str, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=5)
    connection.request(method, path)
    status = connection.getresponse().status
    connection.close()
    return status


def test_one_json_line_per_request_and_nothing_else(start_app: Callable[..., RunningApp]) -> None:
    app = start_app(APP_VERSION="v42")
    assert app.startup_line == {"event": "listening", "port": app.port, "version": "v42"}

    requests = [("GET", "/", 200), ("POST", "/health", 405), ("GET", "/nope?token=s3cr3t", 404)]
    for method, path, status in requests:
        assert send(app, method, path) == status
        line = app.next_log_line()
        duration = line.pop("duration_ms")
        assert isinstance(duration, float)
        assert 0 <= duration < 1000
        assert line == {
            "method": method,
            "path": path.split("?")[0],  # the query string (where tokens go) is not logged
            "status": status,
            "version": "v42",
        }

    app.terminate()
    assert app.wait() == 0
    assert app.remaining_stdout() == ['{"event":"stopped","version":"v42"}\n']
    assert app.process.stderr is not None
    assert app.process.stderr.read() == ""


def test_log_lines_stay_json_whatever_the_path_and_version(
    start_app: Callable[..., RunningApp],
) -> None:
    version = 'v1 "beta" \\ ü'
    app = start_app(APP_VERSION=version)
    for raw_path, logged_path in ((b'/a"b\\c', '/a"b\\c'), ("/é".encode(), "/é")):
        with socket.create_connection(("127.0.0.1", app.port), timeout=5) as connection:
            connection.sendall(b"GET " + raw_path + b" HTTP/1.1\r\nHost: test\r\n\r\n")
            assert connection.recv(4096).startswith(b"HTTP/1.1 404 ")
        line = app.next_log_line()
        assert (line["path"], line["version"]) == (logged_path, version)


def test_a_crashed_worker_is_reported_as_json_and_the_app_exits_1(
    start_app: Callable[..., RunningApp],
) -> None:
    app = start_app()
    children = Path(f"/proc/{app.process.pid}/task/{app.process.pid}/children").read_text()
    [worker] = [int(pid) for pid in children.split()]
    os.kill(worker, signal.SIGKILL)
    assert app.wait() == 1  # ECS replaces a task whose essential container exits non-zero
    lines = [json.loads(line) for line in app.remaining_stdout()]
    assert lines == [
        {"level": "error", "logger": "_granian", "message": "Unexpected exit from worker-1"},
        {"event": "stopped", "version": "dev"},
    ]


def test_granian_errors_keep_their_traceback_inside_the_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "_granian", logging.ERROR, __file__, 1, "worker %s failed", ("w1",), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed.pop("exception").startswith("Traceback (most recent call last):")
    assert parsed == {"level": "error", "logger": "_granian", "message": "worker w1 failed"}
