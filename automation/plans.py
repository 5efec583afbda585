"""Saved update plans: each succeeded preview's plan (`pulumi preview --save-plan`), kept in the
state dir until it is applied (`pulumi up --plan`) or too old to be.

Beside each plan is the stack file the preview ran with: its config, and the encryption salt
that the plan's secret values are encrypted with (a job's copy of a project whose stack file
has no salt yet gets one of its own), so the apply runs with exactly that file.

A plan holds the config and the resource goals of the stack it was made for: the folder is
private to the service (0700, files 0600), like the passphrase file beside it.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path


class PlanFiles:
    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir / "plans"

    def path(self, job_id: str) -> Path:
        """Where the plan of preview `job_id` is (to be) saved; the folder exists after this."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.folder / f"{job_id}.json"

    def stack_file(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.stack.yaml"

    def seal(self, job_id: str, stack_file: Path) -> bool:
        """Keep the stack file beside a saved plan, both readable by the service only;
        False when no plan was saved."""
        path = self.path(job_id)
        if not path.is_file():
            return False
        os.chmod(path, 0o600)
        kept = self.stack_file(job_id)
        shutil.copyfile(stack_file, kept)
        os.chmod(kept, 0o600)
        return True

    def exists(self, job_id: str) -> bool:
        return (self.folder / f"{job_id}.json").is_file() and self.stack_file(job_id).is_file()

    def prune(self, max_age_seconds: float) -> int:
        """Delete plans older than any that can still be applied; returns how many."""
        if not self.folder.is_dir():
            return 0
        cutoff = time.time() - max_age_seconds
        removed = 0
        for path in [*self.folder.glob("*.json"), *self.folder.glob("*.stack.yaml")]:
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
