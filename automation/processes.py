"""Is that process still there? Checks that read /proc, where a zombie counts as gone."""

from __future__ import annotations

import os
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
