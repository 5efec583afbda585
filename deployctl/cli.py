"""deployctl: the automation service's command-line client.

Exit codes: 0 succeeded, 1 the job failed, 2 usage or API error (bad arguments, 401, 404,
422, an unreachable service), 3 the job was cancelled or interrupted, or following it was
(Ctrl-C), 4 refused (403, 409)."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from enum import IntEnum
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from deployctl.client import ApiError, Client
from deployctl.progress import (
    FINAL_STATUSES,
    LineView,
    LiveView,
    QuietView,
    View,
    print_result,
)

DEFAULT_URL = "http://127.0.0.1:8080"


class Exit(IntEnum):
    SUCCEEDED = 0
    FAILED = 1
    USAGE = 2
    CANCELLED = 3
    REFUSED = 4


JOB_EXITS = {"succeeded": Exit.SUCCEEDED, "failed": Exit.FAILED}

app = typer.Typer(
    name="deployctl",
    help=(
        "Preview, deploy and operate the project's environments through the automation"
        " service.\n\nExit codes: 0 succeeded, 1 failed, 2 usage or API error, 3 cancelled"
        " or interrupted, 4 refused (403/409)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(highlight=False)
if not out.is_terminal:
    out.soft_wrap = True  # a log line is not wrapped at an assumed 80 columns
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Settings:
    """What the global options chose: where the service is and who is asking."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token

    def client(self) -> Client:
        return Client(self.url, self.token)


@app.callback()
def main_options(
    ctx: typer.Context,
    url: Annotated[
        str,
        typer.Option(
            envvar="AUTOMATION_URL", help="The automation service's base URL.", show_envvar=True
        ),
    ] = DEFAULT_URL,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="AUTOMATION_TOKEN",
            help="A bearer token of the service (AUTOMATION_TOKENS there).",
            show_default=False,
            show_envvar=True,
        ),
    ] = None,
) -> None:
    if not url.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{url!r} is not an http:// or https:// URL", param_hint="--url")
    ctx.obj = Settings(url, token or None)


Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON (for scripts).")]
Follow = Annotated[
    bool | None,
    typer.Option(
        "--follow/--no-follow",
        help="Stream the job until it ends (default: when stdout is a terminal).",
        show_default=False,
    ),
]
CancelOnInterrupt = Annotated[
    bool,
    typer.Option(
        "--cancel-on-interrupt",
        help="On Ctrl-C while following, cancel the job (default: leave it running).",
    ),
]
MessageOption = Annotated[
    str | None, typer.Option("--message", "-m", help="Recorded with the update.")
]
IdempotencyOption = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        help="The same key within 24 h returns the job it created instead of a new one.",
    ),
]
CommitOption = Annotated[
    str | None,
    typer.Option("--commit", help="Run this commit of the service's checkout."),
]
ConfigOption = Annotated[
    list[str] | None,
    typer.Option(
        "--config",
        "-c",
        help="KEY=VALUE stack config for this job (repeatable; keys the service allows).",
    ),
]
UnsetOption = Annotated[
    list[str] | None,
    typer.Option("--unset", help="A config key to unset for this job (repeatable)."),
]
EnvArgument = Annotated[str, typer.Argument(help="The environment, e.g. dev or prod.")]
JobArgument = Annotated[str, typer.Argument(help="A job id.")]

P = ParamSpec("P")
R = TypeVar("R")


def handles_errors(command: Callable[P, R]) -> Callable[P, R]:
    """API errors become their exit code with the message on stderr; Ctrl-C exits 3
    (click's own handling would exit 1)."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ApiError as error:
            err.print(Text(f"deployctl: {error}", style="red"))
            refused = error.status in (403, 409)
            raise typer.Exit(Exit.REFUSED if refused else Exit.USAGE) from None
        except KeyboardInterrupt:
            err.print("deployctl: interrupted")
            raise typer.Exit(Exit.CANCELLED) from None

    return run


def settings(ctx: typer.Context) -> Settings:
    found: Settings = ctx.obj
    return found


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


# ---- reading ----------------------------------------------------------------------------


@app.command("envs")
@handles_errors
def list_environments(ctx: typer.Context, as_json: Json = False) -> None:
    """The environments: each one's last job and the outputs of its last successful up."""
    environments = settings(ctx).client().get("/environments")
    if as_json:
        print_json(environments)
        return
    table = Table("Environment", "Last job", "Status", "Finished", "Outputs", box=None)
    for env in environments:
        last = env.get("last_job") or {}
        table.add_row(
            env["name"],
            f"{last.get('operation', '')} {last.get('id', '')}".strip() or "-",
            status_text(last.get("status")),
            short_time(last.get("finished_at")),
            str(len(env.get("outputs") or {})),
        )
    out.print(table)


@app.command("env")
@handles_errors
def show_environment(ctx: typer.Context, env: EnvArgument, as_json: Json = False) -> None:
    """One environment: its config, outputs, running and queued jobs."""
    detail = settings(ctx).client().get(f"/environments/{env}")
    if as_json:
        print_json(detail)
        return
    out.print(
        Text(detail["name"], style="bold"), "" if detail["stack_exists"] else "(no stack yet)"
    )
    print_mapping("Config", detail.get("config") or {})
    print_mapping("Outputs", detail.get("outputs") or {})
    drift = detail.get("drift")
    if drift:
        checked = short_time(drift["checked_at"]) if drift.get("checked_at") else "never checked"
        out.print(f"Drift: {drift['status']} ({checked})", markup=False)
        for resource in drift.get("resources") or []:
            paths = ", ".join(resource.get("diff") or {})
            out.print(f"  {resource['op']} {resource['name']}: {paths}", markup=False)
    active = detail.get("active_job")
    jobs = ([active] if active else []) + list(detail.get("queued_jobs") or [])
    if jobs:
        out.print("Jobs:")
        out.print(jobs_table(jobs))


@app.command("jobs")
@handles_errors
def list_jobs(
    ctx: typer.Context,
    env: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200)] = 20,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="The next_cursor of a previous page.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Jobs, newest first."""
    page = (
        settings(ctx)
        .client()
        .get("/jobs", {"environment": env, "status": status, "limit": limit, "cursor": cursor})
    )
    if as_json:
        print_json(page)
        return
    out.print(jobs_table(page["items"]))
    if page.get("next_cursor"):
        err.print(f"more: --cursor {page['next_cursor']}")


@app.command("job")
@handles_errors
def show_job(ctx: typer.Context, job_id: JobArgument, as_json: Json = False) -> None:
    """One job: what it ran, its changes, outputs and error."""
    job = settings(ctx).client().get(f"/jobs/{job_id}")
    if as_json:
        print_json(job)
        return
    for key in (
        "id", "environment", "operation", "status", "message", "image", "requested_by",
        "approved_by", "rollback_of", "applies", "applied_by", "plan_expires_at",
        "created_at", "started_at", "finished_at",
    ):  # fmt: skip
        if job.get(key) is not None:
            out.print(f"{key}: {job[key]}", markup=False)
    if job.get("source"):
        source = job["source"]
        out.print(f"source: {source.get('commit') or source['tree']}", markup=False)
    changes = [change for change in job.get("changes") or [] if change["op"] != "same"]
    if changes:
        table = Table("Op", "Type", "Name", "Changed", box=None, title_justify="left")
        for change in changes:
            table.add_row(change["op"], change["type"], change["name"], ", ".join(change["diff"]))
        out.print("changes:")
        out.print(table)
    for note in job.get("notes") or []:
        out.print(f"note: {note}", markup=False)
    if job["status"] in FINAL_STATUSES:
        print_result(out, job)


@app.command("ready")
@handles_errors
def show_readiness(ctx: typer.Context, as_json: Json = False) -> None:
    """Whether the service can run jobs now (GET /readyz): exit 0, or 2 with what is missing."""
    answer = settings(ctx).client().get("/readyz")
    if as_json:
        print_json(answer)
        return
    out.print(answer["status"], markup=False)


@app.command("logs")
@handles_errors
def show_log(ctx: typer.Context, job_id: JobArgument) -> None:
    """A job's plain-text output so far."""
    sys.stdout.write(settings(ctx).client().text(f"/jobs/{job_id}/log"))


@app.command("audit")
@handles_errors
def show_audit(
    ctx: typer.Context,
    env: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="ISO 8601 time, e.g. 2026-12-01T00:00:00Z.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 200,
    cursor: Annotated[str | None, typer.Option("--cursor")] = None,
    as_json: Json = False,
) -> None:
    """Who did what: accepted, cancelled, applied, approved and refused requests, oldest
    first."""
    page = (
        settings(ctx)
        .client()
        .get("/audit", {"environment": env, "since": since, "limit": limit, "cursor": cursor})
    )
    if as_json:
        print_json(page)
        return
    table = Table("At", "Actor", "Env", "Operation", "Job", "Outcome", "HTTP", "Detail", box=None)
    for entry in page["items"]:
        table.add_row(
            short_time(entry["at"]),
            entry.get("actor") or "-",
            entry.get("environment") or "-",
            entry["operation"],
            entry.get("job_id") or "-",
            entry["outcome"],
            str(entry["status"]),
            entry.get("detail") or "",
        )
    out.print(table)
    if page.get("next_cursor"):
        err.print(f"more: --cursor {page['next_cursor']}")


@app.command("deliveries")
@handles_errors
def show_deliveries(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 100,
    cursor: Annotated[str | None, typer.Option("--cursor")] = None,
    as_json: Json = False,
) -> None:
    """Webhook delivery attempts, newest first."""
    page = settings(ctx).client().get("/webhooks/deliveries", {"limit": limit, "cursor": cursor})
    if as_json:
        print_json(page)
        return
    table = Table("At", "Event", "Endpoint", "Job", "Try", "HTTP", "Result", "ms", box=None)
    for item in page["items"]:
        table.add_row(
            short_time(item["at"]),
            item["event"],
            item["endpoint"],
            item.get("job_id") or "-",
            str(item["attempt"]),
            str(item["status"] or "-"),
            "ok" if item["ok"] else (item.get("error") or "failed"),
            f"{item['duration_ms']:.0f}",
        )
    out.print(table)
    if page.get("next_cursor"):
        err.print(f"more: --cursor {page['next_cursor']}")


# ---- operating --------------------------------------------------------------------------


def operation_command(operation: str, summary: str) -> None:
    @app.command(operation, help=summary)
    @handles_errors
    def run(
        ctx: typer.Context,
        env: EnvArgument,
        config: ConfigOption = None,
        unset: UnsetOption = None,
        message: MessageOption = None,
        commit: CommitOption = None,
        idempotency_key: IdempotencyOption = None,
        follow: Follow = None,
        cancel_on_interrupt: CancelOnInterrupt = False,
        as_json: Json = False,
    ) -> None:
        body = operation_body(config, unset, message, commit)
        submit_and_follow(
            ctx,
            f"/environments/{env}/{operation}",
            body,
            idempotency_key,
            follow,
            cancel_on_interrupt,
            as_json,
        )


operation_command("preview", "Preview the changes an up would make (saves a plan to apply).")
operation_command("up", "Update the environment's resources to the program and config.")
operation_command("refresh", "Refresh the stack's state from what really exists.")
operation_command(
    "drift", "Check for drift (a refresh preview: changes nothing) and list what differs."
)


@app.command("destroy")
@handles_errors
def destroy(
    ctx: typer.Context,
    env: EnvArgument,
    confirm: Annotated[
        bool,
        typer.Option("--confirm", help="Destroy without asking (needed when not interactive)."),
    ] = False,
    message: MessageOption = None,
    commit: CommitOption = None,
    idempotency_key: IdempotencyOption = None,
    follow: Follow = None,
    cancel_on_interrupt: CancelOnInterrupt = False,
    as_json: Json = False,
) -> None:
    """Delete every resource of the environment."""
    if not confirm:
        if not sys.stdin.isatty():
            err.print(f"deployctl: destroy needs --confirm to delete every resource of {env}")
            raise typer.Exit(Exit.USAGE)
        if not typer.confirm(f"Delete every resource of {env}?", err=True):
            err.print(f"deployctl: {env} left as it is")
            raise typer.Exit(Exit.CANCELLED)
    body = operation_body(None, None, message, commit) | {"confirm": env}
    submit_and_follow(
        ctx,
        f"/environments/{env}/destroy",
        body,
        idempotency_key,
        follow,
        cancel_on_interrupt,
        as_json,
    )


@app.command("deploy")
@handles_errors
def deploy(
    ctx: typer.Context,
    env: EnvArgument,
    image: Annotated[
        str, typer.Argument(help="<repository>:<tag> or <repository>@sha256:<digest>.")
    ],
    message: MessageOption = None,
    commit: CommitOption = None,
    idempotency_key: IdempotencyOption = None,
    follow: Follow = None,
    cancel_on_interrupt: CancelOnInterrupt = False,
    as_json: Json = False,
) -> None:
    """Set the environment's image and run up (a rolling deployment)."""
    body = operation_body(None, None, message, commit) | {"image": image}
    submit_and_follow(
        ctx,
        f"/environments/{env}/deploy",
        body,
        idempotency_key,
        follow,
        cancel_on_interrupt,
        as_json,
    )


@app.command("rollback")
@handles_errors
def rollback(
    ctx: typer.Context,
    env: EnvArgument,
    to: Annotated[
        str | None,
        typer.Option("--to", help="A successful up to go back to (default: the one before)."),
    ] = None,
    message: MessageOption = None,
    idempotency_key: IdempotencyOption = None,
    follow: Follow = None,
    cancel_on_interrupt: CancelOnInterrupt = False,
    as_json: Json = False,
) -> None:
    """Run up with the source and config of an earlier successful up."""
    body = {key: value for key, value in {"to": to, "message": message}.items() if value}
    submit_and_follow(
        ctx,
        f"/environments/{env}/rollback",
        body,
        idempotency_key,
        follow,
        cancel_on_interrupt,
        as_json,
    )


@app.command("apply")
@handles_errors
def apply(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="A succeeded preview's job id.")],
    message: MessageOption = None,
    idempotency_key: IdempotencyOption = None,
    follow: Follow = None,
    cancel_on_interrupt: CancelOnInterrupt = False,
    as_json: Json = False,
) -> None:
    """Run up exactly as the preview planned it (in an approval environment: approve it)."""
    submit_and_follow(
        ctx,
        f"/jobs/{job_id}/apply",
        {"message": message} if message else {},
        idempotency_key,
        follow,
        cancel_on_interrupt,
        as_json,
    )


@app.command("cancel")
@handles_errors
def cancel(ctx: typer.Context, job_id: JobArgument, as_json: Json = False) -> None:
    """Cancel a job: a queued one at once, a running one gets Ctrl-C."""
    job = settings(ctx).client().post(f"/jobs/{job_id}/cancel")
    if as_json:
        print_json(job)
    elif job["status"] in FINAL_STATUSES:
        out.print(f"Job {job['id']}: {job['status']}")
    else:
        out.print(f"Job {job['id']}: cancel requested (it is {job['status']})")


def operation_body(
    config: list[str] | None, unset: list[str] | None, message: str | None, commit: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    values: dict[str, str | None] = {}
    for item in config or []:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--config")
        values[key] = value
    values.update(dict.fromkeys(unset or []))
    if values:
        body["config"] = values
    if message:
        body["message"] = message
    if commit:
        body["source"] = {"commit": commit}
    return body


def submit_and_follow(
    ctx: typer.Context,
    path: str,
    body: dict[str, Any],
    idempotency_key: str | None,
    follow: bool | None,
    cancel_on_interrupt: bool,
    as_json: bool,
) -> None:
    """Submit, print the job id at once, then follow the job to its end (or not)."""
    client = settings(ctx).client()
    job = client.post(path, body or None, idempotency_key)
    if follow is None:
        follow = sys.stdout.isatty()
    if not as_json:
        out.print(
            Text(f"Job {job['id']}", style="bold")
            + f": {job['operation']} {job['environment']} {job['status']}"
        )
    if not follow:
        if as_json:
            print_json(job)
        else:
            out.print(f"follow it: deployctl job {job['id']}")
        return
    title = f"{job['operation']} {job['environment']}"
    view: View = (
        QuietView()
        if as_json
        else LiveView(out, title)
        if out.is_terminal
        else LineView(out, title)
    )
    try:
        with view:
            for event in client.events(job["id"]):
                view.event(event)
    except KeyboardInterrupt:
        if not cancel_on_interrupt:
            err.print(
                f"deployctl: stopped following; job {job['id']} goes on"
                f" (deployctl job {job['id']}, deployctl cancel {job['id']})"
            )
            raise typer.Exit(Exit.CANCELLED) from None
        cancel_after_interrupt(client, job["id"], view, as_json)
    final = client.get(f"/jobs/{job['id']}")
    if as_json:
        print_json(final)
    else:
        print_result(out, final)
    raise typer.Exit(JOB_EXITS.get(final["status"], Exit.CANCELLED))


def cancel_after_interrupt(client: Client, job_id: str, view: View, as_json: bool) -> None:
    """--cancel-on-interrupt: cancel the job and follow it until it has stopped (a second
    Ctrl-C stops waiting)."""
    err.print(f"deployctl: cancelling job {job_id}")
    client.post(f"/jobs/{job_id}/cancel")
    try:
        with view:
            for event in client.events(job_id):
                view.event(event)
    except KeyboardInterrupt:
        err.print(f"deployctl: stopped waiting; job {job_id} is being cancelled")
        raise typer.Exit(Exit.CANCELLED) from None


# ---- output helpers ---------------------------------------------------------------------


def jobs_table(jobs: list[dict[str, Any]]) -> Table:
    table = Table("Job", "Env", "Operation", "Status", "Created", "By", "Message", box=None)
    for job in jobs:
        table.add_row(
            job["id"],
            job["environment"],
            job["operation"],
            status_text(job["status"]),
            short_time(job["created_at"]),
            job.get("requested_by") or "-",
            job.get("message") or "",
        )
    return table


def status_text(status: str | None) -> Text:
    styles = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}
    return Text(status or "-", style=styles.get(status or "", ""))


def short_time(value: str | None) -> str:
    """An ISO time to the second, without the offset noise (the service answers in UTC)."""
    return value[:19].replace("T", " ") if value else "-"


def print_mapping(title: str, values: dict[str, Any]) -> None:
    if not values:
        return
    out.print(f"{title}:")
    for key, value in values.items():
        out.print(f"  {key}: {json.dumps(value)}", markup=False)


def main() -> None:
    app()
