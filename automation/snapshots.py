"""The project source a job runs: captured when the job is accepted, content-addressed.

`SnapshotStore` lives in `<state dir>/snapshots/`:
- `blobs/<sha256>`: each file's content, stored once whatever its name or job;
- `trees/<tree hash>.json`: a tree's manifest (`[path, mode, blob]` sorted by path, symlinks as
  `[path, "link", target]`); the tree hash is the SHA-256 of that manifest, so identical trees
  are one entry.

A job is materialized into a private working copy (`<state dir>/work/<job id>/`) when it runs,
so nothing a program, the CLI or a later edit of the checkout does reaches another job. What
is captured: every file under the project except virtualenvs, state, caches and VCS folders;
in a git checkout, the files git would commit (tracked plus untracked, `.gitignore` honoured),
with the commit and whether the tree differed from it. A request can name a commit instead:
the tree is then read from git, not from the working tree.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from automation.models import Source

SKIPPED_DIRECTORIES = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        "node_modules",
        ".state",
        ".tools",
    }
)
"""Never part of a snapshot, in or out of git: environments, state, caches, VCS data."""

GIT_TIMEOUT_SECONDS = 30.0
COMMIT = frozenset("0123456789abcdef")

ManifestEntry = tuple[str, str, str]
"""(path, mode, blob) for a file, mode '644' or '755'; (path, 'link', target) for a symlink."""


class SnapshotError(ValueError):
    """The requested source cannot be captured; the message says why."""


class SnapshotStore:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "snapshots"
        self.blobs = self.root / "blobs"
        self.trees = self.root / "trees"
        self.work = state_dir / "work"
        for folder in (self.blobs, self.trees, self.work):
            folder.mkdir(parents=True, exist_ok=True)
        self._known: dict[tuple[str, int, int, int], str] = {}
        """(path, inode, size, mtime_ns) -> blob: unchanged files are not read again."""
        self._lock = threading.Lock()

    # Capturing

    def capture(self, project_dir: Path, commit: str | None = None) -> Source:
        """The project's current tree (or `commit`'s tree, in a git checkout), stored."""
        repo = _git_root(project_dir)
        if commit is not None:
            if repo is None:
                raise SnapshotError(
                    f"source.commit {commit!r} was given but the project {project_dir.name!r} is"
                    " not a git checkout"
                )
            return self._capture_commit(project_dir, repo, commit)
        if repo is None:
            entries = self._capture_files(project_dir, _walk(project_dir))
            return Source(tree=self._store_tree(entries), commit=None, dirty=None)
        head = _git_or_none(project_dir, "rev-parse", "--verify", "-q", "HEAD^{commit}") or ""
        head = head.strip()
        listed = _git(project_dir, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        files = sorted(
            name
            for name in set(listed.split("\0"))
            if name and not SKIPPED_DIRECTORIES.intersection(Path(name).parts[:-1])
        )
        entries = self._capture_files(project_dir, files)
        dirty = bool(_git(project_dir, "status", "--porcelain", "-z", "--", ".")) if head else None
        return Source(tree=self._store_tree(entries), commit=head or None, dirty=dirty)

    def _capture_files(self, project_dir: Path, names: Iterable[str]) -> list[ManifestEntry]:
        entries: list[ManifestEntry] = []
        for name in names:
            path = project_dir / name
            try:
                info = path.lstat()
            except FileNotFoundError:  # listed by git, deleted in the working tree
                continue
            if stat.S_ISLNK(info.st_mode):
                entries.append((name, "link", os.readlink(path)))
            elif stat.S_ISREG(info.st_mode):
                mode = "755" if info.st_mode & stat.S_IXUSR else "644"
                entries.append((name, mode, self._blob_of_file(path, info)))
        return entries

    def _blob_of_file(self, path: Path, info: os.stat_result) -> str:
        key = (str(path), info.st_ino, info.st_size, info.st_mtime_ns)
        known = self._known.get(key)
        if known is not None:
            try:
                os.utime(self.blobs / known)
                return known
            except FileNotFoundError:
                pass
        blob = self._store_blob(path.read_bytes())
        self._known[key] = blob
        return blob

    def _store_blob(self, content: bytes) -> str:
        blob = hashlib.sha256(content).hexdigest()
        self._keep_or_write(self.blobs / blob, content)
        return blob

    @staticmethod
    def _keep_or_write(target: Path, content: bytes) -> None:
        """Store `content` at `target` once; a reused entry is touched, so a prune running
        while a new job is being accepted (before its job row exists) spares it."""
        try:
            os.utime(target)
        except FileNotFoundError:
            _write_atomically(target, content)

    def _store_tree(self, entries: list[ManifestEntry]) -> str:
        entries.sort()
        manifest = json.dumps(entries, separators=(",", ":")).encode()
        tree = hashlib.sha256(manifest).hexdigest()
        self._keep_or_write(self.trees / f"{tree}.json", manifest)
        return tree

    def _capture_commit(self, project_dir: Path, repo: Path, commit: str) -> Source:
        if not (7 <= len(commit) <= 64 and set(commit.lower()) <= COMMIT):
            raise SnapshotError(
                f"source.commit {commit!r} is not a commit hash (7 to 64 hex digits)"
            )
        resolved = _git_or_none(project_dir, "rev-parse", "--verify", "-q", f"{commit}^{{commit}}")
        if not resolved:
            raise SnapshotError(f"source.commit {commit!r} is not a commit of the project's git")
        resolved = resolved.strip()
        prefix = project_dir.resolve().relative_to(repo).as_posix()
        treeish = resolved if prefix == "." else f"{resolved}:{prefix}"
        archive = subprocess.run(
            ["git", "archive", "--format=tar", treeish],
            cwd=project_dir,
            capture_output=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
        if archive.returncode != 0:
            raise SnapshotError(
                f"source.commit {commit!r} has no project folder {prefix!r}:"
                f" {archive.stderr.decode(errors='replace').strip()}"
            )
        entries: list[ManifestEntry] = []
        with tarfile.open(fileobj=io.BytesIO(archive.stdout), mode="r:") as tar:
            for member in tar:
                parts = Path(member.name).parts
                if SKIPPED_DIRECTORIES.intersection(parts[:-1]):
                    continue
                if member.issym():
                    entries.append((member.name, "link", member.linkname))
                elif member.isfile():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    mode = "755" if member.mode & stat.S_IXUSR else "644"
                    entries.append((member.name, mode, self._store_blob(extracted.read())))
        if not any(name == "Pulumi.yaml" for name, _, _ in entries):
            raise SnapshotError(f"source.commit {commit!r} holds no Pulumi.yaml in {prefix!r}")
        return Source(tree=self._store_tree(entries), commit=resolved, dirty=False)

    # Using

    def exists(self, tree: str) -> bool:
        return (self.trees / f"{tree}.json").is_file()

    def manifest(self, tree: str) -> list[ManifestEntry]:
        try:
            entries = json.loads((self.trees / f"{tree}.json").read_bytes())
        except FileNotFoundError as error:
            raise SnapshotError(f"the source snapshot {tree} is no longer kept") from error
        return [(str(a), str(b), str(c)) for a, b, c in entries]

    def work_dir(self, job_id: str) -> Path:
        return self.work / job_id

    def materialize(self, tree: str, job_id: str, project_dir: Path) -> Path:
        """A fresh private copy of `tree` for `job_id`, using the checkout's virtualenv."""
        target = self.work_dir(job_id)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name, mode, ref in self.manifest(tree):
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if mode == "link":
                path.symlink_to(ref)
            else:
                shutil.copyfile(self.blobs / ref, path)
                path.chmod(0o755 if mode == "755" else 0o644)
        _use_checkout_virtualenv(target, project_dir)
        return target

    def discard(self, job_id: str) -> None:
        shutil.rmtree(self.work_dir(job_id), ignore_errors=True)

    def prune(self, keep: set[str], grace_seconds: float) -> int:
        """Delete every tree not in `keep` and every blob no kept tree uses, sparing what was
        stored or reused in the last `grace_seconds`; returns how many trees went. Call with
        every tree a queued, running or kept job still needs."""
        cutoff = time.time() - grace_seconds
        with self._lock:
            removed = 0
            used: set[str] = set()
            for manifest in self.trees.glob("*.json"):
                tree = manifest.stem
                if tree not in keep and _modified(manifest) < cutoff:
                    manifest.unlink(missing_ok=True)
                    removed += 1
                    continue
                with contextlib.suppress(SnapshotError):
                    used.update(ref for _, mode, ref in self.manifest(tree) if mode != "link")
            for blob in self.blobs.iterdir():
                if blob.name in used or blob.name.startswith(".") or _modified(blob) >= cutoff:
                    continue
                blob.unlink(missing_ok=True)
            self._known = {key: blob for key, blob in self._known.items() if blob in used}
            return removed

    def discard_work_dirs(self, keep: set[str]) -> None:
        """Remove working copies left by jobs that are over (a crash leaves them behind)."""
        for folder in self.work.iterdir():
            if folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _walk(project_dir: Path) -> Iterator[str]:
    for folder, directories, files in os.walk(project_dir):
        directories[:] = sorted(d for d in directories if d not in SKIPPED_DIRECTORIES)
        base = Path(folder).relative_to(project_dir)
        for name in sorted(files):
            if not name.endswith((".pyc", ".pyo")):
                yield (base / name).as_posix()
        for name in directories:  # symlinked folders are recorded as links, not followed
            if (Path(folder) / name).is_symlink():
                yield (base / name).as_posix()


def _use_checkout_virtualenv(work_dir: Path, project_dir: Path) -> None:
    """The program runs with the checkout's own virtualenv (`runtime.options.virtualenv`), named
    by its real path in the copy's Pulumi.yaml: through a link inside each copy, every module
    would have a new path per job, and the bytecode cache (PYTHONPYCACHEPREFIX) would miss on
    the whole SDK every time."""
    path = work_dir / "Pulumi.yaml"
    yaml = YAML()
    yaml.width = 4096
    try:
        settings = yaml.load(path.read_text())
    except (OSError, YAMLError):
        return
    runtime: Any = settings.get("runtime") if isinstance(settings, dict) else None
    options: Any = runtime.get("options") if isinstance(runtime, dict) else None
    virtualenv = options.get("virtualenv") if isinstance(options, dict) else None
    if not isinstance(virtualenv, str) or Path(virtualenv).is_absolute():
        return
    options["virtualenv"] = str((project_dir / virtualenv).resolve())
    with path.open("w") as file:
        yaml.dump(settings, file)


def _git_root(project_dir: Path) -> Path | None:
    found = _git_or_none(project_dir, "rev-parse", "--show-toplevel")
    return Path(found.strip()).resolve() if found else None


def _run_git(project_dir: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=project_dir,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError:  # no git on this machine: not a checkout we can read
        return None


def _git_or_none(project_dir: Path, *args: str) -> str | None:
    result = _run_git(project_dir, *args)
    return result.stdout if result is not None and result.returncode == 0 else None


def _git(project_dir: Path, *args: str) -> str:
    result = _run_git(project_dir, *args)
    if result is None or result.returncode != 0:
        why = "git is not installed" if result is None else result.stderr.strip()
        raise SnapshotError(f"git {args[0]} failed in the project: {why}")
    return result.stdout


def _write_atomically(target: Path, content: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
