"""The service's own life: crash and restart, readiness, refusing to run open, missing plugins.

Each test starts its own `python -m automation` (see conftest.start_service).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from automation.processes import process_is_gone
from tests.automation.conftest import StartService
from tests.automation.running_service import (
    REPO_ROOT,
    locks,
    service_environment,
    start_refused_service,
    wait_for_log,
    wait_for_note,
)
from tests.conftest import marker_dir

pytestmark = pytest.mark.timeout(120)


def test_killed_mid_up_the_job_is_interrupted_the_stack_repaired_the_queue_kept(
    start_service: StartService, provider_free_project: Path, state_dir: Path
) -> None:
    """Service, worker, CLI and plugins all SIGKILLed mid-up, as in a machine crash."""
    first = start_service()
    job = first.post("/environments/dev/up", {"config": {"delay_seconds": 3}})
    wait_for_log(first, job["id"], "greeter-marker creating")
    queued = first.post("/environments/dev/up", {"config": {"delay_seconds": 0}})
    first.crash()
    assert len(locks(state_dir, "dev")) == 1, "the killed CLI left its lock"

    second = start_service()
    interrupted = wait_for_note(second, job["id"], "pending operation")
    assert interrupted["status"] == "interrupted"
    assert interrupted["error"] == "the service stopped while this operation ran"
    notes = "\n".join(interrupted["notes"])
    assert "removed the stack lock left by pid" in notes, notes
    assert "the process is gone" in notes, notes
    assert "cleared 1 pending operation(s)" in notes and "greeter-marker" in notes, notes
    assert locks(state_dir, "dev") == []

    after = second.wait(queued["id"])
    assert after["status"] == "succeeded", "the accepted job ran after the repair"
    assert "still queued when the service started again" in after["notes"]
    assert after["started_at"] > interrupted["finished_at"]
    marker = marker_dir(provider_free_project, "dev") / "greeting.txt"
    assert marker.read_text() == "hello from dev"


def test_missing_provider_plugin_fails_fast_naming_it(
    start_service: StartService, tmp_path: Path, state_dir: Path
) -> None:
    """A program that needs the aws plugin (it runs in the repo's .venv, which has pulumi-aws)."""
    project = tmp_path / "needs-aws"
    project.mkdir()
    runtime = f"runtime:\n  name: python\n  options:\n    virtualenv: {REPO_ROOT / '.venv'}\n"
    (project / "Pulumi.yaml").write_text("name: needs-aws\n" + runtime)
    (project / "Pulumi.dev.yaml").write_text("config: {}\n")
    (project / "__main__.py").write_text("raise SystemExit('the program must not run')\n")
    service = start_service(env=service_environment(project, state_dir))
    job = service.wait(service.post("/environments/dev/preview")["id"])
    assert job["status"] == "failed"
    assert "needs Pulumi provider plugins that are not installed" in job["error"]
    assert "pulumi plugin install resource aws 7.51.1" in job["error"]
    assert "the program must not run" not in job["error"]


def test_readyz_reports_a_missing_passphrase_and_nothing_is_queued(
    start_service: StartService, provider_free_project: Path, state_dir: Path
) -> None:
    env = service_environment(provider_free_project, state_dir, environments="dev")
    del env["PULUMI_CONFIG_PASSPHRASE"]
    env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
    service = start_service(env=env)
    assert service.http.get("/healthz").status_code == 200
    ready = service.http.get("/readyz")
    assert ready.status_code == 503
    assert "PULUMI_CONFIG_PASSPHRASE" in ready.json()["detail"]
    refused = service.http.post("/environments/dev/preview")
    assert refused.status_code == 503
    assert "PULUMI_CONFIG_PASSPHRASE" in refused.json()["detail"]
    assert service.http.get("/jobs").json()["items"] == []


def test_open_access_is_said_once_and_only_allowed_on_loopback(
    start_service: StartService, provider_free_project: Path, state_dir: Path
) -> None:
    service = start_service()
    for _ in range(3):
        assert service.http.get("/environments").status_code == 200
    assert service.log.count("no tokens configured") == 1

    env = service_environment(provider_free_project, state_dir, host="0.0.0.0")
    refused = start_refused_service(env)
    assert refused.returncode == 2
    assert "refusing to listen on 0.0.0.0 without tokens" in refused.stderr


SCOPES = ["operate:staging"]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"tokens": '[{"name": "ci", "token": "tiny1", "scopes": ["deploy"]}]'},
            [
                "AUTOMATION_TOKENS[0].token: token 'ci' is 5 characters; at least 16",
                "AUTOMATION_TOKENS[0].scopes: unknown scope 'deploy'",
            ],
        ),
        (
            {"tokens": "notjson-secret-0123456789"},
            ["AUTOMATION_TOKENS: not valid JSON", "expected a JSON list like"],
        ),
        (
            {"tokens": json.dumps([{"name": "ci", "token": "t0ken-0123456789", "scopes": SCOPES}])},
            ["token 'ci' has scope 'operate:staging', but 'staging' is not an environment"],
        ),
        (
            {"environments": "dev,staging"},
            ["AUTOMATION_ENVIRONMENTS: 'staging' has no stack file Pulumi.staging.yaml"],
        ),
        (
            {"max_body_bytes": "10"},
            ["AUTOMATION_MAX_BODY_BYTES: Input should be greater than or equal to 1024"],
        ),
    ],
)
def test_bad_settings_are_refused_naming_the_variable(
    provider_free_project: Path, state_dir: Path, settings: dict[str, str], expected: list[str]
) -> None:
    env = service_environment(provider_free_project, state_dir, **settings)
    refused = start_refused_service(env)
    assert refused.returncode == 2, refused.stderr
    for text in expected:
        assert text in refused.stderr
    for secret in ("tiny1", "notjson-secret", "t0ken-0123456789"):
        assert secret not in refused.stderr, "a token is never echoed"


def test_when_only_the_service_dies_its_worker_cancels_gracefully(
    start_service: StartService, provider_free_project: Path, state_dir: Path
) -> None:
    """The kernel tells the worker (PR_SET_PDEATHSIG) and it does Pulumi's Ctrl-C: the stack
    ends unlocked. The worker is held (SIGSTOP) until the next service has seen it still
    running, so that the next service's wait for it is what is tested."""
    first = start_service()
    job = first.post("/environments/dev/up", {"config": {"delay_seconds": 2}})
    wait_for_log(first, job["id"], "greeter-marker creating")
    (worker,) = first.worker_pids()
    os.killpg(worker, signal.SIGSTOP)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()

    second = start_service()
    wait_for_note(second, job["id"], f"the previous worker (pid {worker}) was still running")
    os.killpg(worker, signal.SIGCONT)
    interrupted = wait_for_note(second, job["id"], "the stack needed no repair")
    assert interrupted["status"] == "interrupted"
    assert "it ended on its own (a graceful cancel)" in interrupted["notes"]
    assert process_is_gone(worker), "the worker did not outlive its service"
    assert locks(state_dir, "dev") == [], "the cancelled CLI released its lock"
