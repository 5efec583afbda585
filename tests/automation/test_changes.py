"""The change list read from engine events shaped as the engine sends them (apitype's
`ResourcePreEvent`: `metadata.op`, `urn`, `type`, `old`/`new` states, `diffs`, `detailedDiff`)."""

from __future__ import annotations

from typing import Any

from automation.changes import ChangeList

URN = "urn:pulumi:prod::shop::aws:ecs/service:Service::web"
SECRET = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "x"}


def pre(op: str, old: dict[str, Any] | None, new: dict[str, Any] | None, **more: Any) -> Any:
    metadata = {"op": op, "urn": URN, "type": "aws:ecs/service:Service", **more}
    if old is not None:
        metadata["old"] = {"inputs": old, "outputs": {**old, "arn": "arn:old"}}
    if new is not None:
        metadata["new"] = {"inputs": new, "outputs": {**new, "arn": "arn:new"}}
    return {"sequence": 3, "resourcePreEvent": {"metadata": metadata}}


def test_a_detailed_diff_names_nested_paths_with_their_values() -> None:
    changes = ChangeList()
    old = {"tags": {"Name": "a", "team.x": "1"}, "ports": [80, 443], "desiredCount": 2}
    new = {"tags": {"Name": "b", "team.x": "2"}, "ports": [8080, 443], "desiredCount": 2}
    changes.observe(
        pre(
            "update",
            old,
            new,
            detailedDiff={
                "tags.Name": {"kind": "update", "inputDiff": True},
                'tags["team.x"]': {"kind": "update", "inputDiff": True},
                "ports[0]": {"kind": "update-replace", "inputDiff": True},
                "arn": {"kind": "update", "inputDiff": False},
            },
        )
    )
    (entry,) = changes.entries()
    assert (entry.name, entry.op) == ("web", "update")
    shown = {path: (d.kind, d.old, d.new) for path, d in entry.diff.items()}
    assert shown == {
        "tags.Name": ("update", "a", "b"),
        'tags["team.x"]': ("update", "1", "2"),
        "ports[0]": ("update-replace", 80, 8080),
        "arn": ("update", "arn:old", "arn:new"),
    }


def test_without_a_detailed_diff_inputs_are_compared_and_secrets_hidden() -> None:
    changes = ChangeList()
    changes.observe(
        pre(
            "update",
            {"image": "app:1", "password": SECRET, "gone": True, "__provider": "blob-1"},
            {"image": "app:2", "password": SECRET, "added": "x" * 1500, "__provider": "blob-2"},
        )
    )
    diff = changes.entries()[0].diff
    assert list(diff) == ["image", "added", "gone"]
    assert (diff["image"].old, diff["image"].new) == ("app:1", "app:2")
    assert diff["added"].kind == "add" and diff["added"].new == "x" * 1000 + "…"
    assert diff["gone"].kind == "delete"


def test_a_changed_secret_shows_as_secret() -> None:
    changes = ChangeList()
    other = {**SECRET, "ciphertext": "y"}
    changes.observe(pre("update", {"password": SECRET}, {"password": other}))
    assert changes.entries()[0].diff["password"].model_dump() == {
        "kind": "update",
        "old": "[secret]",
        "new": "[secret]",
    }


def test_the_steps_of_a_replacement_are_one_entry() -> None:
    changes = ChangeList()
    old, new = {"port": 80, "name": "web"}, {"port": 81, "name": "web"}
    changes.observe(pre("create-replacement", old, new))
    changes.observe(pre("replace", old, new))
    changes.observe(pre("delete-replaced", old, None))
    (entry,) = changes.entries()
    assert entry.op == "replace"
    assert {path: (d.kind, d.old, d.new) for path, d in entry.diff.items()} == {
        "port": ("update", 80, 81)
    }


def test_events_that_are_not_steps_are_ignored() -> None:
    changes = ChangeList()
    changes.observe({"sequence": 1, "diagnosticEvent": {"message": "x"}})
    changes.observe({"sequence": 2, "resourcePreEvent": {"metadata": {"op": "same"}}})
    assert changes.entries() == []
