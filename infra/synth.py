"""Offline synth: what `pulumi up` would declare for a stack, with no cloud, CLI or plugins.

    python -m infra.synth prod           # resource table, then a monthly cost estimate
    python -m infra.synth dev --json     # {"environment", "stack", "resources", "outputs", "cost"}
    python -m infra.synth prod -c 'monitoring={"alarmEmails": ["oncall@example.com"]}'

Each resource in `--json` lists `dependsOn` (the logical names it explicitly waits for, beyond
what its inputs imply) and `options` (ignoreChanges, deleteBeforeReplace, protect,
retainOnDelete); the table marks them after the key inputs.

Reads `Pulumi.<stack>.yaml` as the CLI would, runs __main__.py under Pulumi's mocks
(infra/mock_cloud.py) and prints each resource's type, logical name, parent and inputs.
Nothing is built: the image build is a mocked resource with a fake digest. Bad config prints
the same message `pulumi up` would and exits with status 2.

Regenerate the committed snapshots (compared by tests/infra/test_synth.py) with:

    python -m infra.synth prod --json -c "$SNAPSHOT_PROD" > tests/infra/snapshots/prod.json
    python -m infra.synth dev --json > tests/infra/snapshots/dev.json

(`SNAPSHOT_PROD` is the alarm recipient the prod stack file leaves to its operator, see
tests/infra/test_synth.py: `monitoring={"snsTopic": true, "alarmEmails": ["oncall@example.com"]}`.)
"""

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import yaml  # type: ignore[import-untyped]

from infra.cost import estimate_monthly_cost
from infra.mock_cloud import (
    PROJECT,
    Evaluation,
    RecordedResource,
    config_text,
    evaluate,
    stack_config,
)
from infra.settings import ConfigError, StackSettings, parse_settings

EXIT_BAD_CONFIG = 2

# The inputs worth a glance per resource type (dotted paths into the camelCase inputs).
KEY_INPUTS: dict[str, tuple[str, ...]] = {
    "awsx:ec2:Vpc": ("cidrBlock", "numberOfAvailabilityZones", "natGateways.strategy"),
    "aws:ecr/repository:Repository": (
        "name",
        "imageTagMutability",
        "imageScanningConfiguration.scanOnPush",
        "forceDelete",
    ),
    "docker:index/image:Image": ("imageName", "build.platform", "build.context"),
    "aws:ecs/cluster:Cluster": ("name", "settings"),
    "aws:ecs/clusterCapacityProviders:ClusterCapacityProviders": ("capacityProviders",),
    "aws:ecs/taskDefinition:TaskDefinition": (
        "family",
        "cpu",
        "memory",
        "runtimePlatform.cpuArchitecture",
    ),
    "aws:ecs/service:Service": (
        "name",
        "desiredCount",
        "deploymentConfiguration.strategy",
        "deploymentMinimumHealthyPercent",
        "deploymentMaximumPercent",
    ),
    "aws:lb/loadBalancer:LoadBalancer": ("name", "internal", "enableDeletionProtection"),
    "aws:lb/targetGroup:TargetGroup": (
        "name",
        "port",
        "targetType",
        "healthCheck.path",
        "healthCheck.interval",
        "deregistrationDelay",
    ),
    "aws:lb/listener:Listener": ("port", "protocol", "defaultActions.0.type"),
    "aws:lb/listenerRule:ListenerRule": ("priority", "conditions"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (
        "fromPort",
        "cidrIpv4",
        "referencedSecurityGroupId",
    ),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": (
        "ipProtocol",
        "fromPort",
        "cidrIpv4",
        "referencedSecurityGroupId",
    ),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ("policyArn",),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "retentionInDays"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("name", "metricName", "threshold"),
    "aws:appautoscaling/target:Target": ("resourceId", "minCapacity", "maxCapacity"),
    "aws:appautoscaling/policy:Policy": (
        "name",
        "targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification.predefinedMetricType",
        "targetTrackingScalingPolicyConfiguration.targetValue",
    ),
}
_CELL_LIMIT = 90


def settings_from_config(stack: str, config: dict[str, str]) -> StackSettings:
    prefix = f"{PROJECT}:"
    return parse_settings(
        {
            key.removeprefix(prefix): value
            for key, value in config.items()
            if key.startswith(prefix)
        },
        region=config.get("aws:region"),
        stack=stack,
        namespace=PROJECT,
    )


def synth_document(stack: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The `--json` document for `stack` with `KEY=VALUE` config overrides (YAML values, keys
    without namespace belong to the project); raises ConfigError on bad config."""
    config = stack_config(stack)
    for override in overrides:
        key, separator, text = override.partition("=")
        if not separator or not key:
            raise ConfigError(f"-c {override}: expected KEY=VALUE (e.g. logRetentionDays=7)")
        full_key = key if ":" in key else f"{PROJECT}:{key}"
        config[full_key] = config_text(full_key, yaml.safe_load(text))
    evaluation = evaluate(stack, config)
    settings = settings_from_config(stack, config)
    return _document(settings, evaluation)


def _document(settings: StackSettings, evaluation: Evaluation) -> dict[str, Any]:
    return {
        "environment": settings.environment,
        "stack": evaluation.stack,
        "resources": [
            {
                "type": resource.type,
                "name": resource.name,
                "parent": resource.parent,
                "inputs": resource.inputs,
                "dependsOn": list(resource.explicit_depends_on),
                "options": _options(resource),
            }
            for resource in evaluation.resources
        ],
        "outputs": evaluation.outputs,
        "cost": estimate_monthly_cost(settings),
    }


def _options(resource: RecordedResource) -> dict[str, Any]:
    """The resource options that decide replacement and deletion (only those set)."""
    options: dict[str, Any] = {}
    if resource.ignore_changes:
        options["ignoreChanges"] = list(resource.ignore_changes)
    for key, value in (
        ("deleteBeforeReplace", resource.delete_before_replace),
        ("protect", resource.protect),
        ("retainOnDelete", resource.retain_on_delete),
    ):
        if value:
            options[key] = True
    return options


def _marks(resource: dict[str, Any]) -> str:
    """`[dependsOn=a,b; ignoreChanges=x; deleteBeforeReplace]` for the table, or ""."""
    parts = []
    if resource["dependsOn"]:
        parts.append(f"dependsOn={','.join(resource['dependsOn'])}")
    for key, value in resource["options"].items():
        parts.append(f"{key}={','.join(value)}" if isinstance(value, list) else key)
    return f" [{'; '.join(parts)}]" if parts else ""


def render_table(document: dict[str, Any]) -> str:
    rows = [("TYPE", "NAME", "PARENT", "KEY INPUTS")]
    for resource in document["resources"]:
        rows.append(
            (
                resource["type"],
                resource["name"],
                resource["parent"] or "-",
                _key_inputs(resource["type"], resource["inputs"]) + _marks(resource),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [
        f"Stack {document['stack']} (environment {document['environment']}): "
        f"{len(document['resources'])} resources",
        "",
    ]
    for row in rows:
        padded = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        lines.append("  ".join([*padded, row[3]]).rstrip())
    lines += ["", "Outputs"]
    lines += [f"  {key}: {_short(value, 200)}" for key, value in document["outputs"].items()]
    lines += ["", *_cost_lines(document["cost"])]
    return "\n".join(lines)


def _cost_lines(cost: dict[str, Any]) -> list[str]:
    lines = [
        f"Monthly cost estimate ({cost['currency']}, {cost['pricesRegion']} on-demand prices, "
        f"{cost['hoursPerMonth']} h/month)"
    ]
    for service in cost["services"]:
        lines.append(
            f"  service {service['name']}: {service['vcpu']:g} vCPU / {service['memoryGb']:g} GB "
            f"{service['cpuArchitecture']}, {service['minTasks']}-{service['maxTasks']} tasks: "
            f"${service['monthlyAtMin']:.2f} at min ({service['vcpuHoursAtMin']:g} vCPU-h, "
            f"{service['gbHoursAtMin']:g} GB-h) to ${service['monthlyAtMax']:.2f} at max "
            f"({service['vcpuHoursAtMax']:g} vCPU-h, {service['gbHoursAtMax']:g} GB-h)"
        )
    lines.append(f"  load balancer hours: ${cost['loadBalancerMonthly']:.2f}")
    if cost["natGateways"]:
        lines.append(f"  NAT gateways ({cost['natGateways']}): ${cost['natGatewaysMonthly']:.2f}")
    lines.append(
        f"  total: ${cost['totalAtMin']:.2f} at min tasks, ${cost['totalAtMax']:.2f} at max"
    )
    lines += [f"  note: {note}" for note in cost["notes"]]
    return lines


def _key_inputs(resource_type: str, inputs: dict[str, Any]) -> str:
    paths = KEY_INPUTS.get(resource_type)
    if paths is None:
        paths = tuple(key for key in ("name", "description") if key in inputs)
    shown = []
    for path in paths:
        value = _lookup(inputs, path)
        if value is not None:
            shown.append(f"{path.rsplit('.', 1)[-1]}={_short(value, 60)}")
    return _short(", ".join(shown), _CELL_LIMIT)


def _lookup(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def _short(value: Any, limit: int) -> str:
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, separators=(",", ":"), sort_keys=True)
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.synth", description=__doc__.split("\n")[0]
    )
    parser.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml (e.g. dev, prod)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "-c",
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key of the stack file (YAML value), as `pulumi config set`",
    )
    args = parser.parse_args(argv)
    try:
        document = synth_document(args.stack, args.config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return EXIT_BAD_CONFIG
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(render_table(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
