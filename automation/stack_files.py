"""Config keys in a `Pulumi.<stack>.yaml`, edited in place: only the keys named change;
comments, order, quoting and every other key stay as they were (ruamel's round trip).

Two uses: a job's private working copy gets the job's config before the engine reads it (no
CLI run needed), and a successful up writes the config it set back into the checkout's stack
file, atomically, so `pulumi up` by hand ships the same thing.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from automation.models import SECRET, ConfigChange


def qualified(project: str, key: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def _yaml() -> YAML:
    yaml = YAML()  # round-trip mode
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return SECRET if "secure" in value else str(dict(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def apply_config(path: Path, project: str, config: Mapping[str, str | None]) -> list[ConfigChange]:
    """Set (or, for None, remove) each key of `config` in the stack file at `path`, creating
    the file if needed; write atomically; return what changed (secret olds as the marker)."""
    yaml = _yaml()
    document: Any = yaml.load(path.read_text()) if path.is_file() else None
    if document is None:
        document = CommentedMap()
    if not isinstance(document, CommentedMap):
        raise ValueError(f"{path.name} is not a YAML mapping")
    section = document.get("config")
    if section is None:
        section = CommentedMap()
        document.insert(0, "config", section)
    changes: list[ConfigChange] = []
    for short_key, value in config.items():
        key = qualified(project, short_key)
        present = [k for k in dict.fromkeys((key, short_key)) if k in section]
        old = section[present[0]] if present else None
        if not isinstance(old, Mapping) and _shown(old) == value:
            continue
        for found in present:
            if value is None or found != key:
                del section[found]
        if value is not None:
            section[key] = value  # in place when present: position and comments kept
        changes.append(ConfigChange(key=key, old=_shown(old), new=value))
    if changes:
        buffer = io.StringIO()
        yaml.dump(document, buffer)
        _write_atomically(path, buffer.getvalue())
    return changes


def read_config(path: Path, project: str, keys: list[str]) -> dict[str, str | None]:
    """The values of `keys` in the stack file (None where absent; secrets as the marker)."""
    document: Any = _yaml().load(path.read_text()) if path.is_file() else None
    section = document.get("config") if isinstance(document, Mapping) else None
    section = section if isinstance(section, Mapping) else {}
    found: dict[str, str | None] = {}
    for short_key in keys:
        key = qualified(project, short_key)
        found[short_key] = _shown(section.get(key, section.get(short_key)))
    return found


def _write_atomically(path: Path, text: str) -> None:
    """Replace `path` in one step (a reader sees the old file or the new one, never half)."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
