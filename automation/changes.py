"""A job's change list, read from the engine's events: one entry per resource the engine
stepped over, in its order, with the property paths that change and their values.

The engine announces each step with a `resourcePreEvent`. A replacement is several steps
(`create-replacement`, `replace`, `delete-replaced`, and their `discard` forms) on one URN: they
make one entry with op `replace`. A refresh announces `refresh` for every resource and says
what it found in the `resOutputsEvent` (`same`, `update`, `delete`), comparing outputs: that
is the entry's op and diff. Providers that give no detailed diff (dynamic providers, many
bridged ones) get theirs from the step's old and new inputs, as the Pulumi CLI's display does.
"""

from __future__ import annotations

import json
from typing import Any

from automation.models import SECRET, PropertyDiff, ResourceChange
from automation.secrets import is_secret_object

REPLACEMENT_STEPS = {
    "replace",
    "create-replacement",
    "delete-replaced",
    "discard-replaced",
    "read-replacement",
    "import-replacement",
}
OLD_ONLY_STEPS = {"delete-replaced", "discard-replaced"}
MAX_VALUE_CHARS = 1000
"""Longer values are cut (a change list is for reading, the job's events have them whole)."""


class ChangeList:
    def __init__(self) -> None:
        self._entries: dict[str, ResourceChange] = {}

    def observe(self, event: dict[str, Any]) -> None:
        outcome = (event.get("resOutputsEvent") or {}).get("metadata")
        if isinstance(outcome, dict):
            self._refreshed(outcome)
            return
        metadata = (event.get("resourcePreEvent") or {}).get("metadata")
        if not isinstance(metadata, dict) or not metadata.get("urn"):
            return
        urn = str(metadata["urn"])
        op = str(metadata.get("op", ""))
        diff = _diff(metadata)
        known = self._entries.get(urn)
        if known is None:
            self._entries[urn] = ResourceChange(
                urn=urn,
                type=str(metadata.get("type", "")),
                name=urn.rsplit("::", 1)[-1],
                op="replace" if op in REPLACEMENT_STEPS else op,
                diff=diff,
            )
            return
        if op in REPLACEMENT_STEPS:
            known.op = "replace"
        if op not in OLD_ONLY_STEPS:  # its "diff" is the old resource going away
            for path, change in diff.items():
                known.diff.setdefault(path, change)

    def _refreshed(self, metadata: dict[str, Any]) -> None:
        known = self._entries.get(str(metadata.get("urn", "")))
        if known is None or known.op != "refresh":
            return
        known.op = str(metadata.get("op", known.op))
        known.diff = _diff(metadata, side="outputs")

    def entries(self) -> list[ResourceChange]:
        return list(self._entries.values())


def _diff(metadata: dict[str, Any], side: str = "inputs") -> dict[str, PropertyDiff]:
    old_state, new_state = metadata.get("old") or {}, metadata.get("new") or {}
    detailed = metadata.get("detailedDiff") or {}
    if detailed:
        diff = {}
        for path, entry in detailed.items():
            side = "inputs" if entry.get("inputDiff", True) else "outputs"
            diff[str(path)] = PropertyDiff(
                kind=str(entry.get("kind", "update")),
                old=_shown(_lookup(old_state.get(side), str(path))),
                new=_shown(_lookup(new_state.get(side), str(path))),
            )
        return diff
    old_inputs = old_state.get(side) or {}
    new_inputs = new_state.get(side) or {}
    paths = [str(path) for path in metadata.get("diffs") or []]
    if not paths:
        keys = [*new_inputs, *(key for key in old_inputs if key not in new_inputs)]
        paths = [key for key in keys if not key.startswith("__")]
    diff = {}
    for path in paths:
        in_old, in_new = path in old_inputs, path in new_inputs
        if in_old and in_new and old_inputs[path] == new_inputs[path]:
            continue
        kind = "update" if in_old and in_new else ("add" if in_new else "delete")
        diff[path] = PropertyDiff(
            kind=kind,
            old=_shown(_lookup(old_inputs, path)),
            new=_shown(_lookup(new_inputs, path)),
        )
    return diff


def _lookup(properties: Any, path: str) -> Any:
    """The value at a property path (`a.b[0]["c.d"]`), or None."""
    value = properties
    for part in _split_path(path):
        if isinstance(part, int) and isinstance(value, list) and 0 <= part < len(value):
            value = value[part]
        elif isinstance(part, str) and isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def _split_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    current = ""
    index = 0
    while index < len(path):
        char = path[index]
        if char == ".":
            if current:
                parts.append(current)
            current = ""
        elif char == "[":
            if current:
                parts.append(current)
            current = ""
            end = path.find("]", index)
            if end < 0:
                return [path]
            inner = path[index + 1 : end]
            if inner.startswith('"'):
                try:
                    parts.append(str(json.loads(inner)))
                except ValueError:
                    return [path]
            elif inner.isdigit():
                parts.append(int(inner))
            else:
                return [path]
            index = end
        else:
            current += char
        index += 1
    if current:
        parts.append(current)
    return parts


def _shown(value: Any) -> Any:
    """Secrets as the marker, long values cut."""
    if is_secret_object(value):
        return SECRET
    if isinstance(value, dict):
        return {key: _shown(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shown(item) for item in value]
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[:MAX_VALUE_CHARS] + "…"
    return value
