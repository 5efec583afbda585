"""The automation service as a real process (`python -m automation`) on a free port."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "automation-test-passphrase"
FIXTURE_CONFIG_KEYS = "greeting,farewell,delay_seconds,fail"
START_TIMEOUT_SECONDS = 20.0
FINISHED = {"succeeded", "failed", "cancelled", "interrupted"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def service_environment(project: Path, state_dir: Path, **settings: str) -> dict[str, str]:
    """The test's environment minus any AUTOMATION_* / PULUMI_HOME, plus the fixture's setup."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AUTOMATION_") and key not in ("PULUMI_HOME",)
    }
    env.update(
        PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
        AUTOMATION_PROJECT_DIR=str(project),
        AUTOMATION_STATE_DIR=str(state_dir),
        AUTOMATION_PORT=str(free_port()),
        AUTOMATION_CONFIG_ALLOWLIST=FIXTURE_CONFIG_KEYS,
        AUTOMATION_IMAGE_CONFIG_KEY="greeting",
        AUTOMATION_RECOVERY_WAIT_SECONDS="10",
    )
    env.update({f"AUTOMATION_{key.upper()}": value for key, value in settings.items()})
    return env


class Service:
    def __init__(self, env: dict[str, str], log_path: Path, token: str | None = None) -> None:
        self.env = env
        self.log_path = log_path
        self.base_url = f"http://127.0.0.1:{env['AUTOMATION_PORT']}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.base_url, timeout=30.0, headers=headers)
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "automation"],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the service exited {self.process.returncode}:\n{self.log}")
            try:
                if self.http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.process.kill()  # not left behind when the test gives up on it
        self.process.wait()
        raise AssertionError(f"the service was not ready in time:\n{self.log}")

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        assert response.status_code == 202, response.text
        job: dict[str, Any] = response.json()
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.http.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job

    def wait(
        self, job_id: str, timeout: float = 60.0, statuses: set[str] = FINISHED
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} is still {self.job(job_id)['status']}")

    def events(
        self, job_id: str, last_event_id: str | None = None, debug: bool = False
    ) -> Iterator[tuple[str | None, str | None, str]]:
        """(id, event, data) of each SSE message until the server closes the stream."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        params = {"debug": "true"} if debug else {}
        with self.http.stream(
            "GET", f"/jobs/{job_id}/events", headers=headers, params=params
        ) as response:
            assert response.status_code == 200, response.read()
            yield from parse_sse(response.iter_lines())

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.http.close()
        return self.process.returncode

    def worker_pids(self) -> list[int]:
        """Worker processes this service started (children running automation.worker)."""
        return [
            pid
            for pid, parent in _processes().items()
            if parent == self.process.pid and b"automation.worker" in _command(pid)
        ]

    def crash(self) -> None:
        """SIGKILL the service and every process under it (workers, CLIs, language hosts,
        plugins: Pulumi starts plugins in process groups of their own), as a machine crash
        would."""
        tree = [self.process.pid]
        parents = _processes()
        for pid in tree:
            tree.extend(child for child, parent in parents.items() if parent == pid)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()


def _processes() -> dict[int, int]:
    """pid -> parent pid of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except (OSError, IndexError, ValueError):
                continue
    return found


def _command(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str | None, str | None, str]]:
    event_id: str | None = None
    event: str | None = None
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield event_id, event, "\n".join(data)
            event_id, event, data = None, None, []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "id":
                event_id = value
            elif field == "event":
                event = value
            elif field == "data":
                data.append(value)


def engine_events(messages: list[tuple[str | None, str | None, str]]) -> list[dict[str, Any]]:
    return [json.loads(data) for _, event, data in messages if event in ("engine", "log")]


def wait_for_log(service: Service, job_id: str, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in service.http.get(f"/jobs/{job_id}/log").text:
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in the log of job {job_id}")


def wait_for_note(service: Service, job_id: str, text: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = service.job(job_id)
        if any(text in note for note in job["notes"]):
            return job
        time.sleep(0.1)
    raise AssertionError(f"no note with {text!r} on job {job_id}: {service.job(job_id)}")


def locks(state_dir: Path, stack: str = "*") -> list[Path]:
    """Lock files of the file backend under `state_dir` (all stacks by default)."""
    return sorted((state_dir / "backend" / ".pulumi" / "locks").glob(f"**/{stack}/*.json"))


def start_refused_service(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m automation` with settings it must refuse: it exits without serving."""
    return subprocess.run(
        [sys.executable, "-m", "automation"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
