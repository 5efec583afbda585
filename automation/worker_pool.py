"""Worker processes: started ahead of their job, one per operation, one spare per environment.

A worker needs about 1.5 s before it can run anything (Python imports, `pulumi version`,
selecting the stack, reading its config): most of a two-second preview. So an environment
keeps one spare worker that has done all that: started when a job ends (not during it, where
it would compete with the job for CPU), or as soon as a job is queued behind a running one.
The first job of an environment after start-up starts its own. Every worker runs exactly one
operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import uuid
from collections import deque
from collections.abc import AsyncGenerator
from pathlib import Path

from pydantic import ValidationError

from automation.child_env import child_environment
from automation.processes import OPERATION_MARKER
from automation.protocol import JobSpec, WorkerMessage, parse_message

log = logging.getLogger("automation.worker")
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
STREAM_LIMIT = 16 * 1024 * 1024
"""Longest line accepted from a worker (an event can carry a whole resource's state)."""


class WorkerProcess:
    def __init__(self, environment: str, process: asyncio.subprocess.Process, marker: str) -> None:
        self.environment = environment
        self.process = process
        self.marker = marker
        """The value of OPERATION_MARKER in the environment of every process of its operation."""
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self.label = f"{environment} worker {process.pid}"
        self._stderr_task = asyncio.create_task(self._drain_stderr())

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            text = raw.decode(errors="replace").rstrip()
            if text:
                self.stderr_tail.append(text)
                log.warning("%s: %s", self.label, text)

    async def send(self, spec: JobSpec) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(spec.model_dump_json().encode() + b"\n")
        await self.process.stdin.drain()
        self.process.stdin.close()

    async def messages(self) -> AsyncGenerator[WorkerMessage, None]:
        """Protocol lines until the worker closes stdout; a line that is not one is logged."""
        assert self.process.stdout is not None
        while raw := await self.process.stdout.readline():
            try:
                yield parse_message(raw)
            except ValidationError:
                log.error("%s wrote a line that is not a protocol message; ignored", self.label)

    async def wait(self) -> int:
        code = await self.process.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task
        return code

    def interrupt(self) -> None:
        """Pulumi's Ctrl-C for the worker, the CLI and the CLI's plugins (one process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGINT)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    async def release(self, timeout: float = 5.0) -> None:
        """Dismiss a worker that never got a job: SIGTERM ends it at once (it may still be
        opening its stack), EOF on stdin would only after that."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.wait(), timeout)
        except TimeoutError:
            self.kill()
            await self.wait()


def worker_environment(
    state_dir: Path, marker: str, passphrase_file: Path | None = None
) -> dict[str, str]:
    """The service's environment without its settings and passphrase (child_env), the
    passphrase file, the operation marker, and a Python bytecode cache in the state dir.

    Every operation starts two Python processes besides the worker (the program and the
    dynamic-provider host); where PYTHONDONTWRITEBYTECODE is set (common in containers) each
    recompiles the Pulumi SDK on every run: 0.6 s of CPU per process here, a third of a small
    update. PYTHONPYCACHEPREFIX keeps the cache out of the project and its virtualenv.
    """
    env = child_environment(os.environ, passphrase_file)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(state_dir / "pycache")
    env[OPERATION_MARKER] = marker
    return env


class WorkerPool:
    def __init__(
        self,
        project_dir: Path,
        state_dir: Path,
        backend_url: str | None,
        passphrase_file: Path | None = None,
    ) -> None:
        self.project_dir = project_dir
        self.state_dir = state_dir
        self.backend_url = backend_url
        self.passphrase_file = passphrase_file
        self._spares: dict[str, asyncio.Task[WorkerProcess]] = {}

    async def _start(self, environment: str) -> WorkerProcess:
        marker = uuid.uuid4().hex
        command = [
            sys.executable,
            "-m",
            "automation.worker",
            "--project-dir",
            str(self.project_dir),
            "--stack",
            environment,
            "--state-dir",
            str(self.state_dir),
            "--parent-pid",
            str(os.getpid()),
        ]
        if self.backend_url:
            command += ["--backend-url", self.backend_url]
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=PACKAGE_ROOT,
            env=worker_environment(self.state_dir, marker, self.passphrase_file),
            start_new_session=True,
            limit=STREAM_LIMIT,
        )
        return WorkerProcess(environment, process, marker)

    def replenish(self, environment: str) -> None:
        """Start the environment's spare worker unless it has one."""
        if environment not in self._spares:
            self._spares[environment] = asyncio.create_task(self._start(environment))

    async def take(self, environment: str) -> WorkerProcess:
        """The environment's spare worker if it is alive, else a new one."""
        spare = self._spares.pop(environment, None)
        if spare is not None:
            worker = await spare
            if worker.alive:
                return worker
            await worker.wait()
        return await self._start(environment)

    async def close(self) -> None:
        spares, self._spares = list(self._spares.values()), {}
        for task in spares:
            worker = await task
            await worker.release()


def kill_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
