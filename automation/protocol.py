"""The line protocol between the service and a worker process.

The service writes one `JobSpec` line to the worker's stdin. The worker writes JSON lines to its
stdout: every engine event (`event`), every line of the operation's plain-text output
(`output`), and one final `result`. Everything a worker writes is already redacted.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from automation.models import JobStatus, Operation


class JobSpec(BaseModel):
    operation: Operation
    work_dir: str = Field(description="The job's private copy of the project, config applied.")
    message: str | None = None
    save_plan: str | None = Field(
        default=None, description="A preview saves its update plan here (--save-plan)."
    )
    plan: str | None = Field(
        default=None, description="An up is constrained to the plan saved here (--plan)."
    )


class EventMessage(BaseModel):
    kind: Literal["event"] = "event"
    event: dict[str, Any]


class OutputMessage(BaseModel):
    kind: Literal["output"] = "output"
    line: str


WorkerStatus = Literal[JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]


class ResultMessage(BaseModel):
    kind: Literal["result"] = "result"
    status: WorkerStatus
    summary: dict[str, int] | None = None
    outputs: dict[str, Any] | None = None
    error: str | None = None


WorkerMessage = Annotated[EventMessage | OutputMessage | ResultMessage, Field(discriminator="kind")]
WORKER_MESSAGE: TypeAdapter[WorkerMessage] = TypeAdapter(WorkerMessage)


def parse_message(line: bytes | str) -> WorkerMessage:
    """Raises pydantic.ValidationError for a line that is not a worker message."""
    return WORKER_MESSAGE.validate_json(line)
