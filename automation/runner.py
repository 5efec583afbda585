"""The job runner: one operation per environment at a time, a bounded FIFO queue per
environment (the store is the queue, so an accepted job survives a restart), environments in
parallel, each operation in its own worker process.

A job is an isolated unit: its project source is captured when it is accepted (snapshots.py)
and run in a private copy; its config is applied to that copy only. A successful up writes the
config it set back to the checkout's stack file (stack_files.py), and jobs accepted before that
inherit it when they run; nothing else (a preview, a failed or cancelled up) changes what
another job or a person sees.

Every event and output line a worker sends is stored before listeners are woken. After every
operation, before the environment's next one starts, every process it started is gone (ended
by its marker if need be). A worker that ends without a result (killed, crashed, out of
memory) fails its job only after its processes are ended and the stack's lock and pending
operations are cleared. At start-up, jobs left `running` by a dead service become
`interrupted` and are repaired the same way; jobs left `queued` run in their original order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import shutil
import signal
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from automation.changes import ChangeList
from automation.engine import Engine, EngineError
from automation.models import (
    SECRET,
    ConfigChange,
    DriftState,
    Job,
    JobStatus,
    Operation,
    Source,
    Verification,
)
from automation.plans import PlanFiles
from automation.processes import end_operation_processes, worker_group_is_alive
from automation.protocol import EventMessage, JobSpec, OutputMessage, ResultMessage
from automation.pulumi_adapter import (
    project_name,
    qualified_key,
    repair_stack,
    secret_config_keys,
    stack_file,
)
from automation.settings import VerifySpec
from automation.snapshots import SnapshotError, SnapshotStore
from automation.stack_files import apply_config, read_config
from automation.store import IdempotencyKey, JobResults, Store, now
from automation.verification import target_url, verify
from automation.worker_pool import WorkerPool, WorkerProcess, kill_group
from infra.image_ref import InvalidImageReference, parse_image_reference

log = logging.getLogger("automation.runner")


class UnknownEnvironment(LookupError):
    pass


class UnknownJob(LookupError):
    pass


class QueueFull(RuntimeError):
    pass


class Conflict(RuntimeError):
    """The request contradicts the state of a job or an environment (HTTP 409)."""


class JobFinished(Conflict):
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
    changes: ChangeList = field(default_factory=ChangeList)
    verifying: bool = False


@dataclass(frozen=True)
class RunnerSettings:
    project_dir: Path
    environments: list[str]
    queue_limit: int
    config_allowlist: list[str]
    image_config_key: str
    recovery_wait_seconds: float
    shutdown_grace_seconds: float
    kept_deploys: int = 20
    """Successful ups per environment whose source snapshots are kept for rollback."""
    max_config_value_bytes: int = 4096
    worker_exit_seconds: float = 10.0
    """After its result, how long a worker may take to exit before its operation is ended."""
    require_approval: tuple[str, ...] = ()
    """Environments where only an approved apply of a preview's plan changes the stack."""
    plan_max_age_seconds: float = 24 * 3600.0
    """How long after its preview a saved plan may be applied."""
    verify: dict[str, VerifySpec] = field(default_factory=dict)
    """Per environment (or `*`): how a successful up is verified; default VerifySpec()."""
    drift_schedule: dict[str, float] = field(default_factory=dict)
    """Per environment: seconds between scheduled drift checks."""

    def verify_spec(self, environment: str) -> VerifySpec:
        return self.verify.get(environment) or self.verify.get("*") or VerifySpec()


IDEMPOTENCY_WINDOW = timedelta(hours=24)
SNAPSHOT_GRACE_SECONDS = 600.0


@dataclass(frozen=True)
class Submitted:
    job: Job
    replayed: bool = False
    """True when an Idempotency-Key matched: `job` is the one created the first time."""


class Runner:
    def __init__(
        self,
        settings: RunnerSettings,
        store: Store,
        engine: Engine,
        pool: WorkerPool,
        snapshots: SnapshotStore,
        plans: PlanFiles,
        clock: Callable[[], datetime] = now,
        notify: Callable[[str, Job], None] = lambda _event, _job: None,
    ) -> None:
        """`clock` decides when plans expire and idempotency keys lapse (a test's own);
        `notify(event, job)` is told job.finished, verification.failed, rollback.started and
        drift.found (webhooks) and must return at once."""
        self.settings = settings
        self.store = store
        self.engine = engine
        self.pool = pool
        self.snapshots = snapshots
        self.plans = plans
        self.clock = clock
        self.notify = notify
        self.signals = JobSignals()
        self.started = False
        self._running: dict[str, _Running] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._schedules: list[asyncio.Task[None]] = []
        self._exiting: set[asyncio.Task[int]] = set()
        self._stopping = False
        self._finish_listeners: list[Callable[[Job], None]] = []

    @property
    def environments(self) -> list[str]:
        return self.settings.environments

    def on_job_finished(self, listener: Callable[[Job], None]) -> None:
        """Call `listener` with each job that ran, as soon as its result is stored."""
        self._finish_listeners.append(listener)

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
        for environment, interval in self.settings.drift_schedule.items():
            self._schedules.append(
                asyncio.create_task(
                    self._drift_schedule(environment, interval), name=f"drift:{environment}"
                )
            )
        self.started = True

    async def stop(self) -> None:
        """Cancel running operations gracefully (Ctrl-C), waiting up to the grace period; what
        does not end in time stays `running` and is repaired at the next start."""
        self._stopping = True
        for schedule in self._schedules:
            schedule.cancel()
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
        for job in self.store.jobs_with_status(JobStatus.VERIFYING):
            self.store.finish(
                job.id,
                JobStatus.INTERRUPTED,
                error="the service stopped while it verified this deployment (the up succeeded)",
            )
            self.store.add_note(job.id, "marked interrupted when the service started again")
        for job in self.store.jobs_with_status(JobStatus.QUEUED):
            self.store.add_note(job.id, "still queued when the service started again")
        keep = {job.id for jobs in interrupted.values() for job in jobs}
        self.snapshots.discard_work_dirs(keep)
        return interrupted

    async def _repair(self, environment: str, jobs: list[Job]) -> None:
        for job in jobs:
            pid = self.store.worker_pid(job.id)
            if pid is not None and worker_group_is_alive(pid):
                await self._end_old_worker(job, pid)
            await self._end_processes(job, self.store.worker_token(job.id))
            await self._repair_stack(job)
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

    async def _end_processes(
        self, job: Job, marker: str | None, after_result: bool = False
    ) -> bool:
        """End every process the job's operation started (found by its marker, wherever
        they are in the process tree) and say so on the job; True when some were left."""
        if marker is None:
            return False
        ended = await asyncio.to_thread(end_operation_processes, marker)
        if ended:
            why = "left running after its result" if after_result else "still running"
            self.store.add_note(
                job.id, f"ended {len(ended)} process(es) of the operation {why}: {', '.join(ended)}"
            )
        elif not after_result:
            self.store.add_note(job.id, "no process of the operation was left running")
        return bool(ended)

    async def _repair_stack(self, job: Job) -> None:
        """Clear the lock and pending operations a dead operation left, in a scratch copy of the
        job's source (never in the checkout)."""
        try:
            work_dir = self.snapshots.work_dir(job.id)
            if not (work_dir / "Pulumi.yaml").is_file():
                tree = job.source.tree if job.source else None
                if tree is None or not self.snapshots.exists(tree):
                    raise SnapshotError("the job's source snapshot is gone")
                work_dir = self.snapshots.materialize(tree, job.id, self.settings.project_dir)
            notes = await asyncio.to_thread(repair_stack, self.engine, work_dir, job.environment)
        except Exception as error:  # the next operation will report what is still wrong
            notes = [f"could not repair the stack: {error}"]
        finally:
            self.snapshots.discard(job.id)
        notes = notes or ["the stack needed no repair: no lock and no pending operations"]
        for note in notes:
            self.store.add_note(job.id, note)

    # Submitting and cancelling

    def check_ready(self) -> None:
        try:
            self.engine.check_passphrase()
        except EngineError as error:
            raise NotReady(str(error)) from error
        if not self.started:
            raise NotReady("the job runner is starting")

    async def submit(
        self,
        environment: str,
        operation: Operation,
        *,
        message: str | None = None,
        config: dict[str, str | None] | None = None,
        image: str | None = None,
        requested_by: str | None = None,
        commit: str | None = None,
        idempotency: IdempotencyKey | None = None,
        allowed_keys: set[str] | None = None,
    ) -> Submitted:
        """Validate, capture the project source, store a new queued job (nothing is stored
        when the request is refused)."""
        if environment not in self.environments:
            raise UnknownEnvironment(environment)
        if operation not in (Operation.PREVIEW, Operation.DRIFT):
            self._refuse_unapproved(environment, "deploy" if image else operation.value)
        config = config or {}
        if operation is Operation.DRIFT:
            if config:
                raise InvalidRequest("drift takes no config: it checks the stack as it is")
            queued = self.store.queued_job(environment, Operation.DRIFT)
            if queued is not None and idempotency is None:
                return Submitted(queued, replayed=True)
        self._check_config(environment, config, allowed_keys or set())
        return await self._enqueue(
            environment,
            operation,
            idempotency,
            capture=lambda: self.snapshots.capture(self.settings.project_dir, commit),
            message=message,
            config=config,
            image=image,
            requested_by=requested_by,
        )

    async def deploy(
        self,
        environment: str,
        image: str,
        *,
        message: str | None = None,
        requested_by: str | None = None,
        commit: str | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> Submitted:
        """An up with the stack's image config set to `image` (already validated)."""
        key = self.settings.image_config_key
        return await self.submit(
            environment,
            Operation.UP,
            message=message,
            config={key: image},
            image=image,
            requested_by=requested_by,
            commit=commit,
            idempotency=idempotency,
            allowed_keys={key},
        )

    async def rollback(
        self,
        environment: str,
        *,
        to: str | None = None,
        message: str | None = None,
        requested_by: str | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> Submitted:
        """An up with the source snapshot and config of an earlier successful up: the one
        before the latest, or `to`."""
        if environment not in self.environments:
            raise UnknownEnvironment(environment)
        self._refuse_unapproved(environment, "rollback")
        target = self._rollback_target(environment, to)
        source = target.source
        assert source is not None
        return await self._enqueue(
            environment,
            Operation.UP,
            idempotency,
            capture=lambda: source,
            message=message or f"rollback to {target.id}",
            config=target.config,
            image=target.image,
            requested_by=requested_by,
            rollback_of=target.id,
        )

    def requires_approval(self, environment: str) -> bool:
        return environment in self.settings.require_approval

    def _refuse_unapproved(self, environment: str, operation: str) -> None:
        if self.requires_approval(environment):
            raise Conflict(
                f"{environment} requires approval: {operation} cannot run there directly;"
                " preview, then POST /jobs/{id}/apply with an approver's token"
                f" (scope approve:{environment})"
            )

    async def apply(
        self,
        preview_id: str,
        *,
        message: str | None = None,
        requested_by: str | None = None,
        approved_by: str | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> Submitted:
        """An up of a succeeded preview's snapshot and config, constrained to its saved plan
        (the engine refuses any step outside it). Who may apply is decided by the caller."""
        preview = self.store.get(preview_id)
        if preview is None:
            raise UnknownJob(preview_id)
        return await self._enqueue(
            preview.environment,
            Operation.UP,
            idempotency,
            capture=lambda: preview.source,
            check=lambda: self._check_applicable(preview_id),
            message=message or f"apply the plan of preview {preview_id}",
            config=self.store.run_config(preview_id) or preview.config,
            image=preview.image,
            requested_by=requested_by,
            applies=preview_id,
            approved_by=approved_by,
        )

    def _check_applicable(self, preview_id: str) -> None:
        """409 unless `preview_id` is a succeeded preview whose plan is saved, unexpired, not
        applied yet, and made against the stack as it still is."""
        preview = self.store.require(preview_id)
        if preview.operation is not Operation.PREVIEW or preview.status is not JobStatus.SUCCEEDED:
            raise Conflict(
                f"job {preview_id} is a {preview.operation.value} that is {preview.status.value}:"
                " only a succeeded preview can be applied"
            )
        if preview.applied_by is not None:
            apply = self.store.get(preview.applied_by)
            if apply is None or apply.started_at is not None or not apply.status.finished:
                raise Conflict(
                    f"the plan of preview {preview_id} was already applied by job"
                    f" {preview.applied_by}; run a new preview"
                )
        expires = preview.plan_expires_at
        if expires is None or not self.plans.exists(preview_id):
            raise Conflict(f"preview {preview_id} has no saved plan; run a new preview")
        if self.clock() >= expires:
            raise Conflict(
                f"the plan of preview {preview_id} expired at {expires.isoformat()} (plans can"
                f" be applied for {self.settings.plan_max_age_seconds:g}s); run a new preview"
            )
        assert preview.started_at is not None
        for job in self.store.stack_changers_since(preview.environment, preview.started_at):
            if job.status.finished and _left_stack_unchanged(job):
                continue
            if job.status.finished:
                raise Conflict(
                    f"the stack of {preview.environment} has changed since preview {preview_id}"
                    f" ran: job {job.id} ({job.operation.value}, {job.status.value}) ran after"
                    " it; run a new preview"
                )
            raise Conflict(
                f"job {job.id} ({job.operation.value}, {job.status.value}) will change the"
                f" stack of {preview.environment} before an apply could run; apply after it"
                " ends and a new preview"
            )

    def _rollback_target(self, environment: str, to: str | None) -> Job:
        if to is None:
            ups = self.store.successful_ups(environment, limit=2)
            if len(ups) < 2:
                raise Conflict(
                    f"nothing to roll back to: {environment} has {len(ups)} successful up(s),"
                    " and a rollback needs one before the latest"
                )
            target = ups[1]
        else:
            found = self.store.get(to)
            if (
                found is None
                or found.environment != environment
                or found.operation is not Operation.UP
                or found.status is not JobStatus.SUCCEEDED
            ):
                raise Conflict(
                    f"job {to[:64]!r} is not a successful up of {environment}: only those can"
                    " be rolled back to"
                )
            target = found
        if target.source is None or not self.snapshots.exists(target.source.tree):
            raise Conflict(
                f"the source of job {target.id} is no longer kept (snapshots are kept for the"
                f" last {self.settings.kept_deploys} successful ups of each environment)"
            )
        return target

    async def _enqueue(
        self,
        environment: str,
        operation: Operation,
        idempotency: IdempotencyKey | None,
        capture: Any,
        check: Callable[[], None] | None = None,
        **fields: Any,
    ) -> Submitted:
        """`check` raises to refuse the request; it runs before the capture and again with
        the insert, so both see one state of the store."""
        replay = self._replay(idempotency)
        if replay is not None:
            return replay
        self.check_ready()
        if check is not None:
            check()
        self._check_queue(environment)
        try:
            source: Source = await asyncio.to_thread(capture)
        except SnapshotError as error:
            raise InvalidRequest(str(error)) from error
        # No await from here on: the checks and the insert see one state of the store.
        replay = self._replay(idempotency)
        if replay is not None:
            return replay
        if check is not None:
            check()
        self._check_queue(environment)
        try:
            job = self.store.create_job(
                environment, operation, source=source, idempotency=idempotency, **fields
            )
        except sqlite3.IntegrityError:  # the same key was used concurrently: it won
            replay = self._replay(idempotency)
            if replay is None:
                raise
            return replay
        self._wake[environment].set()
        if environment in self._running:
            self.pool.replenish(environment)  # warm the next job's worker while this one runs
        log.info("job %s queued: %s %s (tree %s)", job.id, operation, environment, source.tree)
        return Submitted(job)

    def _replay(self, idempotency: IdempotencyKey | None) -> Submitted | None:
        if idempotency is None:
            return None
        found = self.store.idempotent_job(
            idempotency.caller, idempotency.key, since=self.clock() - IDEMPOTENCY_WINDOW
        )
        if found is None:
            return None
        request_hash, job_id = found
        if request_hash != idempotency.request_hash:
            raise InvalidRequest(
                f"Idempotency-Key {idempotency.key[:64]!r} was used for a different request"
                f" (job {job_id}); use a new key for a new request"
            )
        return Submitted(self.store.require(job_id), replayed=True)

    async def _drift_schedule(self, environment: str, interval: float) -> None:
        """A drift check every `interval` seconds, unless one is queued or running."""
        while True:
            await asyncio.sleep(interval)
            running = self._running.get(environment)
            if running is not None and running.job.operation is Operation.DRIFT:
                continue
            try:
                await self.submit(environment, Operation.DRIFT, requested_by="schedule")
            except (QueueFull, NotReady, InvalidRequest) as error:
                log.warning("scheduled drift check of %s skipped: %s", environment, error)

    def _check_queue(self, environment: str) -> None:
        queued = self.store.count_queued(environment)
        if queued >= self.settings.queue_limit:
            raise QueueFull(
                f"the queue of {environment} is full ({queued} jobs waiting); retry later"
            )

    def _check_config(
        self, environment: str, config: dict[str, str | None], allowed_keys: set[str]
    ) -> None:
        """Every key allowlisted, no secret key, every value within limits and valid for
        its key (the image key takes exactly what /deploy takes)."""
        allowed = set(self.settings.config_allowlist) | allowed_keys
        refused = sorted(set(config) - allowed)
        if refused:
            raise InvalidRequest(
                f"config keys not allowed: {', '.join(k[:64] for k in refused)}; allowed:"
                f" {', '.join(sorted(self.settings.config_allowlist)) or 'none'}"
            )
        limit = self.settings.max_config_value_bytes
        project = project_name(self.settings.project_dir)
        image_key = qualified_key(project, self.settings.image_config_key)
        for key, value in config.items():
            if value is None:
                continue
            size = len(value.encode())
            if size > limit:
                raise InvalidRequest(f"config {key}: the value is {size} bytes; at most {limit}")
            if qualified_key(project, key) == image_key:
                try:
                    parse_image_reference(value)
                except InvalidImageReference as error:
                    raise InvalidRequest(f"config {key}: {error}") from error
        self._refuse_secret_keys(self.settings.project_dir, environment, config)

    @staticmethod
    def _refuse_secret_keys(
        project_dir: Path, environment: str, config: dict[str, str | None]
    ) -> None:
        if not config:
            return
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
            cancelled = self.store.require(job_id)
            self.notify("job.finished", cancelled)
            return cancelled
        running = self._running.get(job.environment)
        current = self.store.require(job_id)
        if running is None or running.job.id != job_id or current.status.finished:
            raise JobFinished(f"job {job_id} is already {current.status.value}")
        if not running.cancel_requested:
            running.cancel_requested = True
            self.store.request_cancel(job_id)
            if running.worker is not None and not running.verifying:
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
        if job.rollback_of is not None:
            self.notify("rollback.started", job)
        try:
            await self._operate(running)
            if running.verifying:
                await self._verify(running)
        except Exception as error:  # the job must end, whatever went wrong here
            log.exception("job %s: the runner failed", job.id)
            self.store.finish(job.id, JobStatus.FAILED, error=f"the service failed: {error}")
        finally:
            for listener in self._finish_listeners:
                listener(job)
            self._announce(self.store.require(job.id))
            # Followers see the end now; the environment's next job still waits below until
            # nothing of this operation runs.
            self.signals.notify(job.id)
            if running.worker is not None and not self._stopping:
                await self._after_result(running.job, running.worker)
            if not self._stopping:
                self.snapshots.discard(job.id)
                self._prune_snapshots()
            del self._running[job.environment]
            self.signals.notify(job.id)

    async def _operate(self, running: _Running) -> None:
        job = running.job
        worker = await self.pool.take(job.environment)
        self.store.set_worker(job.id, worker.pid, worker.marker)
        if running.cancel_requested or running.shutdown:
            await worker.release()
            self._finish(running, ResultMessage(status=JobStatus.CANCELLED), worker)
            return
        try:
            work_dir = await asyncio.to_thread(self._prepare_work_dir, job)
        except (SnapshotError, InvalidRequest, ValueError, OSError) as error:
            await worker.release()
            self._finish(
                running,
                ResultMessage(status=JobStatus.FAILED, error=f"cannot prepare the job: {error}"),
                worker,
            )
            return
        running.worker = worker
        spec = JobSpec(operation=job.operation, work_dir=str(work_dir), message=job.message)
        if job.operation is Operation.PREVIEW:
            spec.save_plan = str(self.plans.path(job.id))
        elif job.applies is not None:
            spec.plan = str(self.plans.path(job.applies))
        await worker.send(spec)
        async with contextlib.aclosing(worker.messages()) as messages:
            async for message in messages:
                if isinstance(message, EventMessage):
                    running.changes.observe(message.event)
                    self.store.append_events(job.id, [json.dumps(message.event)])
                elif isinstance(message, OutputMessage):
                    self.store.append_log(job.id, [message.line])
                else:  # final: the job ends now; its processes are ended before the next job
                    self._finish(running, message, worker, work_dir)
                    return
                self.signals.notify(job.id)
        code = await worker.wait()
        running.worker = None  # its processes are dealt with here, not after a result
        await self._after_worker_death(running, worker, code)

    def _announce(self, job: Job) -> None:
        if not job.status.finished:  # the service is stopping: repaired at the next start
            return
        self.notify("job.finished", job)
        if job.operation is Operation.DRIFT and job.status is JobStatus.SUCCEEDED:
            state = drift_state(job)
            if state.status == "drifted":
                self.notify("drift.found", job)

    async def _verify(self, running: _Running) -> None:
        """Probe the deployment of a successful up; a failure fails the job and, unless the
        environment says not to or the job is itself a rollback, queues a rollback to the
        previous successful up (ahead of other queued jobs)."""
        job = self.store.require(running.job.id)
        spec = self.settings.verify_spec(job.environment)
        url, skipped = target_url(spec, job)
        if url is None:  # _finish found a URL in these outputs
            raise RuntimeError(f"nothing to verify: {skipped}")

        def progress(state: Verification) -> None:
            self.store.set_verification(job.id, state)
            self.signals.notify(job.id)

        result = await verify(
            spec,
            job,
            url,
            progress,
            lambda: running.cancel_requested or running.shutdown,
        )
        results = JobResults(verification=result)
        if result.status == "passed":
            self.store.finish(job.id, JobStatus.SUCCEEDED, results=results)
        elif result.status == "cancelled":
            status = JobStatus.INTERRUPTED if running.shutdown else JobStatus.CANCELLED
            cancelled = "cancelled while verifying the deployment"
            self.store.finish(job.id, status, error=cancelled, results=results)
        else:
            # The rollback is queued (and linked) before the job ends, so whoever sees the job
            # failed also sees its rollback.
            if not spec.rollback:
                off = f"no automatic rollback: it is off for {job.environment}"
                self.store.add_note(job.id, off)
            elif job.rollback_of is not None:
                self.store.add_note(job.id, "no automatic rollback: this job is itself a rollback")
            else:
                await self._roll_back_after(job)
            reason = f"verification failed: {result.reason}"
            failed = self.store.finish(job.id, JobStatus.FAILED, error=reason, results=results)
            self.notify("verification.failed", failed)

    async def _roll_back_after(self, failed: Job) -> None:
        ups = self.store.successful_ups(failed.environment, limit=1)
        target = ups[0] if ups else None
        if target is None or target.source is None or not self.snapshots.exists(target.source.tree):
            self.store.add_note(
                failed.id, "no automatic rollback: no earlier successful up whose source is kept"
            )
            return
        source = target.source
        try:
            submitted = await self._enqueue(
                failed.environment,
                Operation.UP,
                None,
                capture=lambda: source,
                message=f"automatic rollback: the verification of {failed.id} failed",
                config=target.config,
                image=target.image,
                requested_by="automation",
                rollback_of=target.id,
                rolls_back=failed.id,
            )
        except (QueueFull, NotReady, InvalidRequest) as error:
            self.store.add_note(failed.id, f"the automatic rollback could not be queued: {error}")
            return
        self.store.add_note(
            failed.id,
            f"queued rollback {submitted.job.id} to {target.id}, the previous successful up",
        )

    async def _after_result(self, job: Job, worker: WorkerProcess) -> None:
        """Before the environment's next operation: the worker has exited, and nothing its
        operation started still runs."""
        try:
            await asyncio.wait_for(worker.wait(), self.settings.worker_exit_seconds)
        except TimeoutError:
            self.store.add_note(
                job.id,
                f"the worker (pid {worker.pid}) had not exited"
                f" {self.settings.worker_exit_seconds:g}s after its result",
            )
            worker.kill()
            await worker.wait()
        if await self._end_processes(job, worker.marker, after_result=True):
            # A CLI ended here may have held the stack's lock (a cancel that landed as the
            # operation started): clear what it left, as after a crash.
            await self._repair_stack(job)

    async def _after_worker_death(
        self, running: _Running, worker: WorkerProcess, code: int
    ) -> None:
        """A worker ended without a result: end its operation's processes, repair the stack,
        then fail (or cancel) the job, saying why."""
        job = running.job
        cause = (
            f"killed by {signal.Signals(-code).name}"
            if code < 0 and -code in signal.valid_signals()
            else f"exited with code {code}"
        )
        self.store.add_note(job.id, f"the worker (pid {worker.pid}) {cause} without a result")
        self.signals.notify(job.id)
        await self._end_processes(job, worker.marker)
        await self._repair_stack(job)
        tail = "\n".join(worker.stderr_tail)
        self._finish(
            running,
            ResultMessage(
                status=JobStatus.CANCELLED if running.cancel_requested else JobStatus.FAILED,
                error=f"the worker process {cause} without a result"
                + (f":\n{tail}" if tail else ""),
            ),
            worker,
        )

    def _prepare_work_dir(self, job: Job) -> Path:
        """The job's private copy of its source, with its config: the stack file's, then what
        successful ups wrote after this job was accepted (unless it is a rollback, which
        restores an old job exactly), then its own."""
        if job.source is None:
            raise SnapshotError("the job has no source snapshot")
        project_dir = self.settings.project_dir
        work_dir = self.snapshots.materialize(job.source.tree, job.id, project_dir)
        if job.applies is not None:  # exactly the stack file (config, salt) its preview ran with
            shutil.copyfile(
                self.plans.stack_file(job.applies), stack_file(work_dir, job.environment)
            )
            return work_dir
        config: dict[str, str | None] = {}
        if job.rollback_of is None:
            for earlier in self.store.ups_finished_since(job.environment, job.created_at):
                inherited = {change.key: change.new for change in earlier.config_changes}
                if inherited:
                    config.update(inherited)
                    shown = ", ".join(f"{key}={value}" for key, value in inherited.items())
                    self.store.add_note(
                        job.id,
                        f"runs with the config job {earlier.id} wrote after this job was"
                        f" accepted: {shown}",
                    )
        config.update(job.config)
        if config:
            self._refuse_secret_keys(work_dir, job.environment, config)
            apply_config(stack_file(work_dir, job.environment), project_name(work_dir), config)
        if job.operation is Operation.PREVIEW:  # what an apply of its plan must run with
            self.store.set_run_config(job.id, config)
        return work_dir

    def _write_back(self, job: Job, work_dir: Path) -> list[ConfigChange]:
        """A successful up's config becomes the environment's: the keys it set (for a
        rollback, every key requests may set, as the restored job had them) are written to the
        checkout's stack file, atomically, everything else in it kept."""
        project = project_name(work_dir)
        if job.rollback_of is None:
            values = dict(job.config)
        else:
            keys = [*self.settings.config_allowlist, self.settings.image_config_key]
            restored = read_config(stack_file(work_dir, job.environment), project, keys)
            values = {key: value for key, value in restored.items() if value != SECRET}
        if not values:
            return []
        target = stack_file(self.settings.project_dir, job.environment)
        return apply_config(target, project_name(self.settings.project_dir), values)

    def _prune_snapshots(self) -> None:
        self.plans.prune(self.settings.plan_max_age_seconds + 3600)
        keep = set(self.store.unfinished_trees())
        for environment in self.environments:
            for job in self.store.successful_ups(environment, self.settings.kept_deploys):
                if job.source is not None:
                    keep.add(job.source.tree)
        self.snapshots.prune(keep, grace_seconds=SNAPSHOT_GRACE_SECONDS)

    def _finish(
        self,
        running: _Running,
        result: ResultMessage,
        worker: WorkerProcess,
        work_dir: Path | None = None,
    ) -> None:
        job = running.job
        status: JobStatus = result.status
        error = result.error
        if running.shutdown and status is not JobStatus.SUCCEEDED:
            status = JobStatus.INTERRUPTED
            self.store.add_note(
                job.id, "the service was shutting down: the operation was cancelled (Ctrl-C)"
            )
        elif running.cancel_requested and status is JobStatus.SUCCEEDED:
            self.store.add_note(job.id, "cancel came too late: the operation had completed")
        results = JobResults(changes=running.changes.entries())
        if (
            status is JobStatus.SUCCEEDED
            and job.operation is Operation.PREVIEW
            and work_dir is not None
            and self.plans.seal(job.id, stack_file(work_dir, job.environment))
        ):
            expires = self.clock() + timedelta(seconds=self.settings.plan_max_age_seconds)
            results = replace(results, plan_expires_at=expires)
        if status is JobStatus.SUCCEEDED and job.operation is Operation.UP and work_dir:
            try:
                results = replace(results, config_changes=self._write_back(job, work_dir))
            except (OSError, ValueError) as write_error:
                status = JobStatus.FAILED
                error = (
                    "the up succeeded but its config could not be written to the stack file"
                    f" {stack_file(self.settings.project_dir, job.environment)}: {write_error}"
                )
        if status is JobStatus.SUCCEEDED and job.operation is Operation.UP:
            deployed = job.model_copy(update={"outputs": result.outputs})
            url, skipped = target_url(self.settings.verify_spec(job.environment), deployed)
            if url is not None:
                self.store.set_verifying(
                    job.id,
                    summary=result.summary,
                    outputs=result.outputs,
                    results=replace(
                        results, verification=Verification(status="verifying", url=url)
                    ),
                )
                running.verifying = True
                log.info("job %s: up succeeded, verifying %s", job.id, url)
                return
            results = replace(results, verification=Verification(status="skipped", reason=skipped))
        self.store.finish(
            job.id,
            status,
            summary=result.summary,
            outputs=result.outputs,
            error=error,
            results=results,
        )
        log.info("job %s %s (worker %s)", job.id, status.value, worker.pid)


def request_fingerprint(*parts: Any) -> str:
    """What an Idempotency-Key is bound to: the route and the request, canonically."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _left_stack_unchanged(job: Job) -> bool:
    """A finished job whose summary says every resource stayed the same."""
    summary = job.summary or {}
    return (
        job.status is JobStatus.SUCCEEDED
        and bool(summary)
        and all(op == "same" or count == 0 for op, count in summary.items())
    )


def drift_state(job: Job | None) -> DriftState:
    """What the last drift job of an environment found."""
    if job is None:
        return DriftState(status="unknown", checked_at=None, job_id=None, resources=[])
    if job.status is not JobStatus.SUCCEEDED:
        return DriftState(status="unknown", checked_at=job.finished_at, job_id=job.id, resources=[])
    drifted = [change for change in job.changes or [] if change.op not in ("same", "refresh")]
    return DriftState(
        status="drifted" if drifted else "none",
        checked_at=job.finished_at,
        job_id=job.id,
        resources=drifted,
    )
