"""One service per state dir: an exclusive `flock` on `<state dir>/service.lock`, held for the
life of the process. The kernel drops it when the holder dies however it dies, so a hold left
by a dead service is simply taken over; the file names the holder (pid, host) for the message a
second service prints before it exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from pathlib import Path


class StateDirBusy(RuntimeError):
    """Another live service holds the state dir; the message names it."""


class StateDirLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "service.lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StateDirBusy(
                f"the state dir {self.path.parent} is in use by another automation service"
                f" ({holder}); stop it first, or give this one its own AUTOMATION_STATE_DIR"
            ) from None
        os.ftruncate(fd, 0)
        owner = {"pid": os.getpid(), "host": socket.gethostname()}
        os.pwrite(fd, json.dumps(owner).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _read_holder(fd: int) -> str:
    try:
        owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {int(owner['pid'])} on {owner['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"
