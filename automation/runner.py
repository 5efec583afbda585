"""The job runner: one operation per environment at a time, a bounded FIFO queue per
environment (the store is the queue, so an accepted job survives a restart), environments in
parallel, each operation in its own worker process.

Every event and output line a worker sends is stored before listeners are woken. At start-up
jobs left `running` by a dead service become `interrupted` and their stacks are repaired before
the environment runs anything else; jobs left `queued` run in their original order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

from automation.engine import Engine, EngineError
from automation.models import Job, JobStatus, Operation
from automation.processes import worker_group_is_alive
from automation.protocol import EventMessage, JobSpec, OutputMessage, ResultMessage
from automation.pulumi_adapter import (
    project_name,
    qualified_key,
    repair_stack,
    secret_config_keys,
)
from automation.store import Store
from automation.worker_pool import WorkerPool, WorkerProcess, kill_group

log = logging.getLogger("automation.runner")


class UnknownEnvironment(LookupError):
    pass


class UnknownJob(LookupError):
    pass


class QueueFull(RuntimeError):
    pass


class JobFinished(RuntimeError):
    pass


class InvalidRequest(ValueError):
    pass


class NotReady(RuntimeError):
    pass


class JobSignals:
    """Wakes whoever follows a job when something about it was stored."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def current(self, job_id: str) -> asyncio.Event:
        """Take this before reading the store, then wait on it if nothing new was there."""
        return self._events.setdefault(job_id, asyncio.Event())

    def notify(self, job_id: str) -> None:
        event = self._events.pop(job_id, None)
        if event is not None:
            event.set()


@dataclass
class _Running:
    job: Job
    worker: WorkerProcess | None = None
    cancel_requested: bool = False
    shutdown: bool = False


@dataclass(frozen=True)
class RunnerSettings:
    project_dir: Path
    environments: list[str]
    queue_limit: int
    config_allowlist: list[str]
    image_config_key: str
    recovery_wait_seconds: float
    shutdown_grace_seconds: float


class Runner:
    def __init__(
        self, settings: RunnerSettings, store: Store, engine: Engine, pool: WorkerPool
    ) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.pool = pool
        self.signals = JobSignals()
        self.started = False
        self._running: dict[str, _Running] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._exiting: set[asyncio.Task[int]] = set()
        self._stopping = False

    @property
    def environments(self) -> list[str]:
        return self.settings.environments

    # Start and stop

    async def start(self) -> None:
        repairs = self._recover()
        for environment in self.environments:
            self._wake[environment] = asyncio.Event()
            task = asyncio.create_task(
                self._environment_loop(environment, repairs.get(environment, [])),
                name=f"runner:{environment}",
            )
            self._loops.append(task)
        self.started = True

    async def stop(self) -> None:
        """Cancel running operations gracefully (Ctrl-C), waiting up to the grace period; what
        does not end in time stays `running` and is repaired at the next start."""
        self._stopping = True
        for running in self._running.values():
            running.shutdown = True
            if running.worker is not None:
                running.worker.interrupt()
        busy = [
            task
            for task, env in zip(self._loops, self.environments, strict=True)
            if env in self._running
        ]
        if busy:
            await asyncio.wait(busy, timeout=self.settings.shutdown_grace_seconds)
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._exiting:
            await asyncio.wait(self._exiting, timeout=5)
        await self.pool.close()

    def _recover(self) -> dict[str, list[Job]]:
        """Jobs a dead service left running are interrupted; queued ones stay queued."""
        interrupted: dict[str, list[Job]] = {}
        for job in self.store.jobs_with_status(JobStatus.RUNNING):
            self.store.finish(
                job.id,
                JobStatus.INTERRUPTED,
                error="the service stopped while this operation ran",
            )
            self.store.add_note(job.id, "marked interrupted when the service started again")
            interrupted.setdefault(job.environment, []).append(job)
            log.warning("job %s (%s %s) interrupted", job.id, job.operation, job.environment)
        for job in self.store.jobs_with_status(JobStatus.QUEUED):
            self.store.add_note(job.id, "still queued when the service started again")
        return interrupted

    async def _repair(self, environment: str, jobs: list[Job]) -> None:
        for job in jobs:
            pid = self.store.worker_pid(job.id)
            if pid is not None and worker_group_is_alive(pid):
                await self._end_old_worker(job, pid)
        try:
            notes = await asyncio.to_thread(
                repair_stack, self.engine, self.settings.project_dir, environment
            )
        except Exception as error:  # the next operation will report what is still wrong
            notes = [f"could not repair the stack: {error}"]
        notes = notes or ["the stack needed no repair: no lock and no pending operations"]
        for job in jobs:
            for note in notes:
                self.store.add_note(job.id, note)
            self.signals.notify(job.id)

    async def _end_old_worker(self, job: Job, pid: int) -> None:
        """A worker of the previous service still runs: it cancels on its own when its service
        dies (a SIGINT from here would be a second Ctrl-C, which Pulumi takes as "stop now"),
        so wait for it, within limits."""
        self.store.add_note(job.id, f"the previous worker (pid {pid}) was still running")
        self.signals.notify(job.id)
        deadline = asyncio.get_running_loop().time() + self.settings.recovery_wait_seconds
        while worker_group_is_alive(pid) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
        if worker_group_is_alive(pid):
            kill_group(pid, signal.SIGKILL)
            self.store.add_note(job.id, f"killed it after {self.settings.recovery_wait_seconds}s")
        else:
            self.store.add_note(job.id, "it ended on its own (a graceful cancel)")

    # Submitting and cancelling

    def check_ready(self) -> None:
        try:
            self.engine.check_passphrase()
        except EngineError as error:
            raise NotReady(str(error)) from error
        if not self.started:
            raise NotReady("the job runner is starting")

    def submit(
        self,
        environment: str,
        operation: Operation,
        *,
        message: str | None = None,
        config: dict[str, str] | None = None,
        image: str | None = None,
        requested_by: str | None = None,
        allowed_keys: set[str] | None = None,
    ) -> Job:
        """Store a new queued job (raising before storing anything if it cannot be run)."""
        if environment not in self.environments:
            raise UnknownEnvironment(environment)
        config = config or {}
        allowed = set(self.settings.config_allowlist) | (allowed_keys or set())
        refused = sorted(set(config) - allowed)
        if refused:
            raise InvalidRequest(
                f"config keys not allowed: {', '.join(refused)}; allowed:"
                f" {', '.join(sorted(self.settings.config_allowlist)) or 'none'}"
            )
        self._refuse_secret_keys(environment, config)
        self.check_ready()
        queued = self.store.count_queued(environment)
        if queued >= self.settings.queue_limit:
            raise QueueFull(
                f"the queue of {environment} is full ({queued} jobs waiting); retry later"
            )
        job = self.store.create_job(
            environment,
            operation,
            message=message,
            config=config,
            image=image,
            requested_by=requested_by,
        )
        self._wake[environment].set()
        if environment in self._running:
            self.pool.replenish(environment)  # warm the next job's worker while this one runs
        log.info("job %s queued: %s %s", job.id, operation, environment)
        return job

    def deploy(
        self,
        environment: str,
        image: str,
        *,
        message: str | None = None,
        requested_by: str | None = None,
    ) -> Job:
        """An up with the stack's image config set to `image` (already validated)."""
        key = self.settings.image_config_key
        return self.submit(
            environment,
            Operation.UP,
            message=message,
            config={key: image},
            image=image,
            requested_by=requested_by,
            allowed_keys={key},
        )

    def _refuse_secret_keys(self, environment: str, config: dict[str, str]) -> None:
        if not config:
            return
        project_dir = self.settings.project_dir
        secret = secret_config_keys(project_dir, environment)
        project = project_name(project_dir)
        refused = sorted(key for key in config if qualified_key(project, key) in secret)
        if refused:
            raise InvalidRequest(
                f"config {', '.join(refused)} holds a secret in stack {environment}; the service"
                " does not take secret values: use `pulumi config set --secret`"
            )

    def cancel(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise UnknownJob(job_id)
        if job.status is JobStatus.QUEUED and self.store.cancel_queued(job_id):
            log.info("job %s cancelled while queued", job_id)
            self.signals.notify(job_id)
            return self.store.require(job_id)
        running = self._running.get(job.environment)
        if running is None or running.job.id != job_id:
            current = self.store.require(job_id)
            raise JobFinished(f"job {job_id} is already {current.status.value}")
        if not running.cancel_requested:
            running.cancel_requested = True
            self.store.request_cancel(job_id)
            if running.worker is not None:
                running.worker.interrupt()
            log.info("job %s: cancel requested (SIGINT to its worker)", job_id)
        return self.store.require(job_id)

    # Running

    async def _environment_loop(self, environment: str, interrupted: list[Job]) -> None:
        if interrupted:
            await self._repair(environment, interrupted)
        wake = self._wake[environment]
        while not self._stopping:
            wake.clear()
            job = self.store.claim_next(environment)
            if job is None:
                await wake.wait()
                continue
            await self._run(job)
            if not self._stopping:
                self.pool.replenish(environment)

    async def _run(self, job: Job) -> None:
        running = _Running(job)
        self._running[job.environment] = running
        self.signals.notify(job.id)
        log.info("job %s running: %s %s", job.id, job.operation, job.environment)
        try:
            await self._operate(running)
        except Exception as error:  # the job must end, whatever went wrong here
            log.exception("job %s: the runner failed", job.id)
            self.store.finish(job.id, JobStatus.FAILED, error=f"the service failed: {error}")
        finally:
            del self._running[job.environment]
            self.signals.notify(job.id)

    async def _operate(self, running: _Running) -> None:
        job = running.job
        worker = await self.pool.take(job.environment)
        self.store.set_worker(job.id, worker.pid)
        if running.cancel_requested or running.shutdown:
            await worker.release()
            self._finish(running, ResultMessage(status=JobStatus.CANCELLED), worker)
            return
        running.worker = worker
        await worker.send(JobSpec(operation=job.operation, message=job.message, config=job.config))
        async with contextlib.aclosing(worker.messages()) as messages:
            async for message in messages:
                if isinstance(message, EventMessage):
                    self.store.append_events(job.id, [json.dumps(message.event)])
                elif isinstance(message, OutputMessage):
                    self.store.append_log(job.id, [message.line])
                else:  # final: the job ends now; the process exits on its own
                    self._finish(running, message, worker)
                    self._exiting.add(task := asyncio.create_task(worker.wait()))
                    task.add_done_callback(self._exiting.discard)
                    return
                self.signals.notify(job.id)
        code = await worker.wait()
        tail = "\n".join(worker.stderr_tail)
        self._finish(
            running,
            ResultMessage(
                status=JobStatus.CANCELLED if running.cancel_requested else JobStatus.FAILED,
                error=f"the worker process exited with code {code} without a result"
                + (f":\n{tail}" if tail else ""),
            ),
            worker,
        )

    def _finish(self, running: _Running, result: ResultMessage, worker: WorkerProcess) -> None:
        job = running.job
        status: JobStatus = result.status
        if running.shutdown and status is not JobStatus.SUCCEEDED:
            status = JobStatus.INTERRUPTED
            self.store.add_note(
                job.id, "the service was shutting down: the operation was cancelled (Ctrl-C)"
            )
        elif running.cancel_requested and status is JobStatus.SUCCEEDED:
            self.store.add_note(job.id, "cancel came too late: the operation had completed")
        self.store.finish(
            job.id,
            status,
            summary=result.summary,
            outputs=result.outputs,
            error=result.error,
        )
        log.info("job %s %s (worker %s)", job.id, status.value, worker.pid)
