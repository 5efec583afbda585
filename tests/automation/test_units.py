"""Pure parts: redaction, settings, event JSON, process checks, the worker line protocol."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation.events import EngineEvent
from pydantic import ValidationError

from automation.models import SECRET, JobStatus
from automation.processes import live_group_members, process_is_gone, worker_group_is_alive
from automation.protocol import EventMessage, ResultMessage, parse_message
from automation.pulumi_adapter import (
    event_json,
    may_hold_secrets,
    secret_config_keys,
    stack_file_config,
)
from automation.secrets import SECRET_SIGNATURE, SECRET_SIGNATURE_KEY, Redactor, secret_leaves
from automation.settings import Settings, SettingsError, describe_errors
from automation.worker_pool import worker_environment

# Redaction


def test_redactor_replaces_every_known_secret_longest_first() -> None:
    redactor = Redactor(["abc", "abcdef", ""])
    assert redactor.text("x abcdef y abc z") == f"x {SECRET} y {SECRET} z"
    assert redactor.text("nothing here") == "nothing here"


def test_redactor_blinds_secret_objects_and_nested_text() -> None:
    secret_object = {SECRET_SIGNATURE_KEY: SECRET_SIGNATURE, "ciphertext": "v1:xyz"}
    value = {"a": ["keep", "my-pass"], "b": secret_object, "c": 3, "d": {"e": "my-pass!"}}
    assert Redactor(["my-pass"]).value(value) == {
        "a": ["keep", SECRET],
        "b": SECRET,
        "c": 3,
        "d": {"e": f"{SECRET}!"},
    }


def test_structured_secret_config_yields_its_leaves() -> None:
    leaves = secret_leaves(json.dumps({"user": "u1", "nested": {"password": "p@ss"}}))
    assert {"u1", "p@ss"} <= set(leaves)
    assert secret_leaves("plain") == ["plain"]


# Stack files, read without the engine


def test_secret_keys_come_from_secure_values_in_the_stack_file(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: demo\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n"
        "  demo:plain: x\n"
        "  demo:token:\n    secure: v1:abc\n"
        "  demo:nested:\n    inner:\n      secure: v1:def\n    other: y\n"
        "  aws:region: us-east-1\n"
    )
    assert secret_config_keys(tmp_path, "dev") == {"demo:token", "demo:nested"}
    assert may_hold_secrets(tmp_path, "dev")
    (tmp_path / "Pulumi.prod.yaml").write_text("config:\n  demo:plain: x\n")
    assert not may_hold_secrets(tmp_path, "prod")
    (tmp_path / "Pulumi.esc.yaml").write_text("environment:\n  - shared/secrets\n")
    assert may_hold_secrets(tmp_path, "esc"), "ESC environments can bring secrets"
    assert secret_config_keys(tmp_path, "absent") == set()


# Engine events as JSON


def test_event_json_keeps_the_engines_camel_case_shape() -> None:
    raw = {
        "sequence": 7,
        "timestamp": 1700000000,
        "resOutputsEvent": {
            "metadata": {
                "op": "create",
                "urn": "urn:pulumi:dev::p::pulumi:pulumi:Stack::p-dev",
                "type": "pulumi:pulumi:Stack",
                "provider": "",
                "new": {
                    "type": "pulumi:pulumi:Stack",
                    "urn": "urn:pulumi:dev::p::pulumi:pulumi:Stack::p-dev",
                    "outputs": {"user_key": 1, "snake_case_kept": True},
                    "retainOnDelete": True,
                },
                "detailedDiff": {},
            }
        },
    }
    plain = event_json(EngineEvent.from_json(raw))
    assert plain["sequence"] == 7
    metadata = plain["resOutputsEvent"]["metadata"]
    assert metadata["op"] == "create"
    assert metadata["new"]["outputs"] == {"user_key": 1, "snake_case_kept": True}
    assert metadata["new"]["retainOnDelete"] is True
    assert "old" not in metadata, "unset fields are left out"
    json.dumps(plain)  # plain JSON all the way down


def test_summary_event_counts_become_plain_keys() -> None:
    raw = {"sequence": 1, "timestamp": 1, "summaryEvent": {"resourceChanges": {"create": 3}}}
    plain = event_json(EngineEvent.from_json(raw))
    assert plain["summaryEvent"]["resourceChanges"] == {"create": 3}
    assert plain["summaryEvent"]["maybeCorrupt"] is False


# The worker line protocol


def test_worker_lines_round_trip_and_bad_lines_are_rejected() -> None:
    message = parse_message(EventMessage(event={"sequence": 1}).model_dump_json())
    assert isinstance(message, EventMessage) and message.event == {"sequence": 1}
    result = parse_message(ResultMessage(status=JobStatus.FAILED, error="x").model_dump_json())
    assert isinstance(result, ResultMessage) and result.status is JobStatus.FAILED
    for bad in ('{"kind": "nope"}', "not json", '{"kind": "result", "status": "queued"}'):
        with pytest.raises(ValidationError):
            parse_message(bad)


# Settings


def _settings(tmp_path: Path, **values: Any) -> Settings:
    (tmp_path / "Pulumi.yaml").write_text("name: demo\nruntime: python\n")
    return Settings(project_dir=tmp_path, state_dir=tmp_path / "state", **values)


def test_environments_default_to_the_stack_files(tmp_path: Path) -> None:
    for name in ("prod", "dev", "bad name"):
        (tmp_path / f"Pulumi.{name}.yaml").write_text("config: {}\n")
    assert _settings(tmp_path).environment_names() == ["dev", "prod"]
    assert _settings(tmp_path, environments="prod, dev").environment_names() == ["prod", "dev"]


def test_lists_accept_json_or_commas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("yaml", "dev.yaml", "prod.yaml"):
        (tmp_path / f"Pulumi.{name}").write_text("name: demo\nruntime: python\n")
    monkeypatch.setenv("AUTOMATION_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("AUTOMATION_CONFIG_ALLOWLIST", '["image", "aws:region"]')
    monkeypatch.setenv("AUTOMATION_ENVIRONMENTS", "dev,prod")
    settings = Settings()
    assert settings.config_allowlist == ["image", "aws:region"]
    assert settings.environments == ["dev", "prod"]


def test_default_allowlist_names_the_stack_keys_an_operator_sets(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert settings.config_allowlist == ["image", "appVersion"]
    assert settings.image_config_key == "image"


def test_bad_tokens_are_refused_without_echoing_them(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as failure:
        _settings(
            tmp_path,
            tokens=[{"name": "ci", "token": "too-short", "scopes": ["read", "admin"]}],
        )
    described = describe_errors(failure.value)
    assert "AUTOMATION_TOKENS[0].token" in described
    assert "unknown scope 'admin'" in described
    assert "too-short" not in described


def test_approval_settings_name_known_environments(tmp_path: Path) -> None:
    for name in ("dev", "prod"):
        (tmp_path / f"Pulumi.{name}.yaml").write_text("config: {}\n")
    token = {"name": "lead", "token": "x" * 20, "scopes": ["read", "approve:prod"]}
    settings = _settings(tmp_path, require_approval="prod", tokens=[token])
    assert settings.require_approval == ["prod"]
    with pytest.raises(ValidationError) as failure:
        _settings(tmp_path, require_approval="qa")
    assert "AUTOMATION_REQUIRE_APPROVAL: 'qa' is not an environment; environments: dev, prod" in (
        describe_errors(failure.value)
    )
    with pytest.raises(ValidationError) as failure:
        _settings(tmp_path, tokens=[{**token, "scopes": ["approve:qa"]}])
    assert "has scope 'approve:qa', but 'qa' is not an environment" in describe_errors(
        failure.value
    )
    with pytest.raises(ValidationError, match="unknown scope 'approve'"):
        _settings(tmp_path, tokens=[{**token, "scopes": ["approve"]}])


def test_duplicate_tokens_are_refused(tmp_path: Path) -> None:
    token = {"token": "x" * 20, "scopes": ["read"]}
    with pytest.raises(ValidationError, match="same value"):
        _settings(tmp_path, tokens=[{"name": "a", **token}, {"name": "b", **token}])


def test_a_project_without_pulumi_yaml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"holds no Pulumi\.yaml"):
        Settings(project_dir=tmp_path)


@pytest.mark.parametrize(
    ("host", "tokens", "refused"),
    [
        ("127.0.0.1", [], False),
        ("::1", [], False),
        ("localhost", [], False),
        ("0.0.0.0", [], True),
        ("10.1.2.3", [], True),
        ("0.0.0.0", [{"name": "ci", "token": "t" * 20, "scopes": ["read"]}], False),
    ],
)
def test_open_access_only_on_loopback(
    tmp_path: Path, host: str, tokens: list[dict[str, object]], refused: bool
) -> None:
    settings = _settings(tmp_path, host=host, tokens=tokens)
    if refused:
        with pytest.raises(SettingsError, match="without tokens"):
            settings.check_exposure()
    else:
        settings.check_exposure()


# Process checks


def test_a_zombie_counts_as_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while not process_is_gone(child.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process_is_gone(child.pid), "exited but not yet reaped: a zombie"
    child.wait()
    assert process_is_gone(child.pid)
    assert not process_is_gone(os.getpid())


def _wait_for_exec(pid: int, argument: bytes) -> None:
    """Until the child has exec'd (before that, its command line is its parent's)."""
    deadline = time.monotonic() + 10
    while argument not in Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, "the child never started its program"
        time.sleep(0.01)


def test_worker_group_liveness() -> None:
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", "automation.worker"],
        start_new_session=True,
    )
    try:
        _wait_for_exec(sleeper.pid, b"automation.worker")
        assert live_group_members(sleeper.pid) == [sleeper.pid]
        assert worker_group_is_alive(sleeper.pid)
    finally:
        os.killpg(sleeper.pid, signal.SIGKILL)
        sleeper.wait()
    assert not worker_group_is_alive(sleeper.pid)
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True
    )
    try:
        assert not worker_group_is_alive(other.pid), "a reused pid that is not a worker"
    finally:
        other.kill()
        other.wait()


def test_config_of_a_stack_not_created_yet_comes_from_its_file(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: demo\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n  demo:count: 2\n  demo:on: true\n  token:\n    secure: v1:abc\n"
        "  demo:obj:\n    a: [1, {secure: v1:x}]\n"
    )
    assert stack_file_config(tmp_path, "dev") == {
        "demo:count": "2",
        "demo:on": "true",
        "demo:token": SECRET,
        "demo:obj": {"a": ["1", SECRET]},
    }


def test_engine_processes_get_a_bytecode_cache_in_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "not-for-children")
    monkeypatch.setenv("AUTOMATION_TOKENS", "[]")
    env = worker_environment(tmp_path / "state", "marker-1", tmp_path / "state" / "pass")
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPYCACHEPREFIX"] == str(tmp_path / "state" / "pycache")
    assert "PULUMI_CONFIG_PASSPHRASE" not in env and "AUTOMATION_TOKENS" not in env
    assert env["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(tmp_path / "state" / "pass")
    assert env["AUTOMATION_OPERATION_ID"] == "marker-1"
