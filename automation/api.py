"""The HTTP layer: thin routes over the runner and the store, wired with FastAPI dependencies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import (
    Body,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
    Security,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pulumi import automation as auto
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from automation import dashboard, openapi, sse
from automation.auth import Authenticator, Caller
from automation.child_env import passphrase_file
from automation.engine import Engine, EngineError
from automation.http_guard import EdgePolicy, HttpGuard, allowed_hosts, shorten
from automation.models import (
    ApplyRequest,
    AuditPage,
    DeployRequest,
    EnvironmentDetail,
    EnvironmentSummary,
    Job,
    JobPage,
    JobRef,
    JobStatus,
    Operation,
    OperationRequest,
    RollbackRequest,
    WebhookDeliveryPage,
)
from automation.openapi import problems
from automation.plans import PlanFiles
from automation.pulumi_adapter import StackReader
from automation.readiness import Readiness
from automation.retention import Retention, RetentionPolicy
from automation.runner import (
    Conflict,
    InvalidRequest,
    NotReady,
    QueueFull,
    Runner,
    RunnerSettings,
    Submitted,
    UnknownEnvironment,
    UnknownJob,
    drift_state,
    request_fingerprint,
)
from automation.settings import Settings
from automation.snapshots import SnapshotStore
from automation.stack_views import StackViews
from automation.state_lock import StateDirLock
from automation.store import IdempotencyKey, Store, StoreError, now
from automation.webhooks import Webhooks
from automation.worker_pool import WorkerPool
from infra.image_ref import InvalidImageReference, parse_image_reference

log = logging.getLogger("automation.api")
REPLAYED: dict[int | str, dict[str, Any]] = {
    200: {"model": Job, "description": "An Idempotency-Key seen before: the job it created"}
}
CURSOR = re.compile(r"[0-9]{1,18}")
BEARER = HTTPBearer(
    auto_error=False, description="A token from AUTOMATION_TOKENS (none when it is empty)."
)


@dataclass
class Services:
    store: Store
    runner: Runner
    views: StackViews
    auth: Authenticator
    readiness: Readiness


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]


def caller(
    svc: ServicesDep,
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
) -> Caller:
    """`Security(BEARER)` declares the scheme in OpenAPI; identify_headers() reads the header
    itself, so a malformed one gets its own message (or, without one, the dashboard's cookie)."""
    return svc.auth.identify_headers(request.headers)


CallerDep = Annotated[Caller, Depends(caller)]


def reader(who: CallerDep) -> Caller:
    who.require_read()
    return who


ReaderDep = Annotated[Caller, Depends(reader)]


def known_environment(env: str, svc: ServicesDep) -> str:
    if env not in svc.runner.environments:
        raise UnknownEnvironment(env)
    return env


def operator(who: CallerDep, env: Annotated[str, Depends(known_environment)]) -> Caller:
    who.require_operate(env)
    return who


OperatorDep = Annotated[Caller, Depends(operator)]


IdempotencyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="The same key (per caller) within 24 h returns the job it created (200).",
    ),
]


def create_app(
    settings: Settings,
    state_lock: StateDirLock | None = None,
    clock: Callable[[], datetime] = now,
) -> FastAPI:
    """The service; `state_lock` is the state dir's lock when the caller already holds it
    (python -m automation takes it before serving, to exit 2 at once when it is taken);
    `clock` gives every time the service records and plan expiry (a test's own clock)."""
    settings.check_exposure()
    auth = Authenticator(settings.tokens)
    draining = asyncio.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        lock = state_lock or StateDirLock(settings.state_dir)
        if not lock.held:
            lock.acquire()
        store = Store(settings.database_path, clock)
        webhooks = Webhooks(settings.webhooks, store)
        engine = Engine.configure(settings.state_dir, settings.backend_url)
        pool = WorkerPool(
            settings.project_dir,
            settings.state_dir,
            settings.backend_url,
            passphrase_file(settings.state_dir),
        )
        runner = Runner(
            RunnerSettings(
                project_dir=settings.project_dir,
                environments=settings.environment_names(),
                queue_limit=settings.queue_limit,
                config_allowlist=settings.config_allowlist,
                image_config_key=settings.image_config_key,
                recovery_wait_seconds=settings.recovery_wait_seconds,
                shutdown_grace_seconds=settings.shutdown_grace_seconds,
                kept_deploys=settings.kept_deploys,
                require_approval=tuple(settings.require_approval),
                plan_max_age_seconds=settings.plan_ttl_seconds,
                verify=settings.verify,
                drift_schedule=settings.drift_schedule,
            ),
            store,
            engine,
            pool,
            SnapshotStore(settings.state_dir),
            PlanFiles(settings.state_dir),
            clock,
            webhooks.emit,
        )
        views = StackViews(StackReader(engine, settings.project_dir).read, settings.project_dir)
        runner.on_job_finished(lambda job: views.invalidate(job.environment))
        app.state.services = Services(
            store,
            runner,
            views,
            auth,
            Readiness(engine, settings.project_dir, runner.environments),
        )
        retention = Retention(
            store, RetentionPolicy(days=settings.retention_days, kept_deploys=settings.kept_deploys)
        )
        if auth.open_access:
            log.warning(
                "no tokens configured: the API is open to anyone who can reach %s:%s",
                settings.host,
                settings.port,
            )
        log.info(
            "environments: %s; project %s", runner.environments or "none", settings.project_dir
        )
        await runner.start()
        pruning = asyncio.create_task(retention.run(), name="retention")
        try:
            yield
        finally:
            pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruning
            await runner.stop()
            await webhooks.close()
            store.close()
            lock.release()

    app = FastAPI(
        title="ecs-fargate-app automation",
        summary="Preview, up, refresh and destroy the project's stacks; jobs, events, history.",
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.draining = draining
    app.add_middleware(
        HttpGuard,
        policy=EdgePolicy(
            max_body_bytes=settings.max_body_bytes,
            body_timeout_seconds=settings.body_timeout_seconds,
            authenticate=auth.identify_headers,
            allowed_hosts=(
                allowed_hosts(settings.host, settings.allowed_hosts) if auth.open_access else None
            ),
            draining=draining,
        ),
    )
    _install_error_handlers(app)
    openapi.install(app)
    _add_routes(app)
    dashboard.install(app, auth, settings.environment_names(), settings.require_approval)
    return app


def _problem(status: int, detail: Any, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def unknown_environment(request: Request, error: Exception) -> JSONResponse:
        svc = services(request)
        detail = f"unknown environment {shorten(error.args[0])}"
        if _may_read(svc, request):  # the list is for callers who may read it anyway
            detail += f"; known: {', '.join(svc.runner.environments) or 'none'}"
        return _problem(404, detail)

    async def unknown_job(_request: Request, error: Exception) -> JSONResponse:
        return _problem(404, f"unknown job {shorten(error.args[0])}")

    async def validation(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return _problem(422, [_describe_validation(item) for item in error.errors()])

    async def http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        if error.status_code == 403:
            _audit_refusal(request, 403, str(error.detail))
        return _problem(error.status_code, error.detail, error.headers)

    async def conflict(request: Request, error: Exception) -> JSONResponse:
        _audit_refusal(request, 409, str(error))
        return _problem(409, str(error))

    async def unexpected(_request: Request, error: Exception) -> JSONResponse:
        log.error("unexpected %s while serving a request", type(error).__name__, exc_info=error)
        return _problem(500, "internal error; the service log has the details")

    app.add_exception_handler(UnknownEnvironment, unknown_environment)
    app.add_exception_handler(UnknownJob, unknown_job)
    app.add_exception_handler(QueueFull, _status_handler(429, {"Retry-After": "5"}))
    app.add_exception_handler(Conflict, conflict)
    app.add_exception_handler(InvalidRequest, _status_handler(422))
    app.add_exception_handler(NotReady, _status_handler(503))
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http)
    app.add_exception_handler(Exception, unexpected)


def _audit(
    svc: Services,
    request: Request,
    who: Caller | None,
    *,
    environment: str | None,
    operation: str,
    job_id: str | None,
    outcome: str,
    status: int,
    detail: str | None = None,
) -> None:
    svc.store.audit(
        actor=who.name if who else None,
        client=request.client.host if request.client else None,
        environment=environment,
        operation=operation,
        job_id=job_id,
        outcome=outcome,
        status=status,
        detail=detail,
    )


def _audit_refusal(request: Request, status: int, detail: str) -> None:
    """A mutating request refused with 403 or 409: who asked for what, and why not."""
    if request.method != "POST" or request.scope.get("route") is None:
        return
    svc = services(request)
    params = request.path_params
    environment, job_id = params.get("env"), params.get("job_id")
    operation = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    if job_id is not None:
        job = svc.store.get(job_id)
        environment = job.environment if job else None
        job_id = job.id if job else None
    try:
        who: Caller | None = svc.auth.identify_headers(request.headers)
    except HTTPException:
        who = None
    _audit(
        svc,
        request,
        who,
        environment=environment[:100] if environment else None,
        operation=operation[:50],
        job_id=job_id,
        outcome="refused",
        status=status,
        detail=detail,
    )


def _may_read(svc: Services, request: Request) -> bool:
    try:
        return svc.auth.identify_headers(request.headers).may_read()
    except HTTPException:
        return False


def _status_handler(status: int, headers: dict[str, str] | None = None) -> Any:
    async def handle(_request: Request, error: Exception) -> JSONResponse:
        return _problem(status, str(error), headers)

    return handle


def _describe_validation(item: Any) -> dict[str, Any]:
    """Where and what, without echoing the input back (it may be a value meant to be secret)."""
    return {"loc": list(item.get("loc", ())), "msg": item.get("msg", ""), "type": item.get("type")}


def _accepted(
    svc: Services,
    request: Request,
    who: Caller,
    response: Response,
    submitted: Submitted,
    operation: str,
    outcome: str = "accepted",
) -> Job:
    """202 with the new job (audited), or 200 with the job an Idempotency-Key already
    created."""
    job = submitted.job
    response.headers["Location"] = f"/jobs/{job.id}"
    if submitted.replayed:
        response.status_code = 200
    else:
        _audit(
            svc,
            request,
            who,
            environment=job.environment,
            operation=operation,
            job_id=job.id,
            outcome=outcome,
            status=202,
        )
    return job


def _idempotency(key: str | None, who: Caller, *request: Any) -> IdempotencyKey | None:
    if key is None:
        return None
    return IdempotencyKey(who.name or "", key, request_fingerprint(*request))


def _add_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["service"], responses=problems())
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["service"], responses=problems(503))
    async def readyz(svc: ServicesDep) -> dict[str, str]:
        problems = []
        try:
            svc.store.ping()
        except StoreError as error:
            problems.append(str(error))
        try:
            svc.runner.check_ready()
        except NotReady as error:
            problems.append(str(error))
        else:
            problems.extend(await svc.readiness.problems())
        if problems:
            raise HTTPException(503, "; ".join(problems))
        return {"status": "ready"}

    @app.get("/environments", tags=["environments"], responses=problems(401, 403))
    async def list_environments(svc: ServicesDep, _: ReaderDep) -> list[EnvironmentSummary]:
        summaries = []
        for name in svc.runner.environments:
            last = svc.store.last_job(name)
            summaries.append(
                EnvironmentSummary(
                    name=name,
                    last_job=JobRef.model_validate(last, from_attributes=True) if last else None,
                    outputs=svc.store.last_outputs(name),
                )
            )
        return summaries

    @app.get("/environments/{env}", tags=["environments"], responses=problems(401, 403, 404, 503))
    async def environment(
        svc: ServicesDep, _: ReaderDep, env: Annotated[str, Depends(known_environment)]
    ) -> EnvironmentDetail:
        try:
            view = await svc.views.view(env)
        except EngineError as error:
            raise NotReady(str(error)) from error
        except auto.CommandError as error:
            raise NotReady(f"cannot read stack {env}: {str(error).strip()}") from error
        active = [
            *svc.store.jobs_with_status(JobStatus.RUNNING, env),
            *svc.store.jobs_with_status(JobStatus.VERIFYING, env),
        ]
        return EnvironmentDetail(
            name=env,
            stack_exists=view.exists,
            config=view.config,
            outputs=view.outputs,
            active_job=active[0] if active else None,
            queued_jobs=svc.store.jobs_with_status(JobStatus.QUEUED, env),
            drift=drift_state(svc.store.last_finished(env, Operation.DRIFT)),
        )

    @app.post(
        "/environments/{env}/deploy",
        status_code=202,
        tags=["operations"],
        responses={**REPLAYED, **problems(401, 403, 404, 422, 429, 503)},
    )
    async def deploy(
        svc: ServicesDep,
        who: OperatorDep,
        env: str,
        request: DeployRequest,
        http_request: Request,
        response: Response,
        idempotency_key: IdempotencyHeader = None,
    ) -> Job:
        """Set the stack's image config to `image` and run up (a rolling deployment)."""
        try:
            image = str(parse_image_reference(request.image))
        except InvalidImageReference as error:
            raise InvalidRequest(str(error)) from error
        submitted = await svc.runner.deploy(
            env,
            image,
            message=request.message,
            requested_by=who.name,
            commit=request.source.commit if request.source else None,
            idempotency=_idempotency(idempotency_key, who, env, "deploy", request.model_dump()),
        )
        return _accepted(svc, http_request, who, response, submitted, "deploy")

    @app.post(
        "/environments/{env}/rollback",
        status_code=202,
        tags=["operations"],
        responses={**REPLAYED, **problems(401, 403, 404, 409, 422, 429, 503)},
    )
    async def rollback(
        svc: ServicesDep,
        who: OperatorDep,
        env: str,
        http_request: Request,
        response: Response,
        request: Annotated[RollbackRequest | None, Body()] = None,
        idempotency_key: IdempotencyHeader = None,
    ) -> Job:
        """Queue an up with the source and config of an earlier successful up (default: the
        one before the latest); 409 when there is none to go back to."""
        request = request or RollbackRequest()
        submitted = await svc.runner.rollback(
            env,
            to=request.to,
            message=request.message,
            requested_by=who.name,
            idempotency=_idempotency(idempotency_key, who, env, "rollback", request.model_dump()),
        )
        return _accepted(svc, http_request, who, response, submitted, "rollback")

    @app.post(
        "/environments/{env}/{operation}",
        status_code=202,
        tags=["operations"],
        responses={**REPLAYED, **problems(401, 403, 404, 422, 429, 503)},
    )
    async def operate(
        svc: ServicesDep,
        who: OperatorDep,
        env: str,
        operation: Operation,
        http_request: Request,
        response: Response,
        request: Annotated[OperationRequest | None, Body()] = None,
        idempotency_key: IdempotencyHeader = None,
    ) -> Job:
        """Queue an operation; `config` keys must be allowlisted (AUTOMATION_CONFIG_ALLOWLIST).
        A destroy needs `{"confirm": "<environment name>"}`."""
        request = request or OperationRequest()
        if operation is Operation.DESTROY and request.confirm != env:
            given = "none" if request.confirm is None else shorten(request.confirm)
            raise InvalidRequest(
                f'destroy needs {{"confirm": "{env}"}}, the environment\'s name (given: {given})'
            )
        submitted = await svc.runner.submit(
            env,
            operation,
            message=request.message,
            config={key: _config_text(value) for key, value in request.config.items()},
            requested_by=who.name,
            commit=request.source.commit if request.source else None,
            idempotency=_idempotency(
                idempotency_key, who, env, operation.value, request.model_dump()
            ),
        )
        return _accepted(svc, http_request, who, response, submitted, operation.value)

    @app.get("/jobs", tags=["jobs"], responses=problems(401, 403, 404, 422))
    async def list_jobs(
        svc: ServicesDep,
        _: ReaderDep,
        environment: str | None = None,
        status: JobStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=20)] = None,
    ) -> JobPage:
        if environment is not None and environment not in svc.runner.environments:
            raise UnknownEnvironment(environment)
        before = _parse_cursor(cursor)
        jobs, position = svc.store.list_jobs(
            environment=environment, status=status, limit=limit, before=before
        )
        return JobPage(items=jobs, next_cursor=None if position is None else str(position))

    @app.get("/jobs/{job_id}", tags=["jobs"], responses=problems(401, 403, 404))
    async def job(svc: ServicesDep, _: ReaderDep, job_id: str) -> Job:
        return _require_job(svc, job_id)

    @app.get(
        "/jobs/{job_id}/log",
        tags=["jobs"],
        response_class=PlainTextResponse,
        responses=problems(401, 403, 404),
    )
    async def job_log(svc: ServicesDep, _: ReaderDep, job_id: str) -> str:
        _require_job(svc, job_id)
        return svc.store.log_text(job_id)

    @app.get(
        "/jobs/{job_id}/events",
        tags=["jobs"],
        responses={
            **problems(401, 403, 404, 422),
            200: {"content": {"text/event-stream": {}}, "description": "The job's events."},
        },
    )
    async def job_events(
        svc: ServicesDep,
        _: ReaderDep,
        job_id: str,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
        debug: Annotated[bool, Query(description="Include debug-severity diagnostics.")] = False,
    ) -> EventSourceResponse:
        """`status` events, the engine's events as `engine` or `log` (`id:` = the event's
        `sequence`; `Last-Event-ID` resumes after it), then `end` (finished or shutdown)."""
        _require_job(svc, job_id)
        return sse.job_event_response(svc.store, svc.runner.signals, job_id, last_event_id, debug)

    @app.post(
        "/jobs/{job_id}/cancel",
        tags=["jobs"],
        responses={
            **problems(401, 403, 404, 409),
            202: {"model": Job, "description": "A running job: cancel requested (Ctrl-C)."},
        },
    )
    async def cancel(
        svc: ServicesDep, who: CallerDep, job_id: str, request: Request, response: Response
    ) -> Job:
        """A queued job is cancelled at once (200); a running one gets Ctrl-C (202)."""
        job = _require_job(svc, job_id)
        who.require_operate(job.environment)
        job = svc.runner.cancel(job_id)
        if not job.status.finished:
            response.status_code = 202
        _audit(
            svc,
            request,
            who,
            environment=job.environment,
            operation="cancel",
            job_id=job.id,
            outcome="cancelled",
            status=response.status_code or 200,
        )
        return job

    @app.post(
        "/jobs/{job_id}/apply",
        status_code=202,
        tags=["jobs"],
        responses={**REPLAYED, **problems(401, 403, 404, 409, 422, 429, 503)},
    )
    async def apply(
        svc: ServicesDep,
        who: CallerDep,
        job_id: str,
        http_request: Request,
        response: Response,
        request: Annotated[ApplyRequest | None, Body()] = None,
        idempotency_key: IdempotencyHeader = None,
    ) -> Job:
        """Queue an up of a succeeded preview's source and config, constrained to the plan
        it saved. Where the environment requires approval, the token needs `approve:<env>`
        and must not be the preview's requester."""
        request = request or ApplyRequest()
        preview = _require_job(svc, job_id)
        environment = preview.environment
        approved_by = None
        if svc.runner.requires_approval(environment):
            approved_by = _approver(who, preview)
        else:
            who.require_operate(environment)
        submitted = await svc.runner.apply(
            job_id,
            message=request.message,
            requested_by=who.name,
            approved_by=approved_by,
            idempotency=_idempotency(idempotency_key, who, job_id, "apply", request.model_dump()),
        )
        outcome = "approved" if approved_by else "applied"
        return _accepted(svc, http_request, who, response, submitted, "apply", outcome)

    @app.get("/webhooks/deliveries", tags=["webhooks"], responses=problems(401, 403, 422))
    async def webhook_deliveries(
        svc: ServicesDep,
        _: ReaderDep,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: Annotated[str | None, Query(max_length=20)] = None,
    ) -> WebhookDeliveryPage:
        """Every delivery attempt of every webhook, newest first."""
        items, position = svc.store.deliveries(limit=limit, before=_parse_cursor(cursor))
        return WebhookDeliveryPage(
            items=items, next_cursor=None if position is None else str(position)
        )

    @app.get("/audit", tags=["audit"], responses=problems(401, 403, 404, 422))
    async def audit(
        svc: ServicesDep,
        _: ReaderDep,
        environment: str | None = None,
        since: Annotated[
            datetime | None, Query(description="Only entries at or after this time.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
        cursor: Annotated[str | None, Query(max_length=20)] = None,
    ) -> AuditPage:
        """Who did what: every accepted, cancelled, applied, approved or refused (403, 409)
        mutating request, oldest first."""
        if environment is not None and environment not in svc.runner.environments:
            raise UnknownEnvironment(environment)
        entries, position = svc.store.audit_entries(
            environment=environment, since=since, after=_parse_cursor(cursor), limit=limit
        )
        return AuditPage(items=entries, next_cursor=None if position is None else str(position))


def _approver(who: Caller, preview: Job) -> str:
    """The name recorded as approver, or 403: approval needs the scope and a second person."""
    environment = preview.environment
    if not who.may_approve(environment):
        raise HTTPException(
            403,
            f"token {who.name!r} lacks the scope 'approve:{environment}' (or 'approve:*'):"
            f" {environment} requires approval, and only an approver may apply a plan there",
        )
    if who.name is not None and who.name == preview.requested_by:
        raise HTTPException(
            403,
            f"token {who.name!r} requested preview {preview.id}: in {environment} another"
            " token must approve it (four-eyes)",
        )
    return who.name or "local"


def _require_job(svc: Services, job_id: str) -> Job:
    job = svc.store.get(job_id)
    if job is None:
        raise UnknownJob(job_id)
    return job


def _config_text(value: str | bool | int | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not CURSOR.fullmatch(cursor):
        raise InvalidRequest(f"cursor {shorten(cursor)} is not one this API returned (next_cursor)")
    return int(cursor)
