"""The task's root filesystem is read-only (ECS readonlyRootFilesystem): the app, run as a real
process under strace, changes nothing on disk outside its one writable path, TMPDIR
(app/contract.py's WRITABLE_DIR, a task-storage volume in ECS), while it starts, serves, answers
its health check and stops on SIGTERM. /dev (devices, /dev/shm) is not the root filesystem.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app import contract
from tests.app.running_app import REPO_ROOT, app_environment, free_port

# Every syscall that can change a file system (strace's classes plus the *at variants).
WRITING_CALLS = (
    "creat,mkdir,mkdirat,rmdir,unlink,unlinkat,rename,renameat,renameat2,link,linkat,symlink,"
    "symlinkat,truncate,chmod,fchmodat,chown,lchown,fchownat,utimensat,mknod,mknodat"
)
_CALL = re.compile(r'^\d+\s+(\w+)\((?:AT_FDCWD|\d+)?,?\s*"([^"]*)"(.*)= (-?\d+)')
_WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")


def written_paths(trace: Path, cwd: Path) -> list[str]:
    """Paths a successful writing call or write-mode open touched, made absolute."""
    found = []
    for line in trace.read_text().splitlines():
        match = _CALL.match(line)
        if match is None:
            continue
        call, path, rest, result = match.groups()
        if int(result) < 0:
            continue
        if call in {"open", "openat"} and not any(flag in rest for flag in _WRITE_FLAGS):
            continue
        found.append(os.path.normpath(cwd / path))
    return found


def traced_child(tracer: subprocess.Popen[bytes]) -> int:
    """The pid of the process strace started (its only child)."""
    deadline = time.monotonic() + 5
    children = Path(f"/proc/{tracer.pid}/task/{tracer.pid}/children")
    while time.monotonic() < deadline:
        pids = children.read_text().split()
        if pids:
            return int(pids[0])
        time.sleep(0.02)
    raise AssertionError("strace started no process")


def test_the_app_writes_only_to_its_writable_dir(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    trace = tmp_path / "trace"
    port = free_port()
    environment = app_environment(
        PORT=str(port),
        TMPDIR=str(scratch),
        PYTHONDONTWRITEBYTECODE="1",  # as app/Dockerfile sets it
    )
    tracer = subprocess.Popen(
        [
            "strace",
            "-f",
            "-qq",
            "-o",
            str(trace),
            "-e",
            f"trace=open,openat,{WRITING_CALLS}",
            sys.executable,
            "-m",
            "app",
        ],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        traced_child(tracer)  # strace has started the app
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                assert httpx.get(f"{url}/health").status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the app did not start under strace"
                time.sleep(0.1)
        assert httpx.get(f"{url}/").status_code == 200
        assert httpx.get(f"{url}/nope").status_code == 404
        # ECS runs the container health check inside the same read-only container.
        check = subprocess.run(
            [
                "strace",
                "-f",
                "-qq",
                "-o",
                str(tmp_path / "check-trace"),
                "-e",
                f"trace=open,openat,{WRITING_CALLS}",
                sys.executable,
                "-m",
                "app.healthcheck",
                f"{url}/health",
            ],
            cwd=REPO_ROOT,
            env=environment,
            capture_output=True,
            timeout=30,
        )
        assert check.returncode == 0, check.stderr
        # Read again: the first child strace showed can be a short-lived one of its own.
        os.kill(traced_child(tracer), signal.SIGTERM)
        assert tracer.wait(timeout=30) == 0
    finally:
        if tracer.poll() is None:
            os.killpg(tracer.pid, signal.SIGKILL)
            tracer.wait()

    touched = written_paths(trace, REPO_ROOT) + written_paths(tmp_path / "check-trace", REPO_ROOT)
    outside = [
        path
        for path in touched
        if not (path.startswith(f"{scratch}{os.sep}") or path == str(scratch))
        and not path.startswith("/dev/")
    ]
    assert not outside, f"written outside TMPDIR ({contract.WRITABLE_DIR} in ECS): {outside}"


def test_the_trace_reader_sees_writes(tmp_path: Path) -> None:
    """The check above cannot pass because strace saw nothing: a write is found."""
    trace = tmp_path / "trace"
    target = tmp_path / "written"
    subprocess.run(
        [
            "strace",
            "-f",
            "-qq",
            "-o",
            str(trace),
            "-e",
            f"trace=open,openat,{WRITING_CALLS}",
            sys.executable,
            "-c",
            f"open({str(target)!r}, 'w').write('x')",
        ],
        check=True,
        cwd=tmp_path,
    )
    assert str(target) in written_paths(trace, tmp_path)
