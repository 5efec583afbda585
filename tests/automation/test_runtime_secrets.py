"""What the processes of an operation can see, what /readyz checks, what a failed job says.

The real service (`python -m automation`) and the real engine on copies of the fixture; the
processes' environments are read from /proc while they run.
"""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import pytest

from automation.engine import Engine
from automation.processes import OPERATION_MARKER
from automation.readiness import Readiness
from tests.automation.conftest import StartService
from tests.automation.running_service import PASSPHRASE, service_environment, wait_for_log

pytestmark = pytest.mark.timeout(180)

ADMIN_TOKEN = "admin-token-0123456789abcdef"
READ_TOKEN = "reader-token-fedcba9876543210"
TOKENS = json.dumps(
    [
        {"name": "admin", "token": ADMIN_TOKEN, "scopes": ["read", "operate:*"]},
        {"name": "reader", "token": READ_TOKEN, "scopes": ["read"]},
    ]
)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def _operation_processes(marker: str) -> dict[int, tuple[str, bytes]]:
    """pid -> (command name, raw environment) of every live process carrying the marker."""
    needle = f"{OPERATION_MARKER}={marker}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if needle in environ.split(b"\0") and state != "Z":
            found[int(entry.name)] = (command, environ)
    return found


def test_no_process_of_an_operation_sees_a_token_or_the_passphrase(
    start_service: StartService, state_dir: Path
) -> None:
    service = start_service(token=ADMIN_TOKEN, tokens=TOKENS)
    job = service.post("/environments/dev/up", {"config": {"delay_seconds": 3}})
    wait_for_log(service, job["id"], "greeter-marker creating")
    (worker,) = service.worker_pids()
    marker = _environ(worker)[OPERATION_MARKER]
    processes = _operation_processes(marker)
    commands = "\n".join(command for command, _ in processes.values())
    # The worker, the CLI, the language host, the program and the dynamic provider.
    assert "automation.worker" in commands
    assert "pulumi-language-python" in commands
    assert "pulumi-resource-pulumi-python" in commands
    assert "__main__.py" in commands or "pulumi-language-python-exec" in commands, commands
    assert len(processes) >= 5, commands

    secrets = [ADMIN_TOKEN, READ_TOKEN, PASSPHRASE]
    for pid, (command, environ) in processes.items():
        names = {item.split(b"=", 1)[0].decode() for item in environ.split(b"\0") if item}
        assert "AUTOMATION_TOKENS" not in names, command
        assert "PULUMI_CONFIG_PASSPHRASE" not in names, command
        assert {name for name in names if name.startswith("AUTOMATION_")} == {OPERATION_MARKER}, (
            command
        )
        for secret in secrets:
            assert secret.encode() not in environ, f"{pid} {command}"
        passphrase_file = Path(_environ(pid)["PULUMI_CONFIG_PASSPHRASE_FILE"])
        assert passphrase_file.parent == state_dir.resolve(), command

    assert passphrase_file.read_text() == PASSPHRASE
    assert stat.S_IMODE(passphrase_file.stat().st_mode) == 0o600
    finished = service.wait(job["id"])
    assert finished["status"] == "succeeded", finished


def test_readyz_names_the_stack_a_wrong_passphrase_cannot_decrypt_and_jobs_say_so_plainly(
    start_service: StartService, provider_free_project: Path, state_dir: Path
) -> None:
    first = start_service(environments="dev,prod")
    created = first.wait(first.post("/environments/dev/up")["id"])
    assert created["status"] == "succeeded", created
    assert first.http.get("/readyz").json() == {"status": "ready"}
    assert first.stop() == 0

    env = service_environment(provider_free_project, state_dir, environments="dev,prod")
    env["PULUMI_CONFIG_PASSPHRASE"] = "not-the-passphrase-of-dev"
    wrong = start_service(env=env)
    ready = wrong.http.get("/readyz")
    assert ready.status_code == 503, ready.text
    detail = ready.json()["detail"]
    assert "cannot decrypt stack 'dev'" in detail and "incorrect passphrase" in detail
    assert "'prod'" not in detail, "prod has no stack yet: nothing to decrypt"

    failed = wrong.wait(wrong.post("/environments/dev/preview")["id"])
    assert failed["status"] == "failed"
    assert failed["error"] == (
        "incorrect passphrase: the service's secrets passphrase cannot decrypt this stack"
        " (GET /readyz names every stack it cannot decrypt)"
    )
    log = wrong.http.get(f"/jobs/{failed['id']}/log").text
    assert "incorrect passphrase" in log, "the CLI's own output stays in the job's log"


def test_a_failing_program_fails_its_job_with_one_clean_message(
    start_service: StartService,
) -> None:
    service = start_service()
    failed = service.wait(service.post("/environments/dev/up", {"config": {"fail": True}})["id"])
    assert failed["status"] == "failed"
    error = failed["error"]
    assert "the fixture was asked to fail (config fail=true)" in error
    for wrapper in ("code: ", "stdout:", "stderr:", "\n"):
        assert wrapper not in error, error


def test_readyz_asks_the_engine_again_only_after_a_change_or_its_cache_time(
    engine: Engine, provider_free_project: Path
) -> None:
    now = [1000.0]
    readiness = Readiness(engine, provider_free_project, ["dev", "prod"], clock=lambda: now[0])

    async def ask(times: int) -> list[list[str]]:
        return list(await asyncio.gather(*(readiness.problems() for _ in range(times))))

    async def scenario() -> list[int]:
        counts = []
        assert await ask(20) == [[]] * 20, "no stack exists yet: nothing to decrypt"
        counts.append(readiness.checks)
        now[0] += 10
        await ask(5)
        counts.append(readiness.checks)
        stack = provider_free_project / "Pulumi.dev.yaml"
        stack.write_text(stack.read_text() + "\n")  # a changed stack file: checked at once
        await ask(5)
        counts.append(readiness.checks)
        now[0] += 31  # and everything again after 30 s
        await ask(1)
        counts.append(readiness.checks)
        return counts

    loop = asyncio.new_event_loop()  # not asyncio.run: it would unset the thread's loop
    try:
        assert loop.run_until_complete(scenario()) == [1, 1, 2, 3]
    finally:
        loop.close()
