"""`python -m infra.synth`: the offline synth's table, JSON, exit codes and committed snapshots.

Regenerate the snapshots after an intended change (then review the diff):

    python -m infra.synth prod --json -c "monitoring=$PROD_MONITORING" \
        > tests/infra/snapshots/prod.json
    python -m infra.synth dev --json > tests/infra/snapshots/dev.json

with PROD_MONITORING='{"snsTopic": true, "alarmEmails": ["oncall@example.com"]}' (below).
"""

import difflib
import json
import re
from pathlib import Path

import pytest

import infra.mock_cloud
from infra.settings import PROJECT_ROOT
from infra.synth import main

SNAPSHOTS = Path(__file__).parent / "snapshots"
# The push tag hashes app/'s files, which the app's authors change; the tag's derivation is
# tested in test_stack_image.py, so snapshots compare it as a placeholder.
BUILD_TAG = re.compile(r":build-[0-9a-f]{12}\b")


# Pulumi.prod.yaml leaves the alarm recipient to its operator; production requires one.
PROD_MONITORING = '{"snsTopic": true, "alarmEmails": ["oncall@example.com"]}'
ARGS = {"dev": ["dev"], "prod": ["prod", "-c", f"monitoring={PROD_MONITORING}"]}


def normalized(text: str) -> str:
    return BUILD_TAG.sub(":build-<app content hash>", text)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_json_is_one_document_matching_the_committed_snapshot(
    stack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*ARGS[stack], "--json"]) == 0
    out = capsys.readouterr().out
    document = json.loads(out)
    assert set(document) == {"environment", "stack", "resources", "outputs", "cost"}
    assert document["stack"] == stack
    assert all(
        set(r) == {"type", "name", "parent", "inputs", "dependsOn", "options"}
        for r in document["resources"]
    )
    by_name = {r["name"]: r for r in document["resources"]}
    # What a reviewer judges ordering and replacement by: explicit waits and options.
    assert "api-execution-role-policy" in by_name["api-task-definition"]["dependsOn"]
    assert "api-execution-role-policy" in by_name["api"]["dependsOn"]
    assert by_name["api"]["options"] == {"ignoreChanges": ["desiredCount"]}
    assert by_name["cluster"]["options"] == {}
    (task,) = [r for r in document["resources"] if r["type"].startswith("aws:ecs/taskDefinition")]
    assert task["parent"] == "api"
    assert {"containerDefinitions", "requiresCompatibilities", "runtimePlatform"} <= set(
        task["inputs"]
    )  # camelCase, as the engine sees them
    assert str(PROJECT_ROOT) not in out  # no path of this machine in a committed snapshot

    fresh = normalized(out)
    committed = normalized((SNAPSHOTS / f"{stack}.json").read_text())
    if fresh != committed:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    fresh.splitlines(keepends=True),
                    f"snapshots/{stack}.json",
                    "synth now",
                )
            )[:80]
        )
        pytest.fail(
            f"the {stack} synth changed; if intended, regenerate with\n"
            f"  python -m infra.synth {' '.join(ARGS[stack])} --json"
            f" > tests/infra/snapshots/{stack}.json\n{diff}"
        )


def test_table_lists_every_resource_then_the_cost(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(ARGS["prod"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "Stack prod (environment production): 48 resources"
    assert lines[2].split() == ["TYPE", "NAME", "PARENT", "KEY", "INPUTS"]
    rows = lines[3 : lines.index("Outputs") - 1]
    assert len(rows) == 48
    assert any(
        row.split()[:3] == ["aws:ecs/taskDefinition:TaskDefinition", "api-task-definition", "api"]
        and "family=app-api-task, cpu=1024, memory=3072, cpuArchitecture=ARM64" in row
        for row in rows
    )
    (service_row,) = [row for row in rows if row.split()[:2] == ["aws:ecs/service:Service", "api"]]
    assert service_row.endswith(" ignoreChanges=desiredCount]"), service_row
    assert (
        "[dependsOn=api-execution-role-policy,cluster-capacity-providers,load-balancer-http;"
        in service_row
    )
    assert "  cluster_name: production-app-cluster" in lines
    assert "  total: $86.59 at min tasks, $367.26 at max" in lines
    assert "  load balancer hours: $16.43" in lines
    assert any(
        line.startswith("  service api: 1 vCPU / 3 GB ARM64, 2-10 tasks: $70.17") for line in lines
    )


def bad_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack_file: str) -> None:
    (tmp_path / "Pulumi.bad.yaml").write_text(stack_file)
    monkeypatch.setattr(infra.mock_cloud, "PROJECT_ROOT", tmp_path)


def test_bad_config_prints_the_message_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_project(
        tmp_path,
        monkeypatch,
        "config:\n"
        "  aws:region: us-east-1\n"
        "  ecs-fargate-app:services:\n"
        "    - cpu: 512\n"
        "      memory: 8192\n",
    )
    assert main(["bad", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("Invalid configuration for stack 'bad' (Pulumi.bad.yaml):")
    assert "ecs-fargate-app:services[0].memory: is not valid with cpu 512" in captured.err


def test_secure_values_and_unknown_stacks_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_project(
        tmp_path,
        monkeypatch,
        "config:\n  aws:region: us-east-1\n  ecs-fargate-app:appVersion:\n    secure: AAABAx==\n",
    )
    assert main(["bad"]) == 2
    assert "ecs-fargate-app:appVersion: is encrypted (secure)" in capsys.readouterr().err
    assert main(["staging"]) == 2
    assert "No stack file Pulumi.staging.yaml; stacks here: bad" in capsys.readouterr().err


def test_prod_without_an_alarm_recipient_exits_2_naming_both_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["prod"]) == 2
    err = capsys.readouterr().err
    assert "production alarms must reach someone" in err
    assert "monitoring.alarmEmails" in err and "monitoring.alarmTopicArn" in err


def test_a_malformed_override_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev", "-c", "logRetentionDays"]) == 2
    assert "-c logRetentionDays: expected KEY=VALUE" in capsys.readouterr().err
