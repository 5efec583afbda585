"""What the processes of an operation can see, what /readyz checks, what a failed job says.

The real service (`python -m automation`) and the real engine on copies of the fixture; the
processes' environments are read from /proc while they run.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from automation.processes import OPERATION_MARKER
from tests.automation.conftest import StartService
from tests.automation.running_service import PASSPHRASE, wait_for_log

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
