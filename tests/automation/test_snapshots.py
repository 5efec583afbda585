"""Source snapshots, stack-file edits and the state-dir lock, on real files and processes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from automation.snapshots import SnapshotError, SnapshotStore
from automation.stack_files import apply_config, read_config
from automation.state_lock import StateDirBusy, StateDirLock


def project(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text(
        "name: p\nruntime:\n  name: python\n  options:\n    virtualenv: .venv\n"
    )
    (root / "__main__.py").write_text("print('hi')\n")
    (root / "pkg" / "tool.sh").write_text("#!/bin/sh\n")
    (root / "pkg" / "tool.sh").chmod(0o755)
    for skipped in (".venv/lib", "__pycache__", ".git", "node_modules", ".state"):
        (root / skipped).mkdir(parents=True)
        (root / skipped / "x.txt").write_text("never part of a snapshot")
    (root / "pkg" / "cached.pyc").write_bytes(b"\0")
    return root


def test_a_tree_is_stored_once_by_content_and_copied_privately(tmp_path: Path) -> None:
    source = project(tmp_path / "project")
    store = SnapshotStore(tmp_path / "state")
    first = store.capture(source)
    assert first.commit is None and first.dirty is None
    names = sorted(name for name, _, _ in store.manifest(first.tree))
    assert names == ["Pulumi.yaml", "__main__.py", "pkg/tool.sh"]
    manifest = (tmp_path / "state" / "snapshots" / "trees" / f"{first.tree}.json").read_bytes()
    assert hashlib.sha256(manifest).hexdigest() == first.tree
    blob = hashlib.sha256(b"print('hi')\n").hexdigest()
    assert (tmp_path / "state" / "snapshots" / "blobs" / blob).read_bytes() == b"print('hi')\n"
    assert store.capture(source).tree == first.tree, "an unchanged tree has the same hash"

    copy = store.materialize(first.tree, "job-1", source)
    assert (copy / "__main__.py").read_text() == "print('hi')\n"
    assert os.access(copy / "pkg" / "tool.sh", os.X_OK)
    venv = (source / ".venv").resolve()
    assert f"virtualenv: {venv}" in (copy / "Pulumi.yaml").read_text(), "the checkout's venv"
    (copy / "__main__.py").write_text("changed by the job")
    assert (tmp_path / "state" / "snapshots" / "blobs" / blob).read_bytes() == b"print('hi')\n"

    (source / "__main__.py").write_text("print('edited')\n")
    assert store.capture(source).tree != first.tree
    assert (store.materialize(first.tree, "job-2", source) / "__main__.py").read_text() == (
        "print('hi')\n"
    )


def test_prune_keeps_what_is_asked_and_what_is_fresh(tmp_path: Path) -> None:
    source = project(tmp_path / "project")
    store = SnapshotStore(tmp_path / "state")
    old = store.capture(source)
    (source / "__main__.py").write_text("print('new')\n")
    new = store.capture(source)
    assert store.prune(set(), grace_seconds=3600) == 0, "fresh trees survive a prune"
    past = time.time() - 7200
    for path in (tmp_path / "state" / "snapshots").rglob("*"):
        os.utime(path, (past, past))
    assert store.prune({new.tree}, grace_seconds=3600) == 1
    assert store.exists(new.tree) and not store.exists(old.tree)
    with pytest.raises(SnapshotError, match="no longer kept"):
        store.materialize(old.tree, "job", source)
    store.materialize(new.tree, "job", source)  # every blob it needs is still there


def test_stack_file_edits_keep_everything_else(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.dev.yaml"
    text = (
        "# a comment a person wrote\n"
        "config:\n"
        "  p:greeting: hello # inline\n"
        "  p:token:\n"
        "    secure: v1:abc\n"
        "  aws:region: us-east-1\n"
        "encryptionsalt: v1:salt\n"
    )
    path.write_text(text)
    changes = apply_config(path, "p", {"greeting": "hi", "other:key": "x", "gone": None})
    assert [change.model_dump() for change in changes] == [
        {"key": "p:greeting", "old": "hello", "new": "hi"},
        {"key": "other:key", "old": None, "new": "x"},
    ]
    assert path.read_text() == text.replace("hello # inline", "hi    # inline").replace(
        "  aws:region: us-east-1\n", "  aws:region: us-east-1\n  other:key: x\n"
    )
    assert read_config(path, "p", ["greeting", "token", "gone"]) == {
        "greeting": "hi",
        "token": "[secret]",
        "gone": None,
    }
    assert apply_config(path, "p", {"greeting": "hi"}) == [], "no change, no write"
    removed = apply_config(path, "p", {"other:key": None})
    assert [change.model_dump() for change in removed] == [
        {"key": "other:key", "old": "x", "new": None}
    ]
    assert path.read_text() == text.replace("hello # inline", "hi    # inline")


def test_a_second_holder_of_the_state_dir_is_refused_naming_the_first(tmp_path: Path) -> None:
    lock = StateDirLock(tmp_path)
    lock.acquire()
    holder = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from automation.state_lock import *\n"
            "try:\n StateDirLock(Path(sys.argv[1])).acquire()\n"
            "except StateDirBusy as e:\n print(e); sys.exit(2)",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert holder.returncode == 2
    assert f"(pid {os.getpid()} on" in holder.stdout
    assert json.loads((tmp_path / "service.lock").read_text())["pid"] == os.getpid()
    lock.release()
    again = StateDirLock(tmp_path)
    again.acquire()  # a released (or dead) holder's lock is taken over
    with pytest.raises(StateDirBusy):
        StateDirLock(tmp_path).acquire()
    again.release()
