"""Run the app as a real process (`python -m app`) on a free port."""

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from app import contract

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def app_environment(**overrides: str) -> dict[str, str]:
    """The test runner's environment without the app's own variables, plus `overrides`.

    PYTHONUNBUFFERED goes too: the app must flush its log lines itself.
    """
    dropped = {"PORT", contract.HEALTH_MESSAGE_ENV, contract.VERSION_ENV, "PYTHONUNBUFFERED"}
    env = {name: value for name, value in os.environ.items() if name not in dropped}
    return env | overrides


class RunningApp:
    """A `python -m app` process; its stdout lines arrive on a queue as they are written."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app"],
            cwd=REPO_ROOT,
            env=app_environment(PORT=str(self.port), **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, worker included, for close()
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        try:
            self.startup_line = self.next_log_line(timeout=START_TIMEOUT_SECONDS)
        except BaseException:
            self.close()  # no fixture will: the caller never gets this object
            raise

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def next_log_line(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next stdout line, which must be one JSON object."""
        line = self._lines.get(timeout=timeout)
        if line is None:
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"the app closed stdout (exit {self.process.poll()}): {stderr}")
        parsed = json.loads(line)
        assert isinstance(parsed, dict), line
        return parsed

    def remaining_stdout(self) -> list[str]:
        """Every stdout line not yet read; call after the process has exited."""
        lines = []
        while (line := self._lines.get(timeout=5.0)) is not None:
            lines.append(line)
        return lines

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 5.0) -> int:
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        """Kill the server and its worker process, whatever state they are in."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
