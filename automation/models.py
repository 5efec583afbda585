"""The HTTP API's request and response shapes (the stable contract at /openapi.json)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

SECRET = "[secret]"
"""What a secret value looks like everywhere the service shows one."""


class Operation(StrEnum):
    PREVIEW = "preview"
    UP = "up"
    REFRESH = "refresh"
    DESTROY = "destroy"
    DRIFT = "drift"
    """A refresh preview: what changed outside Pulumi, without changing the stack."""


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    VERIFYING = "verifying"
    """A successful up whose deployment is being probed (see `verification`)."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.VERIFYING)


ConfigScalar = StrictStr | StrictBool | StrictInt | StrictFloat
"""A config value as a client may send it; Pulumi stores every scalar as text."""

Message = Annotated[str, Field(max_length=1000, description="Recorded with the update.")]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceRequest(_Request):
    commit: StrictStr = Field(
        description="Run this commit of the project's git checkout instead of its working tree."
    )


class OperationRequest(_Request):
    message: Message | None = None
    config: dict[Annotated[str, Field(max_length=200)], ConfigScalar | None] = Field(
        default_factory=dict,
        max_length=50,
        description=(
            "Stack config for this job only (keys must be allowlisted; `null` unsets a key)."
            " A successful up writes it back to the stack file; nothing else keeps it."
        ),
    )
    source: SourceRequest | None = None
    confirm: StrictStr | None = Field(
        default=None,
        max_length=200,
        description="Required by destroy: the environment's name, to confirm.",
    )


class DeployRequest(_Request):
    image: StrictStr = Field(
        max_length=1024,
        description="`<repository>:<tag>` or `<repository>@sha256:<64 hex digits>`.",
    )
    message: Message | None = None
    source: SourceRequest | None = None


class RollbackRequest(_Request):
    to: StrictStr | None = Field(
        default=None,
        max_length=64,
        description="A successful up of this environment; default: the one before the latest.",
    )
    message: Message | None = None


class ApplyRequest(_Request):
    message: Message | None = None


class Source(BaseModel):
    tree: str = Field(description="SHA-256 of the captured project tree (content-addressed).")
    commit: str | None = Field(description="The git commit, when the project is a checkout.")
    dirty: bool | None = Field(description="Whether the tree differed from that commit.")


class ConfigChange(BaseModel):
    key: str
    old: str | None
    new: str | None


class PropertyDiff(BaseModel):
    kind: str = Field(description="The engine's diff kind: add, update, delete, *-replace.")
    old: Any = None
    new: Any = None


class ResourceChange(BaseModel):
    urn: str
    type: str
    name: str
    op: str = Field(description="The engine's step: create, update, replace, delete, same, …")
    diff: dict[str, PropertyDiff] = Field(
        default_factory=dict,
        description=(
            "The changed property paths, each with its old and new value (secret values as"
            f" {SECRET!r}); for a create or delete, every input."
        ),
    )


class Probe(BaseModel):
    at: datetime
    ok: bool
    status: int | None = Field(description="The HTTP status; null when there was no answer.")
    latency_ms: float
    error: str | None = None


class Verification(BaseModel):
    status: str = Field(description="verifying, passed, failed, skipped or cancelled.")
    url: str | None = None
    reason: str | None = Field(default=None, description="Why it failed or was skipped.")
    probes: list[Probe] = Field(default_factory=list)


class Job(BaseModel):
    id: str
    environment: str
    operation: Operation
    status: JobStatus
    message: str | None = None
    config: dict[str, str | None] = Field(
        default_factory=dict, description="The config this job was asked to run with."
    )
    image: str | None = Field(default=None, description="Set by POST /environments/{env}/deploy.")
    source: Source | None = Field(default=None, description="The project source the job runs.")
    rollback_of: str | None = Field(
        default=None, description="The successful up whose source and config this job restores."
    )
    applies: str | None = Field(
        default=None, description="The preview whose saved plan this up applies."
    )
    applied_by: str | None = Field(
        default=None, description="The up that applies this preview's plan."
    )
    approved_by: str | None = Field(
        default=None,
        description="Who approved the apply in an environment that requires approval"
        " ('local' without tokens).",
    )
    plan_expires_at: datetime | None = Field(
        default=None, description="A succeeded preview's saved plan can be applied until then."
    )
    verification: Verification | None = Field(
        default=None, description="The probes of the deployment after a successful up."
    )
    rolled_back_by: str | None = Field(
        default=None, description="The rollback queued because this job's verification failed."
    )
    rolls_back: str | None = Field(
        default=None, description="The job whose failed verification queued this rollback."
    )
    changes: list[ResourceChange] | None = Field(
        default=None,
        description="One entry per resource the engine stepped over, in its order.",
    )
    config_changes: list[ConfigChange] = Field(
        default_factory=list,
        description=f"What a successful up wrote to the stack file (secrets as {SECRET!r}).",
    )
    requested_by: str | None = Field(default=None, description="The name of the caller's token.")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested: bool = False
    summary: dict[str, int] | None = Field(
        default=None, description="The engine's change counts: create, update, delete, same, …"
    )
    outputs: dict[str, Any] | None = Field(
        default=None, description=f"Stack outputs after an up (secrets as {SECRET!r})."
    )
    error: str | None = None
    notes: list[str] = Field(
        default_factory=list, description="What the service did to the job or its stack."
    )


class JobPage(BaseModel):
    items: list[Job]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")


class JobRef(BaseModel):
    id: str
    operation: Operation
    status: JobStatus
    finished_at: datetime | None


class EnvironmentSummary(BaseModel):
    name: str
    last_job: JobRef | None
    outputs: dict[str, Any] | None = Field(
        description="Outputs after the last successful up ({} after a successful destroy)."
    )


class DriftState(BaseModel):
    status: str = Field(description="none, drifted or unknown (the last check failed).")
    checked_at: datetime | None
    job_id: str | None = Field(description="The drift job that checked.")
    resources: list[ResourceChange] = Field(
        description="Resources whose real state differs from the stack's, with the properties."
    )


class EnvironmentDetail(BaseModel):
    name: str
    stack_exists: bool = Field(description="False until the first operation creates the stack.")
    config: dict[str, Any] = Field(description=f"The stack's config; secrets as {SECRET!r}.")
    outputs: dict[str, Any] = Field(description=f"Current stack outputs; secrets as {SECRET!r}.")
    active_job: Job | None
    queued_jobs: list[Job]
    drift: DriftState = Field(description="The last drift check (unknown before the first).")


class Problem(BaseModel):
    detail: Any


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str | None = Field(description="The token's name; null without tokens (loopback).")
    client: str | None = Field(description="The caller's address.")
    environment: str | None
    operation: str = Field(description="preview, up, deploy, rollback, apply, cancel, …")
    job_id: str | None
    outcome: str = Field(description="accepted, cancelled, applied, approved or refused.")
    status: int = Field(description="The HTTP status of the answer.")
    detail: str | None = Field(description="Why a request was refused.")


class AuditPage(BaseModel):
    items: list[AuditEntry] = Field(description="Oldest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (newer) page.")


class WebhookDelivery(BaseModel):
    id: int
    delivery: str = Field(description="The X-Automation-Delivery id (the same for each try).")
    event: str
    endpoint: str = Field(description="The endpoint's URL without its query.")
    job_id: str | None
    attempt: int
    at: datetime
    status: int | None = Field(description="The endpoint's HTTP status; null on no answer.")
    ok: bool
    error: str | None
    duration_ms: float


class WebhookDeliveryPage(BaseModel):
    items: list[WebhookDelivery] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")
