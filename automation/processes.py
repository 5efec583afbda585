"""Is that process still there? Checks that read /proc, where a zombie counts as gone."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """`state ppid pgrp …` from /proc/<pid>/stat (after the parenthesised command name)."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    fields = _stat_fields(pid)
    return fields is not None and fields[0] == "Z"


def live_group_members(pgid: int) -> list[int]:
    """The processes of process group `pgid` that are not zombies."""
    members = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def worker_group_is_alive(pgid: int) -> bool:
    """Whether a worker's process group (pgid = the worker's pid) still runs something of ours:
    if its leader is alive it must still be a worker (not a reused pid)."""
    members = live_group_members(pgid)
    if not members:
        return False
    if pgid not in members:
        return True
    try:
        command = (PROC / str(pgid) / "cmdline").read_bytes()
    except OSError:
        return True
    return b"automation.worker" in command


OPERATION_MARKER = "AUTOMATION_OPERATION_ID"
"""Set in a worker's environment: every process of its operation (the CLI, the language host,
the program, providers) inherits it, whatever process group or parent it ends up with."""


def operation_processes(marker: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries `OPERATION_MARKER=marker`."""
    needle = f"{OPERATION_MARKER}={marker}".encode()
    found = []
    own = os.getpid()
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def process_name(pid: int) -> str:
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return "?"


def end_operation_processes(marker: str, rounds: int = 20) -> list[str]:
    """SIGKILL every process of the operation `marker` until none is left (a process may start
    another while the first round runs); returns `name (pid)` of each one ended."""
    ended: list[str] = []
    for _ in range(rounds):
        pids = operation_processes(marker)
        if not pids:
            return ended
        for pid in pids:
            name = process_name(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            ended.append(f"{name} ({pid})")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and not all(process_is_gone(pid) for pid in pids):
            time.sleep(0.01)
    return ended
