"""Assertions over a mock evaluation, in the spirit of CDK's `Template.has_resource_properties`.

`props` patterns match resource inputs (camelCase, resolved): a dict matches any dict holding
at least those keys with matching values, a list matches a list of the same length element
by element, anything else must be equal. `ABSENT`, `json_of(...)` and `array_with(...)` cover
the rest. A template refuses evaluations that still hold unknown values, so a pattern can never
pass because a value was not resolved.
"""

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml  # type: ignore[import-untyped]
from pulumi.runtime import rpc

from infra.mock_cloud import PROJECT, Evaluation, RecordedResource, config_text
from infra.settings import PROJECT_ROOT


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
"""In a dict pattern: the key must not be present."""


@dataclass(frozen=True)
class _Predicate:
    describe: str
    test: Callable[[Any], bool]

    def __repr__(self) -> str:
        return self.describe


def json_of(pattern: Any) -> Any:
    """Matches a JSON string whose parsed value matches `pattern`."""

    def test(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        try:
            return matches(json.loads(value), pattern)
        except json.JSONDecodeError:
            return False

    return _Predicate(f"json_of({pattern!r})", test)


def array_with(*patterns: Any) -> Any:
    """Matches a list holding, for each pattern, some element that matches it."""

    def test(value: Any) -> bool:
        return isinstance(value, list) and all(
            any(matches(item, pattern) for item in value) for pattern in patterns
        )

    return _Predicate(f"array_with{patterns!r}", test)


def matches(value: Any, pattern: Any) -> bool:
    if isinstance(pattern, _Predicate):
        return pattern.test(value)
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        for key, expected in pattern.items():
            if expected is ABSENT:
                if key in value:
                    return False
            elif key not in value or not matches(value[key], expected):
                return False
        return True
    if isinstance(pattern, list):
        return (
            isinstance(value, list)
            and len(value) == len(pattern)
            and all(matches(item, expected) for item, expected in zip(value, pattern, strict=True))
        )
    return bool(value == pattern)


def _assert_resolved(value: Any, where: str) -> None:
    if value == rpc.UNKNOWN:
        raise AssertionError(f"{where} holds an unknown value; assertions on it would be vacuous")
    if isinstance(value, dict):
        for key, item in value.items():
            _assert_resolved(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _assert_resolved(item, f"{where}[{index}]")


class StackTemplate:
    def __init__(self, evaluation: Evaluation) -> None:
        for resource in evaluation.resources:
            _assert_resolved(resource.inputs, f"{resource.type} {resource.name}")
        _assert_resolved(evaluation.outputs, "stack outputs")
        self.evaluation = evaluation
        self.outputs = evaluation.outputs

    def resources(self, resource_type: str, props: Any = None) -> list[RecordedResource]:
        """All resources of a type (whose inputs match `props`, when given)."""
        return [
            resource
            for resource in self.evaluation.resources
            if resource.type == resource_type and (props is None or matches(resource.inputs, props))
        ]

    def resource(self, resource_type: str, name: str | None = None) -> RecordedResource:
        """The one resource of a type (with that logical name, when given)."""
        found = [r for r in self.resources(resource_type) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.resources(resource_type)]
            raise AssertionError(
                f"expected exactly one {resource_type}{f' named {name}' if name else ''}, "
                f"found {len(found)} among {names}"
            )
        return found[0]

    def resource_count_is(self, resource_type: str, count: int) -> None:
        found = self.resources(resource_type)
        assert len(found) == count, (
            f"expected {count} {resource_type}, found {len(found)}: {[r.name for r in found]}"
        )

    def has_resource_properties(self, resource_type: str, props: Any) -> RecordedResource:
        """Assert some resource of the type matches `props`; return the first that does."""
        candidates = self.resources(resource_type)
        for resource in candidates:
            if matches(resource.inputs, props):
                return resource
        shown = "\n".join(
            f"  {r.name}: {json.dumps(r.inputs, sort_keys=True)[:1500]}" for r in candidates
        )
        raise AssertionError(
            f"no {resource_type} matches {props!r}; candidates:\n{shown or '  (none)'}"
        )

    def by_output(self, resource_type: str, output: str, value: Any) -> RecordedResource:
        """The resource of a type whose mocked output `output` equals `value`."""
        found = [r for r in self.resources(resource_type) if r.outputs.get(output) == value]
        assert len(found) == 1, f"expected one {resource_type} with {output}={value!r}: {found}"
        return found[0]


PROD_ALARM_EMAIL = "oncall@example.com"
"""The alarm recipient Pulumi.prod.yaml leaves to its operator (its comment's example)."""


def stack_file_config(stack: str) -> dict[str, Any]:
    """A fresh copy of `Pulumi.<stack>.yaml`'s config (namespaced keys, YAML values); prod
    gets the operator's alarm recipient, `PROD_ALARM_EMAIL`."""
    document = yaml.load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text(), yaml.CSafeLoader)
    config: dict[str, Any] = document["config"]
    config = {key if ":" in key else f"{PROJECT}:{key}": value for key, value in config.items()}
    if stack == "prod":
        config[f"{PROJECT}:monitoring"]["alarmEmails"] = [PROD_ALARM_EMAIL]
    return config


def service_config(stack: str = "prod", index: int = 0, **changes: Any) -> dict[str, Any]:
    """Service `index` of a stack file with `changes` deep-merged (snake_case not accepted:
    keys are config keys, e.g. `deployment={"strategy": "canary"}`)."""
    service = copy.deepcopy(stack_file_config(stack)[f"{PROJECT}:services"][index])
    return _merge(service, changes)


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def stack_config_text(stack: str, overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """`Pulumi.<stack>.yaml`'s config with overrides (None deletes a key), as the CLI passes it.

    Override keys without a namespace belong to the project (`services` means
    `ecs-fargate-app:services`)."""
    config = stack_file_config(stack)
    for key, value in (overrides or {}).items():
        full_key = key if ":" in key else f"{PROJECT}:{key}"
        if value is None:
            config.pop(full_key, None)
        else:
            config[full_key] = value
    return {key: config_text(key, value) for key, value in config.items()}


Synth = Callable[..., StackTemplate]
"""The `synth` fixture: `synth(stack="prod", config={...}) -> StackTemplate`."""
