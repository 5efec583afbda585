"""Everything the service does with Pulumi, through the Automation API on a local program.

- `StackSession` (inside a worker process): opens a stack, learns its secret config values,
  sets per-operation config and runs one operation, turning engine events into JSON.
- `StackReader` (inside the service): the current config and outputs of a stack, masked.
- `repair_stack` (inside the service, at start-up): makes a stack usable again after the
  process running an operation on it was killed: stale lock, pending operations.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml  # type: ignore[import-untyped]  # no stubs in the lock; safe_load is Any
from pulumi import automation as auto
from pulumi.automation._stack import StackInitMode
from pulumi.automation.events import EngineEvent

from automation.engine import Engine
from automation.models import SECRET, JobStatus, Operation
from automation.processes import process_is_gone
from automation.protocol import JobSpec, ResultMessage, WorkerStatus
from automation.secrets import Redactor, secret_leaves

_COLOR_DIRECTIVE = re.compile(r"<\{%[^%]*%\}>")
_STACK_TYPE = "pulumi:pulumi:Stack"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def event_json(event: EngineEvent) -> dict[str, Any]:
    """The SDK's event object as JSON in the engine's camelCase shape (unset fields omitted)."""
    plain = _plain(event)
    assert isinstance(plain, dict)
    return plain


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if hasattr(value, "__dict__"):
        return {_camel(k): _plain(v) for k, v in vars(value).items() if v is not None}
    return value


def stack_file(project_dir: Path, stack_name: str) -> Path:
    return project_dir / f"Pulumi.{stack_name}.yaml"


def project_name(project_dir: Path) -> str:
    settings = yaml.safe_load((project_dir / "Pulumi.yaml").read_text()) or {}
    return str(settings["name"])


def qualified_key(project: str, key: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def _stack_settings(project_dir: Path, stack_name: str) -> dict[str, Any]:
    path = stack_file(project_dir, stack_name)
    if not path.is_file():
        return {}
    settings = yaml.safe_load(path.read_text()) or {}
    return settings if isinstance(settings, dict) else {}


def secret_config_keys(project_dir: Path, stack_name: str) -> set[str]:
    """The config keys stored encrypted (`secure:`) in the stack file, read without the engine."""
    config = _stack_settings(project_dir, stack_name).get("config") or {}
    project = project_name(project_dir)
    secure = (key for key, value in config.items() if _holds_secure(value))
    return {qualified_key(project, str(key)) for key in secure}


def may_hold_secrets(project_dir: Path, stack_name: str) -> bool:
    """Secret config lives in the stack file (`secure:`) or comes from ESC environments."""
    settings = _stack_settings(project_dir, stack_name)
    return bool(secret_config_keys(project_dir, stack_name) or settings.get("environment"))


def _holds_secure(value: Any) -> bool:
    if isinstance(value, dict):
        return "secure" in value or any(_holds_secure(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_secure(item) for item in value)
    return False


def _plain_text(text: str) -> str:
    return _COLOR_DIRECTIVE.sub("", text).strip()


@dataclass
class _Observed:
    """What the events of one operation said."""

    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    summary: dict[str, int] | None = None
    stack_outputs: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)


class ObservedStack(auto.Stack):
    """A stack that can answer `outputs()` and `info()` from the events of its own operation.

    `Stack.up`, `refresh` and `destroy` end by running `pulumi stack output` twice and
    `pulumi stack history`: three more CLI processes (about 0.9 s here, a third of a small
    update) to learn what the operation's events already said: the root stack resource's
    outputs (secrets blinded) and the change summary. While `observed` is set, this stack
    answers from those events; otherwise it asks the CLI like any stack.
    """

    observed: _Observed | None = None

    @classmethod
    def attach(cls, name: str, workspace: auto.Workspace) -> ObservedStack:
        """An existing stack, without `pulumi stack select` (which costs a CLI run and records
        a selection per working copy in PULUMI_HOME): every command passes `--stack`."""
        stack = cls.__new__(cls)
        stack.name = name
        stack.workspace = workspace
        stack._mode = StackInitMode.SELECT
        return stack

    def outputs(self) -> auto.OutputMap:
        if self.observed is None or self.observed.stack_outputs is None:
            return super().outputs()
        return {
            key: auto.OutputValue(value=value, secret=value == SECRET)
            for key, value in self.observed.stack_outputs.items()
        }

    def info(self, show_secrets: bool = True) -> auto.UpdateSummary | None:
        if self.observed is None:
            return super().info(show_secrets)
        return auto.UpdateSummary(
            kind="update",
            start_time=self.observed.started,
            message="",
            environment={},
            config={},
            result="succeeded",
            end_time=datetime.now(UTC),
            resource_changes=self.observed.summary,  # type: ignore[arg-type]
        )


class StackSession:
    """One stack of the project, run in each job's private copy of it.

    `warm()` does what does not depend on the job while no job waits (the CLI's version check,
    whether the stack exists yet); `run()` then opens the stack in the job's copy without
    `pulumi stack select` (every command names the stack), learns the secret values to redact
    from that copy's config, and runs the operation.
    """

    def __init__(self, engine: Engine, project_dir: Path, stack_name: str) -> None:
        self.engine = engine
        self.project_dir = project_dir
        self.stack_name = stack_name
        self.redactor = Redactor()
        self._command: auto.PulumiCommand | None = None
        self._exists: bool | None = None
        self._stack: ObservedStack | None = None

    def warm(self) -> None:
        self.engine.check_passphrase()
        self._command = self.engine.command()
        listed = self._command.run(
            ["stack", "ls", "--json"], str(self.project_dir), self.engine.env_vars()
        )
        names = {str(entry.get("name", "")) for entry in json.loads(listed.stdout or "[]")}
        self._exists = self.stack_name in names or any(
            name.rsplit("/", 1)[-1] == self.stack_name for name in names
        )

    def open(self, work_dir: Path) -> ObservedStack:
        """The stack in `work_dir`: attached when it exists, else created (or selected)."""
        options = self.engine.workspace_options(work_dir, self._command)
        workspace = auto.LocalWorkspace(
            work_dir=options.work_dir,
            pulumi_home=options.pulumi_home,
            env_vars=options.env_vars,
            pulumi_command=options.pulumi_command,
        )
        if self._exists:
            stack = ObservedStack.attach(self.stack_name, workspace)
        else:
            stack = ObservedStack(self.stack_name, workspace, StackInitMode.CREATE_OR_SELECT)
        self._stack = stack
        self._learn_secrets(work_dir)
        return stack

    @property
    def stack(self) -> ObservedStack:
        if self._stack is None:
            raise RuntimeError("the stack is opened by run()")
        return self._stack

    def _learn_secrets(self, work_dir: Path) -> None:
        """Read the decrypted config once, keeping only what redaction needs (nothing to read,
        and no CLI run, when the stack file holds no secret)."""
        if not may_hold_secrets(work_dir, self.stack_name):
            self.redactor = Redactor()
            return
        config = self.stack.get_all_config()
        self.redactor = Redactor(
            leaf
            for value in config.values()
            if value.secret
            for leaf in secret_leaves(str(value.value))
        )

    def run(
        self,
        spec: JobSpec,
        on_event: Callable[[dict[str, Any]], None],
        on_output: Callable[[str], None],
        cancel_requested: Callable[[], bool],
    ) -> ResultMessage:
        observed = _Observed()

        def event(raw: EngineEvent) -> None:
            data = self.redactor.value(event_json(raw))
            self._observe(data, observed)
            on_event(data)

        def output(line: str) -> None:
            on_output(self.redactor.text(line))

        try:
            if self._command is None:  # warming up failed: try again, reporting what fails
                self.warm()
            self.open(Path(spec.work_dir))
            self.stack.observed = observed
            outputs = self._operate(spec, event, output)
        except Exception as error:  # every failure becomes the job's error, redacted
            status: WorkerStatus = JobStatus.CANCELLED if cancel_requested() else JobStatus.FAILED
            return ResultMessage(
                status=status,
                summary=observed.summary,
                error=self.redactor.text(_describe(error, observed)),
            )
        finally:
            if self._stack is not None:
                self._stack.observed = None
        return ResultMessage(
            status=JobStatus.SUCCEEDED,
            summary=observed.summary,
            outputs=outputs,
        )

    def _operate(
        self,
        spec: JobSpec,
        on_event: Callable[[EngineEvent], None],
        on_output: Callable[[str], None],
    ) -> dict[str, Any] | None:
        stack = self.stack
        common: dict[str, Any] = {
            "message": spec.message,
            "color": "never",
            "on_event": on_event,
            "on_output": on_output,
            "on_error": on_output,
        }
        if spec.operation is Operation.PREVIEW:
            stack.preview(**common, plan=spec.save_plan)
        elif spec.operation is Operation.UP:
            result = stack.up(**common, show_secrets=False, plan=spec.plan)
            return {
                key: SECRET if value.secret else self.redactor.value(value.value)
                for key, value in result.outputs.items()
            }
        elif spec.operation is Operation.REFRESH:
            stack.refresh(**common, show_secrets=False)
        elif spec.operation is Operation.DRIFT:
            stack.preview_refresh(**common)
        else:
            stack.destroy(**common, show_secrets=False)
            return {}
        return None

    @staticmethod
    def _observe(data: dict[str, Any], observed: _Observed) -> None:
        metadata = data.get("resOutputsEvent", {}).get("metadata", {})
        if metadata.get("type") == _STACK_TYPE:
            observed.stack_outputs = (metadata.get("new") or {}).get("outputs") or {}
        if "summaryEvent" in data:
            changes = data["summaryEvent"].get("resourceChanges") or {}
            observed.summary = {str(op): int(count) for op, count in changes.items()}
        diagnostic = data.get("diagnosticEvent")
        if diagnostic and diagnostic.get("severity") == "error":
            message = _plain_text(str(diagnostic.get("message", "")))
            if message and message not in observed.errors:
                observed.errors.append(message)


def _describe(error: Exception, observed: _Observed) -> str:
    """One message: the engine's own error diagnostics when it gave some, else the `error:`
    lines of the CLI's stderr, never the SDK's `code: … stdout: … stderr: …` wrapper (the
    job's log has the CLI's whole output)."""
    if isinstance(error, auto.CommandError):
        diagnostics = [_one_line(text) for text in observed.errors if text not in _AFTERMATH]
        if diagnostics:
            return "; ".join(diagnostics)
        stderr = _plain_text(str(error).partition(" stderr: ")[2])
        errors = [
            line.strip().removeprefix("error: ")
            for line in stderr.splitlines()
            if line.strip().startswith("error: ")
        ]
        message = "; ".join(errors) or stderr
        if "incorrect passphrase" in message:
            return (
                "incorrect passphrase: the service's secrets passphrase cannot decrypt this"
                " stack (GET /readyz names every stack it cannot decrypt)"
            )
        if message:
            return message
    return _plain_text(str(error)) or type(error).__name__


_AFTERMATH = {"Resource monitor has terminated, shutting down"}
"""What the engine says after any program failure: noise in the job's error."""


def _one_line(text: str) -> str:
    """A diagnostic as one line: a Python traceback becomes its last line (the exception)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return text.strip()
    if lines[0].startswith("Traceback (most recent call last)"):
        return lines[-1]
    return " ".join(lines)


@dataclass(frozen=True)
class StackView:
    exists: bool
    config: dict[str, Any]
    outputs: dict[str, Any]


class StackReader:
    """Reads a stack's config and outputs through the CLI, for display.

    Outputs that a program un-secreted (`Output.unsecret`) come back from `pulumi stack output`
    in plaintext, so the config is read with its secret values, only to redact them.
    """

    def __init__(self, engine: Engine, project_dir: Path) -> None:
        self.engine = engine
        self.project_dir = project_dir
        self._command = engine.command()

    def _run(self, *args: str) -> Any:
        result = self._command.run([*args, "--json"], str(self.project_dir), self.engine.env_vars())
        return json.loads(result.stdout or "{}")

    def read(self, stack_name: str) -> StackView:
        """Config (secrets as the marker) and outputs (redacted); empty if no stack yet."""
        self.engine.check_passphrase()
        with ThreadPoolExecutor(max_workers=2) as pool:
            config_call = pool.submit(self._run, "config", "--show-secrets", "--stack", stack_name)
            outputs_call = pool.submit(self._run, "stack", "output", "--stack", stack_name)
            try:
                config, outputs = config_call.result(), outputs_call.result()
            except auto.StackNotFoundError:
                config = stack_file_config(self.project_dir, stack_name)
                return StackView(exists=False, config=config, outputs={})
        redactor = Redactor(
            leaf
            for entry in config.values()
            if entry.get("secret")
            for leaf in secret_leaves(str(entry.get("value", "")))
        )
        shown = {
            key: SECRET if entry.get("secret") else entry.get("objectValue", entry.get("value"))
            for key, entry in config.items()
        }
        return StackView(exists=True, config=redactor.value(shown), outputs=redactor.value(outputs))


def stack_file_config(project_dir: Path, stack_name: str) -> dict[str, Any]:
    """The config its stack file holds, as `pulumi config --json` would show it (for a stack
    that does not exist yet, which the CLI cannot show)."""
    config = _stack_settings(project_dir, stack_name).get("config") or {}
    project = project_name(project_dir)
    return {qualified_key(project, str(key)): _shown(value) for key, value in config.items()}


def _shown(value: Any) -> Any:
    """A stack-file value as `pulumi config --json` shows it: scalars as text, secrets blinded."""
    if isinstance(value, dict):
        if "secure" in value:
            return SECRET
        return {str(key): _shown(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shown(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def file_backend_dir(backend_url: str) -> Path | None:
    parsed = urlparse(backend_url)
    return Path(parsed.path) if parsed.scheme == "file" else None


def repair_stack(engine: Engine, project_dir: Path, stack_name: str) -> list[str]:
    """Remove locks whose process is gone, then clear pending operations; say what was done."""
    backend = file_backend_dir(engine.backend_url)
    if backend is None:
        return [
            f"the backend {engine.backend_url} is not a local file backend: its lock was not"
            " inspected; if the stack is locked, run `pulumi cancel` once nothing runs on it"
        ]
    notes: list[str] = []
    project = project_name(project_dir)
    lock_dirs = [
        backend / ".pulumi" / "locks" / "organization" / project / stack_name,
        backend / ".pulumi" / "locks" / stack_name,
    ]
    remaining = 0
    for lock in sorted(path for folder in lock_dirs for path in folder.glob("*.json")):
        note, removed = _release_lock(lock)
        notes.append(note)
        remaining += 0 if removed else 1
    if remaining:
        notes.append("pending operations were not inspected: the stack is still locked")
        return notes
    stack = engine.stack(project_dir, stack_name)
    state = stack.export_stack()
    deployment = dict(state.deployment or {})
    pending = deployment.get("pending_operations") or []
    if pending:
        deployment["pending_operations"] = []
        stack.import_stack(auto.Deployment(version=state.version, deployment=deployment))
        described = ", ".join(
            f"{op.get('type', '?')} {op.get('resource', {}).get('urn', '?')}" for op in pending
        )
        notes.append(
            f"cleared {len(pending)} pending operation(s) left by the dead process ({described});"
            " the cloud may hold resources the state does not know about: run a refresh"
        )
    return notes


def _release_lock(lock: Path) -> tuple[str, bool]:
    try:
        owner = json.loads(lock.read_text())
        pid, host = int(owner["pid"]), str(owner["hostname"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"left the lock {lock.name}: cannot read its owner ({error})", False
    who = f"pid {pid} on {host}, since {owner.get('timestamp', '?')}"
    if host != socket.gethostname():
        return f"left the lock held by {who}: that process cannot be checked from here", False
    if not process_is_gone(pid):
        return f"left the lock held by {who}: that process is still running", False
    lock.unlink(missing_ok=True)
    return f"removed the stack lock left by {who}: the process is gone", True
