"""What `GET /environments/{env}` shows, from memory: a stack's config and outputs are read
through the CLI (two processes, about half a second) only when they may have changed.

An environment's view is read again after a job of it finished (the runner says so) and when
the checkout's stack file changed (its inode, size and mtime are compared on each read, so a
hand edit or an atomic replace is seen at once). Concurrent reads of a view that is missing or
stale share one CLI read. A read that was under way when the view was invalidated answers its
callers but is not kept. Not seen: operations run by hand with the CLI against the service's
backend (their effect shows after the environment's next job or stack file change).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from automation.pulumi_adapter import StackView, stack_file

Fingerprint = tuple[int, int, int] | None


@dataclass(frozen=True)
class _Cached:
    view: StackView
    fingerprint: Fingerprint
    generation: int


class StackViews:
    def __init__(self, read: Callable[[str], StackView], project_dir: Path) -> None:
        """`read` is the CLI read (StackReader.read); it runs in a thread."""
        self._read = read
        self._project_dir = project_dir
        self._cached: dict[str, _Cached] = {}
        self._generation: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def invalidate(self, environment: str) -> None:
        self._generation[environment] = self._generation.get(environment, 0) + 1
        self._cached.pop(environment, None)

    async def view(self, environment: str) -> StackView:
        cached = self._fresh(environment)
        if cached is not None:
            return cached.view
        async with self._locks.setdefault(environment, asyncio.Lock()):
            cached = self._fresh(environment)  # another caller may have read it meanwhile
            if cached is not None:
                return cached.view
            generation = self._generation.get(environment, 0)
            fingerprint = self._fingerprint(environment)
            view = await asyncio.to_thread(self._read, environment)
            if self._generation.get(environment, 0) == generation:
                self._cached[environment] = _Cached(view, fingerprint, generation)
            return view

    def _fresh(self, environment: str) -> _Cached | None:
        cached = self._cached.get(environment)
        if cached is None or cached.fingerprint != self._fingerprint(environment):
            return None
        return cached

    def _fingerprint(self, environment: str) -> Fingerprint:
        try:
            info = os.stat(stack_file(self._project_dir, environment))
        except FileNotFoundError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns)
