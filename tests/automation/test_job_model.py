"""Every job is an isolated, reproducible unit: its own source snapshot, config that only a
successful up keeps, rollback, repair after a worker dies, one service per state dir.

The real service (`python -m automation`) and the real engine on copies of the fixture.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from automation.processes import OPERATION_MARKER
from tests.automation.conftest import StartService
from tests.automation.running_service import (
    Service,
    locks,
    service_environment,
    start_refused_service,
    wait_for_log,
)
from tests.conftest import marker_dir

pytestmark = pytest.mark.timeout(180)

GREETING = "provider-free-fixture:greeting"
IMAGE_KEY = "image"
"""The fixture has no image: the key /deploy sets is one its program ignores."""


def stack_file(project: Path, stack: str = "dev") -> Path:
    return project / f"Pulumi.{stack}.yaml"


def marker(project: Path, name: str = "greeting.txt", stack: str = "dev") -> Path:
    return marker_dir(project, stack) / name


def succeeded(service: Service, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    job = service.wait(service.post(path, body)["id"])
    assert job["status"] == "succeeded", job
    return job


def test_config_belongs_to_its_job_until_an_up_succeeds(
    start_service: StartService, provider_free_project: Path
) -> None:
    path = stack_file(provider_free_project)
    path.write_text("# kept: a comment a person wrote\n" + path.read_text())
    original = path.read_bytes()
    service = start_service(image_config_key=IMAGE_KEY)

    preview = succeeded(service, "/environments/dev/preview", {"config": {"greeting": "PREVIEW"}})
    assert preview["config"] == {"greeting": "PREVIEW"}
    assert path.read_bytes() == original, "a preview changed the stack file"
    plain = succeeded(service, "/environments/dev/up")
    assert plain["outputs"]["greeting"] == "hello from dev", "the preview's config was shipped"
    assert marker(provider_free_project).read_text() == "hello from dev"
    assert plain["config_changes"] == []

    failed = service.wait(
        service.post("/environments/dev/up", {"config": {"greeting": "bad", "fail": True}})["id"]
    )
    assert failed["status"] == "failed"
    cancelled = service.post(
        "/environments/dev/up", {"config": {"greeting": "slow", "delay_seconds": 5}}
    )
    wait_for_log(service, cancelled["id"], "greeter-marker updating")
    assert service.http.post(f"/jobs/{cancelled['id']}/cancel").status_code == 202
    assert service.wait(cancelled["id"])["status"] == "cancelled"
    assert path.read_bytes() == original, "a failed or cancelled up changed the stack file"
    after = succeeded(service, "/environments/dev/up")
    assert after["config"] == {}
    assert after["outputs"]["greeting"] == "hello from dev"

    shipped = succeeded(
        service, "/environments/dev/up", {"config": {"greeting": "shipped", "farewell": "ciao"}}
    )
    assert shipped["config_changes"] == [
        {"key": "provider-free-fixture:farewell", "old": None, "new": "ciao"},
        {"key": GREETING, "old": "hello from dev", "new": "shipped"},
    ]
    text = path.read_text()
    assert text.startswith("# kept: a comment a person wrote\n")
    assert f"{GREETING}: shipped" in text and "provider-free-fixture:farewell: ciao" in text
    assert "marker_dir" in text
    again = succeeded(service, "/environments/dev/up")
    assert again["summary"] == {"same": 4}, "a plain up ships what the last up wrote"
    assert again["outputs"]["shout"] == "SHIPPED"

    unset = succeeded(service, "/environments/dev/up", {"config": {"farewell": None}})
    assert unset["config_changes"] == [
        {"key": "provider-free-fixture:farewell", "old": "ciao", "new": None}
    ]
    assert "farewell" not in path.read_text()
    assert marker(provider_free_project, "farewell.txt").read_text() == "goodbye"


def test_a_queued_job_runs_the_source_it_was_accepted_with(
    start_service: StartService, provider_free_project: Path
) -> None:
    service = start_service(image_config_key=IMAGE_KEY)
    slow = service.post("/environments/dev/up", {"config": {"delay_seconds": 2}})
    wait_for_log(service, slow["id"], "greeter-marker creating")
    queued = service.post("/environments/dev/up")

    program = provider_free_project / "__main__.py"
    program.write_text(program.read_text() + '\npulumi.export("edited", True)\n')
    path = stack_file(provider_free_project)
    path.write_text(path.read_text().replace("hello from dev", "edited greeting"))
    later = service.post("/environments/dev/up")

    ran = service.wait(queued["id"])
    assert ran["status"] == "succeeded", ran
    assert "edited" not in ran["outputs"] and ran["outputs"]["greeting"] == "hello from dev"
    edited = service.wait(later["id"])
    assert edited["outputs"]["edited"] is True
    assert edited["outputs"]["greeting"] == "edited greeting"
    assert ran["source"]["tree"] != edited["source"]["tree"]
    assert ran["source"]["tree"] == slow["source"]["tree"], "identical trees share one hash"
    assert ran["source"]["commit"] is None and ran["source"]["dirty"] is None


def _git(project: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_a_git_checkout_records_its_commit_and_can_run_an_older_one(
    start_service: StartService, provider_free_project: Path
) -> None:
    project = provider_free_project
    (project / ".gitignore").write_text(".venv\n")
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "first")
    first = _git(project, "rev-parse", "HEAD")
    path = stack_file(project)
    path.write_text(path.read_text().replace("hello from dev", "second commit"))
    _git(project, "commit", "-q", "-am", "second")
    second = _git(project, "rev-parse", "HEAD")
    service = start_service(image_config_key=IMAGE_KEY)

    clean = succeeded(service, "/environments/dev/up")
    assert clean["source"]["commit"] == second and clean["source"]["dirty"] is False
    assert clean["outputs"]["greeting"] == "second commit"

    (project / "untracked.txt").write_text("part of the tree, not of the commit\n")
    dirty = succeeded(service, "/environments/dev/preview")
    assert dirty["source"] == {**dirty["source"], "commit": second, "dirty": True}
    assert dirty["source"]["tree"] != clean["source"]["tree"]

    old = succeeded(service, "/environments/dev/up", {"source": {"commit": first[:12]}})
    assert old["source"] == {**old["source"], "commit": first, "dirty": False}
    assert old["outputs"]["greeting"] == "hello from dev"
    assert marker(project).read_text() == "hello from dev"

    missing = service.http.post(
        "/environments/dev/up", json={"source": {"commit": "0123456789abcdef"}}
    )
    assert missing.status_code == 422
    assert "'0123456789abcdef' is not a commit" in missing.json()["detail"]
    option = service.http.post("/environments/dev/up", json={"source": {"commit": "--output=x"}})
    assert option.status_code == 422 and "is not a commit hash" in option.json()["detail"]


def test_rollback_restores_the_previous_source_and_config(
    start_service: StartService, provider_free_project: Path
) -> None:
    service = start_service(image_config_key=IMAGE_KEY)
    nothing = service.http.post("/environments/dev/rollback")
    assert nothing.status_code == 409
    assert "nothing to roll back to: dev has 0 successful up(s)" in nothing.json()["detail"]

    v1 = succeeded(service, "/environments/dev/up", {"config": {"greeting": "version one"}})
    program = provider_free_project / "__main__.py"
    program.write_text(program.read_text() + '\npulumi.export("version", 2)\n')
    v2 = succeeded(service, "/environments/dev/up", {"config": {"greeting": "version two"}})
    assert v2["outputs"]["version"] == 2
    preview = succeeded(service, "/environments/dev/preview")

    response = service.http.post("/environments/dev/rollback", json={"message": "bad deploy"})
    assert response.status_code == 202, response.text
    rollback = service.wait(response.json()["id"])
    assert rollback["status"] == "succeeded", rollback
    assert rollback["rollback_of"] == v1["id"] and rollback["operation"] == "up"
    assert rollback["source"] == v1["source"]
    assert rollback["outputs"] == v1["outputs"], "outputs as the first up left them"
    assert marker(provider_free_project).read_text() == "version one"
    assert f"{GREETING}: version one" in stack_file(provider_free_project).read_text()
    assert {"key": GREETING, "old": "version two", "new": "version one"} in rollback[
        "config_changes"
    ]

    named = service.http.post("/environments/dev/rollback", json={"to": v2["id"]})
    assert named.status_code == 202
    forward = service.wait(named.json()["id"])
    assert forward["outputs"]["version"] == 2 and forward["rollback_of"] == v2["id"]
    refused = service.http.post("/environments/dev/rollback", json={"to": preview["id"]})
    assert refused.status_code == 409
    assert "is not a successful up of dev" in refused.json()["detail"]


def _operation_processes(marker_value: str) -> list[int]:
    """Every process on the machine whose environment carries the operation's marker."""
    found = []
    needle = f"{OPERATION_MARKER}={marker_value}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if needle in environ.split(b"\0") and state != "Z":
                found.append(int(entry.name))
    return found


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_a_worker_killed_on_its_own_is_repaired_before_the_next_job(
    start_service: StartService, provider_free_project: Path, state_dir: Path
) -> None:
    """What the OOM killer does: SIGKILL of the worker alone, mid-up, while the CLI, the
    language host, the program and the dynamic provider run under it."""
    service = start_service(image_config_key=IMAGE_KEY)
    killed = service.post("/environments/dev/up", {"config": {"delay_seconds": 4}})
    wait_for_log(service, killed["id"], "greeter-marker creating")
    (worker,) = service.worker_pids()
    queued = service.post("/environments/dev/up")
    operation = _environ(worker)[OPERATION_MARKER]
    before = _operation_processes(operation)
    assert len(before) >= 4, f"the worker, the CLI and its plugins: {before}"
    os.kill(worker, signal.SIGKILL)

    failed = service.wait(killed["id"])
    assert failed["status"] == "failed"
    assert "killed by SIGKILL without a result" in failed["error"]
    assert _operation_processes(operation) == [], "a process of the killed operation still runs"
    notes = "\n".join(failed["notes"])
    assert f"the worker (pid {worker}) killed by SIGKILL without a result" in notes
    assert "process(es) of the operation still running" in notes
    assert "removed the stack lock left by pid" in notes
    assert "cleared 1 pending operation(s)" in notes

    after = service.wait(queued["id"])
    assert after["status"] == "succeeded", after
    assert after["started_at"] >= failed["finished_at"]
    assert locks(state_dir, "dev") == []
    assert marker(provider_free_project).read_text() == "hello from dev"


def test_a_second_service_on_the_same_state_dir_exits_2_at_once(
    start_service: StartService, provider_free_project: Path, state_dir: Path
) -> None:
    first = start_service(image_config_key=IMAGE_KEY)
    job = first.post("/environments/dev/up", {"config": {"delay_seconds": 2}})
    wait_for_log(first, job["id"], "greeter-marker creating")
    env = service_environment(provider_free_project, state_dir, environments="dev")
    started = time.monotonic()
    second = start_refused_service(env)
    assert time.monotonic() - started < 2.0
    assert second.returncode == 2
    assert f"in use by another automation service (pid {first.process.pid} on" in second.stderr
    done = first.wait(job["id"])
    assert done["status"] == "succeeded", "the first service's job was not disturbed"
    assert done["notes"] == []
