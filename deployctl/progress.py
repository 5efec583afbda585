"""Following a job: the engine's events as a live table of resources (a terminal) or as one
line per step (a log), then the job's result.

The events are Pulumi engine events (camelCase JSON): `resourcePreEvent` starts a step on a
resource, `resOutputsEvent` ends it, `resOpFailedEvent` fails it, `diagnosticEvent` is a
message, `summaryEvent` closes the operation."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from deployctl.client import Event

FINAL_STATUSES = ("succeeded", "failed", "cancelled", "interrupted")
"""A status not in this list (queued, running, verifying, or one added later) is in progress."""
STEP_WORDS = {
    # op: (symbol, while running, when done)
    "create": ("+", "creating", "created"),
    "update": ("~", "updating", "updated"),
    "delete": ("-", "deleting", "deleted"),
    "replace": ("+-", "replacing", "replaced"),
    "create-replacement": ("++", "creating replacement", "created replacement"),
    "delete-replaced": ("--", "deleting original", "deleted original"),
    "read": (">", "reading", "read"),
    "read-replacement": (">>", "reading replacement", "read replacement"),
    "refresh": ("~", "refreshing", "refreshed"),
    "import": ("=", "importing", "imported"),
    "import-replacement": ("=>", "importing replacement", "imported replacement"),
    "discard": ("<", "discarding", "discarded"),
    "discard-replaced": ("<<", "discarding original", "discarded original"),
    "remove-pending-replace": ("-", "removing pending replace", "removed pending replace"),
    "same": (" ", "checking", "unchanged"),
}
STEP_STYLES = {"+": "green", "-": "red", "~": "yellow", "+-": "magenta", "++": "magenta"}
STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass
class Row:
    """A resource the engine stepped over: its latest step and how that step went."""

    urn: str
    type: str
    op: str
    started: float
    planning: bool
    ended: float | None = None
    failed: bool = False

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @property
    def status(self) -> str:
        running, done = STEP_WORDS.get(self.op, ("", self.op, self.op))[1:]
        if self.failed:
            return f"{running} failed"
        if self.planning:
            return "planned" if self.op != "same" else "unchanged"
        return done if self.ended is not None else running

    def elapsed(self, now: float) -> float:
        return (self.ended if self.ended is not None else now) - self.started

    @property
    def shown(self) -> bool:
        """Unchanged resources are left out, as the Pulumi CLI does, except the stack."""
        return self.op != "same" or self.type == STACK_TYPE


class Steps:
    """The engine's resource steps by URN, in the order the engine first named them."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.rows: dict[str, Row] = {}
        self._clock = clock

    def apply(self, event: dict[str, Any]) -> Row | None:
        """Record an engine event; the row it changed, if any."""
        when = float(event.get("timestamp") or self._clock())
        for key in ("resourcePreEvent", "resOutputsEvent", "resOpFailedEvent"):
            body = event.get(key)
            if not isinstance(body, dict):
                continue
            meta = body.get("metadata") or {}
            urn, op = str(meta.get("urn", "")), str(meta.get("op", ""))
            if not urn:
                return None
            row = self.rows.get(urn)
            if key == "resourcePreEvent":
                if row is None:
                    row = self.rows[urn] = Row(
                        urn, str(meta.get("type", "")), op, when, bool(body.get("planning"))
                    )
                row.op, row.ended, row.failed = op, None, False
                row.planning = bool(body.get("planning"))
            elif row is None:
                return None
            elif key == "resOutputsEvent":
                row.op, row.ended = op or row.op, when
            else:
                row.failed, row.ended = True, when
            return row
        return None


class View(Protocol):
    def __enter__(self) -> View: ...
    def __exit__(self, *exc: object) -> None: ...
    def event(self, event: Event) -> None: ...


def diagnostic_text(event: dict[str, Any]) -> tuple[str, str] | None:
    """(severity, message) of a diagnostic worth showing: not debug, not empty."""
    diagnostic = event.get("diagnosticEvent")
    if not isinstance(diagnostic, dict):
        return None
    severity = str(diagnostic.get("severity", "info"))
    message = str(diagnostic.get("message", "")).rstrip()
    if severity == "debug" or not message:
        return None
    return severity, message


SEVERITY_STYLES = {"error": "red", "warning": "yellow"}


class LiveView:
    """The Pulumi CLI's own kind of view for a terminal: a table of resources being stepped
    over, each with its step, status and elapsed time, redrawn as events arrive; messages
    print above it."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.title = title
        self.status = "queued"
        self.steps = Steps(time.time)
        self._spinner = Spinner("dots")
        self._live = Live(
            get_renderable=self._render, console=console, refresh_per_second=8, transient=False
        )

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def event(self, event: Event) -> None:
        if event.name in ("status", "end"):
            self.status = str(event.data.get("status", self.status))
        elif event.name == "log":
            shown = diagnostic_text(event.data)
            if shown:
                severity, message = shown
                self.console.print(
                    Text(f"{severity}: {message}", style=SEVERITY_STYLES.get(severity, "dim"))
                )
        else:
            self.steps.apply(event.data)
        self._live.refresh()

    def _render(self) -> RenderableType:
        now = time.time()
        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        table.add_column("")
        table.add_column("Type")
        table.add_column("Name")
        table.add_column("Status")
        table.add_column("Elapsed", justify="right")
        for row in self.steps.rows.values():
            if not row.shown:
                continue
            symbol = STEP_WORDS.get(row.op, ("?",))[0]
            in_progress = row.ended is None and not row.planning
            table.add_row(
                Text(symbol, style=STEP_STYLES.get(symbol, "")),
                row.type,
                row.name,
                Text(row.status, style="red" if row.failed else ("" if in_progress else "dim")),
                f"{row.elapsed(now):.0f}s" if not row.planning else "",
            )
        header: RenderableType = Text(f"{self.title}: {self.status}", style="bold")
        if self.status not in FINAL_STATUSES:
            header = self._spinner_line()
        return Group(header, table)

    def _spinner_line(self) -> RenderableType:
        self._spinner.update(text=Text(f"{self.title}: {self.status}", style="bold"))
        return self._spinner


class LineView:
    """One line per step start, end or failure, per message and status change: for logs
    and pipes, where a redrawn table would be noise."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.title = title
        self.status: str | None = None
        self.steps = Steps(time.time)

    def __enter__(self) -> LineView:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def event(self, event: Event) -> None:
        if event.name in ("status", "end"):
            status = str(event.data.get("status"))
            if status != self.status:
                self.status = status
                self.console.print(f"{self.title}: {status}")
        elif event.name == "log":
            shown = diagnostic_text(event.data)
            if shown:
                self.console.print(f"{shown[0]}: {shown[1]}")
        else:
            row = self.steps.apply(event.data)
            if row is not None and row.shown:
                symbol = STEP_WORDS.get(row.op, ("?",))[0]
                timing = f" ({row.elapsed(time.time()):.0f}s)" if row.ended is not None else ""
                if row.planning and row.ended is not None:
                    return  # a preview's step is shown once, when planned
                self.console.print(f"  {symbol} {row.type} {row.name} {row.status}{timing}")


class QuietView:
    """--json: follows the job without printing anything."""

    def __enter__(self) -> QuietView:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def event(self, event: Event) -> None:
        return None


def print_result(console: Console, job: dict[str, Any]) -> None:
    """The job's result: change counts and duration, outputs, verification, error."""
    console.print()
    summary = job.get("summary") or {}
    planned = job.get("operation") == "preview"
    counts = [
        f"{count} to {op}" if planned and op != "same" else f"{count} {_done(op)}"
        for op, count in summary.items()
    ]
    if counts:
        console.print("Resources: " + ", ".join(counts))
    duration = _duration(job)
    if duration is not None:
        console.print(f"Duration: {duration:.0f}s")
    outputs = job.get("outputs")
    if outputs:
        console.print("Outputs:")
        for key, value in outputs.items():
            console.print(f"  {key}: {json.dumps(value)}", highlight=False, markup=False)
    verification = job.get("verification")
    if verification:
        console.print("Verification:")
        console.print_json(json.dumps(verification), indent=2)
    if job.get("error"):
        console.print(Text(f"Error: {job['error']}", style="red"))
    style = "green" if job["status"] == "succeeded" else "red"
    console.print(
        Text(f"Job {job['id']} ({job['operation']} {job['environment']}): ", style="bold")
        + Text(str(job["status"]), style=f"bold {style}")
    )


def _done(op: str) -> str:
    return STEP_WORDS.get(op, ("", "", op))[2]


def _duration(job: dict[str, Any]) -> float | None:
    started, finished = job.get("started_at"), job.get("finished_at")
    if not started or not finished:
        return None
    return (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
