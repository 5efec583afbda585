"""What the processes the service starts may see of its environment.

Workers, the CLI, the language host, the program and dynamic providers run code that is not the
service's (the program, its packages, providers): they get no `AUTOMATION_*` setting (tokens
above all) except the operation marker, and no `PULUMI_CONFIG_PASSPHRASE`. The passphrase
reaches the engine the least exposed way Pulumi supports: `PULUMI_CONFIG_PASSPHRASE_FILE`,
either the user's own file or a 0600 file in the state dir written from the passphrase the
service was given. Pulumi strips surrounding whitespace from a passphrase file, so a
passphrase with surrounding whitespace cannot be passed on this way and is refused.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from automation.processes import OPERATION_MARKER

SERVICE_PREFIX = "AUTOMATION_"
PASSPHRASE = "PULUMI_CONFIG_PASSPHRASE"
PASSPHRASE_FILE = "PULUMI_CONFIG_PASSPHRASE_FILE"
SERVICE_PASSPHRASE_FILE = "service-passphrase"
"""In the state dir; not `passphrase`, the file `scripts/run` generates (never overwritten)."""
PR_SET_DUMPABLE = 4


class PassphraseError(ValueError):
    """The passphrase cannot be handed to the engine as a file; the message says why."""


def child_environment(environ: Mapping[str, str], passphrase_file: Path | None) -> dict[str, str]:
    """`environ` without service settings and the passphrase; the passphrase file instead."""
    env = {
        key: value
        for key, value in environ.items()
        if key != PASSPHRASE and (not key.startswith(SERVICE_PREFIX) or key == OPERATION_MARKER)
    }
    if passphrase_file is not None:
        env[PASSPHRASE_FILE] = str(passphrase_file)
    return env


def passphrase_file(state_dir: Path, environ: Mapping[str, str] | None = None) -> Path | None:
    """The file the engine reads the passphrase from: written (0600) from PULUMI_CONFIG_PASSPHRASE
    when it is set, else the user's PULUMI_CONFIG_PASSPHRASE_FILE, else None."""
    environ = os.environ if environ is None else environ
    phrase = environ.get(PASSPHRASE)
    if phrase is None:
        given = environ.get(PASSPHRASE_FILE)
        return Path(given).expanduser().resolve() if given else None
    if phrase != phrase.strip() or not phrase:
        raise PassphraseError(
            f"{PASSPHRASE} is empty or begins or ends with whitespace: the service hands the"
            f" passphrase to the engine as a file, and Pulumi strips whitespace from a"
            f" passphrase file; use a passphrase without it (or {PASSPHRASE_FILE})"
        )
    path = state_dir.resolve() / SERVICE_PASSPHRASE_FILE
    _write_private(path, phrase)
    return path


def _write_private(path: Path, text: str) -> None:
    """Written whole and 0600 from the first byte (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def seal_service_environment(state_dir: Path) -> Path | None:
    """For the service process itself (after its settings are read): its own environment
    loses the service settings and the passphrase, so every CLI it runs inherits none, and
    it becomes non-dumpable, so a program running as the same user cannot read
    /proc/<service pid>/environ (the kernel keeps the environment it was started with)."""
    path = passphrase_file(state_dir)
    for key in [key for key in os.environ if key.startswith(SERVICE_PREFIX) or key == PASSPHRASE]:
        del os.environ[key]
    if path is not None:
        os.environ[PASSPHRASE_FILE] = str(path)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0)
    return path
