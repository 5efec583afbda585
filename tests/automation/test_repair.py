"""Stack repair after a crash: which locks are removed, which are left, and why."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from automation.engine import Engine
from automation.pulumi_adapter import repair_stack

pytestmark = pytest.mark.timeout(120)


def write_lock(engine: Engine, owner: dict[str, object] | str) -> Path:
    folder = Path(engine.backend_url.removeprefix("file://"))
    lock = folder / ".pulumi/locks/organization/provider-free-fixture/dev/0b1c.json"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(owner if isinstance(owner, str) else json.dumps(owner))
    return lock


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_lock_whose_process_runs_is_left_alone(
    engine: Engine, provider_free_project: Path
) -> None:
    lock = write_lock(engine, {"pid": os.getpid(), "hostname": socket.gethostname()})
    notes = repair_stack(engine, provider_free_project, "dev")
    assert lock.exists()
    assert "that process is still running" in notes[0]
    assert notes[-1] == "pending operations were not inspected: the stack is still locked"


def test_a_lock_from_another_host_or_unreadable_is_left_alone(
    engine: Engine, provider_free_project: Path
) -> None:
    lock = write_lock(engine, {"pid": dead_pid(), "hostname": "some-other-host"})
    assert "cannot be checked from here" in repair_stack(engine, provider_free_project, "dev")[0]
    assert lock.exists()
    write_lock(engine, "not json")
    assert "cannot read its owner" in repair_stack(engine, provider_free_project, "dev")[0]
    assert lock.exists()


def test_a_dead_processs_lock_is_removed_and_the_state_checked(
    engine: Engine, provider_free_project: Path
) -> None:
    engine.stack(provider_free_project, "dev")  # the stack exists, with an empty state
    pid = dead_pid()
    lock = write_lock(engine, {"pid": pid, "hostname": socket.gethostname(), "timestamp": "t"})
    notes = repair_stack(engine, provider_free_project, "dev")
    assert not lock.exists()
    assert notes == [
        f"removed the stack lock left by pid {pid} on {socket.gethostname()}, since t:"
        " the process is gone"
    ]


def test_other_backends_are_not_touched(engine: Engine, provider_free_project: Path) -> None:
    remote = Engine(engine.pulumi_root, "s3://bucket/state", engine.pulumi_home)
    notes = repair_stack(remote, provider_free_project, "dev")
    assert "is not a local file backend" in notes[0] and "pulumi cancel" in notes[0]
