"""What /readyz checks: what a job will need, the engine and the passphrase of each stack.

The passphrase check is `pulumi stack history --show-secrets --json --page-size 1` with
`PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER=true`: it builds the stack's secrets manager, which
decrypts a known message with the salt (the stack file's `encryptionsalt`, else the one in the
backend's state), so it fails on a wrong passphrase even for a stack with no secret at all
(`pulumi config --show-secrets`, `stack export --show-secrets` and `stack output` succeed
there). It runs in a scratch copy of the stack files, since without a salt in the stack file
the CLI may write one. About 0.3 s per stack that exists (two at a time); the result is kept
until a stack file or the passphrase file changes, or for `ttl` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pulumi import automation as auto

from automation.engine import Engine, EngineError, uses_passphrase

CACHE_SECONDS = 30.0
HISTORY = ["stack", "history", "--show-secrets", "--json", "--page-size", "1"]

Fingerprint = tuple[tuple[str, int, int], ...]


class Readiness:
    def __init__(
        self,
        engine: Engine,
        project_dir: Path,
        environments: list[str],
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.project_dir = project_dir
        self.environments = environments
        self.ttl = ttl
        self.clock = clock
        self.checks = 0
        """How many times the engine was asked (the rest were answered from the cache)."""
        self._lock = asyncio.Lock()
        self._result: tuple[float, Fingerprint, list[str]] | None = None

    def _stack_file(self, name: str) -> Path:
        return self.project_dir / f"Pulumi.{name}.yaml"

    def _fingerprint(self) -> Fingerprint:
        paths = [self._stack_file(name) for name in self.environments]
        file = os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
        if file:
            paths.append(Path(file))
        stamps = []
        for path in paths:
            try:
                info = path.stat()
                stamps.append((str(path), info.st_mtime_ns, info.st_size))
            except OSError:
                stamps.append((str(path), -1, -1))
        return tuple(stamps)

    async def problems(self) -> list[str]:
        """What a job would fail on, each naming what is missing; empty when ready."""
        async with self._lock:
            now, fingerprint = self.clock(), self._fingerprint()
            if self._result is not None:
                at, seen, problems = self._result
                if seen == fingerprint and now - at < self.ttl:
                    return problems
            problems = await asyncio.to_thread(self._check)
            self.checks += 1
            self._result = (now, fingerprint, problems)
            return problems

    def _check(self) -> list[str]:
        try:
            command = self.engine.command()  # runs `pulumi version`: is the CLI runnable?
        except Exception as error:  # the SDK raises several kinds; all mean "no engine"
            return [f"the Pulumi CLI in {self.engine.bin_dir} cannot be run: {error}"]
        try:
            self.engine.check_passphrase()
        except EngineError as error:
            return [str(error)]
        if not uses_passphrase(self.engine.backend_url):
            return []
        with tempfile.TemporaryDirectory(prefix="readyz-") as scratch:
            work_dir = Path(scratch)
            for name in ["Pulumi.yaml", *(self._stack_file(env).name for env in self.environments)]:
                with contextlib.suppress(FileNotFoundError):
                    shutil.copyfile(self.project_dir / name, work_dir / name)
            with ThreadPoolExecutor(max_workers=2) as pool:
                found = pool.map(
                    lambda name: self._check_stack(command, work_dir, name), self.environments
                )
                return [problem for problem in found if problem]

    def _check_stack(self, command: auto.PulumiCommand, work_dir: Path, name: str) -> str | None:
        try:
            command.run(
                [*HISTORY, "--stack", name],
                str(work_dir),
                {**self.engine.env_vars(), "PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER": "true"},
            )
        except auto.StackNotFoundError:
            return None  # not created yet: its first up will use the passphrase it is given
        except auto.CommandError as error:
            stderr = (getattr(error, "stderr", "") or "").strip()
            detail = stderr.removeprefix("error: ").splitlines()[0] if stderr else str(error)
            if "incorrect passphrase" in detail:
                return f"the secrets passphrase cannot decrypt stack {name!r}: incorrect passphrase"
            return f"stack {name!r} cannot be read: {detail}"
        return None
