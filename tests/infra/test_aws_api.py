"""Every stack shape the tests synthesize, as the AWS API requests it would send, checked against
AWS's API models (botocore) and the rules AWS documents outside them (tests/infra/aws_rules.py).

Also what AWS needs beyond single requests: the roles ECS uses hold the managed policies AWS
documents (ARNs written out here, not imported), ECS waits for those policies (create and
destroy order), and no replacement asks for a name its predecessor still holds. Each shape is
evaluated once, and its security invariants (tests/infra/security_rules.py) are checked on the
same evaluation; every family of checks is a subtest of its own.
"""

import copy
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from infra.mock_cloud import RecordedResource
from tests.infra.aws_requests import COMPONENT_PREFIX, MAPPINGS, NoRequestMapping, api_calls
from tests.infra.aws_rules import violations
from tests.infra.security_rules import SECURITY_CHECKS
from tests.infra.stack_template import StackTemplate, Synth, service_config

CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
EXECUTION_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
LOAD_BALANCER_POLICY = "arn:aws:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
ADMIN = {
    "name": "admin",
    "image": "public.ecr.aws/nginx/nginx:1.27",
    "port": 80,
    "healthPath": "/",
    "healthCheckCommand": None,
    "cpu": 256,
    "memory": 512,
    "minCount": 1,
    "maxCount": 2,
    "desiredCount": 1,
    "routing": {"pathPatterns": ["/admin/*"]},
}


def strategy(name: str, stack: str = "prod", **deployment: Any) -> dict[str, Any]:
    return {"services": [service_config(stack, deployment={"strategy": name, **deployment})]}


SHAPES: dict[str, tuple[str, dict[str, Any]]] = {
    "prod": ("prod", {}),
    "dev": ("dev", {}),
    "blue_green": ("prod", strategy("blue_green")),
    "canary": ("prod", strategy("canary", canaryPercent=5.5, canaryBakeTimeMinutes=20)),
    "linear": ("prod", strategy("linear", linearStepPercent=3.3)),
    "https": (
        "prod",
        {"loadBalancer": {"name": "app-production-lb", "certificateArn": CERTIFICATE}},
    ),
    "https_blue_green": (
        "prod",
        {"loadBalancer": {"certificateArn": CERTIFICATE}, **strategy("blue_green")},
    ),
    "dedicated_vpc": ("dev", {"network": {"mode": "dedicated", "availabilityZones": 3}}),
    "two_services": ("prod", {"services": [service_config("prod"), ADMIN]}),
    "extra_scaling": (
        "prod",
        {
            "services": [
                service_config(
                    "prod", scaling={"memoryTargetPercent": 75, "requestsPerTarget": 1000}
                )
            ]
        },
    ),
    "alarm_emails": ("dev", {"monitoring": {"alarmEmails": ["a@example.com", "b@example.com"]}}),
    "alarm_topic": (
        "prod",
        {"monitoring": {"alarmTopicArn": "arn:aws:sns:us-east-1:123456789012:ops-alarms"}},
    ),
    "spot_x86": ("dev", {"services": [service_config("dev", cpuArchitecture="X86_64", spot=True)]}),
    "kms_registry_image": (
        "dev",
        {
            "registry": {"encryption": "KMS"},
            "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-application-api:1.4.2",
        },
    ),
    "dev_access_logs": ("dev", {"loadBalancer": {"accessLogs": {"enabled": True}}}),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_obeys_aws(synth: Synth, subtests: pytest.Subtests, shape: str) -> None:
    stack, config = SHAPES[shape]
    template = synth(stack, config)
    with subtests.test("every request is one AWS accepts"):
        every_request_is_one_aws_accepts(template)
    with subtests.test("ECS uses roles holding the documented policies and waits for them"):
        ecs_uses_roles_holding_the_documented_policies_and_waits_for_them(template)
    for check in SECURITY_CHECKS:
        with subtests.test(check.__name__):
            check(template)


def every_request_is_one_aws_accepts(template: StackTemplate) -> None:
    found = violations(template.evaluation.resources)
    assert not found, "\n".join(str(violation) for violation in found)
    # Not vacuous: every AWS resource produced at least one request.
    for resource in template.evaluation.resources:
        if not resource.type.startswith(COMPONENT_PREFIX):
            assert api_calls(resource), resource.type
    # And each belongs to a component: none is left loose under the stack, where a parent's
    # providers, protect or aliases would not reach it.
    loose = [r.name for r in template.evaluation.resources if r.parent is None and r.custom]
    assert not loose, loose


def test_the_request_mappings_cover_exactly_what_the_stack_declares(synth: Synth) -> None:
    """A type without a mapping fails test_every_shape_obeys_aws (api_calls raises);
    here: these shapes together declare every mapped type, so no mapping is dead."""
    declared = {
        resource.type
        for shape in ("dedicated_vpc", "two_services")
        for resource in synth(*SHAPES[shape]).evaluation.resources
        if not resource.type.startswith(COMPONENT_PREFIX)  # awsx's VPCs included
    }
    assert declared == set(MAPPINGS), sorted(declared ^ set(MAPPINGS))


def test_a_type_without_a_mapping_fails_by_name() -> None:
    resource = RecordedResource(
        type="aws:rds/instance:Instance", name="db", parent=None, inputs={}, custom=True
    )
    with pytest.raises(NoRequestMapping, match=r"aws:rds/instance:Instance \(db\) has no AWS"):
        api_calls(resource)


def edited(template: StackTemplate, type_: str, edit: Any) -> list[RecordedResource]:
    """The template's resources with `edit(inputs)` applied to those of `type_`."""
    resources = []
    for resource in template.evaluation.resources:
        if resource.type == type_:
            inputs = copy.deepcopy(resource.inputs)
            edit(inputs)
            resource = dataclasses.replace(resource, inputs=inputs)
        resources.append(resource)
    return resources


def _container(inputs: dict[str, Any], **changes: Any) -> None:
    (container,) = json.loads(inputs["containerDefinitions"])
    for key, value in changes.items():
        if isinstance(value, dict):
            container[key] = {**container[key], **value}
        else:
            container[key] = value
    inputs["containerDefinitions"] = json.dumps([container])


# The checker itself: values AWS refuses are reported with resource, field, value and rule.
CAUGHT: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    (
        "aws:ecs/taskDefinition:TaskDefinition",
        lambda i: _container(i, healthCheck={"timeout": 61}),
        "api-task-definition: ecs.RegisterTaskDefinition containerDefinitions[0].healthCheck"
        ".timeout = 61: 2-60 (ECS HealthCheck)",
    ),
    (
        "aws:lb/targetGroup:TargetGroup",
        lambda i: i["healthCheck"].update(interval=4),
        "api-target-group: elbv2.CreateTargetGroup HealthCheckIntervalSeconds = 4: at least 5",
    ),
    (
        "aws:lb/loadBalancer:LoadBalancer",
        lambda i: i.update(idleTimeout=4001),
        "load-balancer: elbv2.ModifyLoadBalancerAttributes "
        "Attributes[idle_timeout.timeout_seconds] = '4001': 1-4000 seconds",
    ),
    (
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        lambda i: i.update(datapointsToAlarm=9),
        "cloudwatch.PutMetricAlarm DatapointsToAlarm = 9: at most EvaluationPeriods",
    ),
    (
        "aws:ecr/lifecyclePolicy:LifecyclePolicy",
        lambda i: i.update(policy=i["policy"].replace('"expire"', '"delete"', 1)),
        "lifecyclePolicyText.rules[0].action.type = 'delete': expire",
    ),
    (
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        lambda i: i.update(policyArn=i["policyArn"].replace("service-role/", "")),
        "iam.AttachRolePolicy PolicyArn = 'arn:aws:iam::aws:policy/AmazonECSTaskExecution"
        "RolePolicy': an AWS managed policy at its documented path",
    ),
    (
        "aws:cloudwatch/logGroup:LogGroup",
        lambda i: i.update(retentionInDays=31),
        "logs.PutRetentionPolicy retentionInDays = 31: a CloudWatch Logs retention period",
    ),
]


def test_the_checker_names_resource_field_value_and_rule(synth: Synth) -> None:
    """Values AWS refuses, edited into prod's recorded inputs: each is reported."""
    template = synth("prod")
    missed = []
    for type_, edit, message in CAUGHT:
        found = [str(violation) for violation in violations(edited(template, type_, edit))]
        if not any(message in line for line in found):
            missed.append(f"{message!r} not among:\n  " + "\n  ".join(found or ["(nothing)"]))
    assert not missed, "\n".join(missed)


# --- Roles, policies and the order AWS needs ---------------------------------------------


def attachments_of(template: StackTemplate) -> dict[str, RecordedResource]:
    """Role name -> its policy attachment."""
    return {
        attachment.inputs["role"]: attachment
        for attachment in template.resources("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    }


def ecs_uses_roles_holding_the_documented_policies_and_waits_for_them(
    template: StackTemplate,
) -> None:
    attachments = attachments_of(template)
    roles = {role.outputs["arn"]: role for role in template.resources("aws:iam/role:Role")}
    tasks = {task.outputs["arn"]: task for task in template.resources(TASK_DEFINITION)}
    services = template.resources("aws:ecs/service:Service")
    assert services, "no ECS service to check"
    for service in services:
        task = tasks[service.inputs["taskDefinition"]]
        execution_role = roles[task.inputs["executionRoleArn"]]
        execution_policy = attachments[execution_role.outputs["name"]]
        assert execution_policy.inputs["policyArn"] == EXECUTION_POLICY, (
            f"{execution_policy.name}: policyArn = {execution_policy.inputs['policyArn']!r}: "
            f"the task execution role needs {EXECUTION_POLICY} (ECS task execution IAM role)"
        )
        trust = json.loads(execution_role.inputs["assumeRolePolicy"])["Statement"][0]
        assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        # The engine creates what a resource depends on first and deletes it after it.
        assert execution_policy.name in task.depends_on
        assert execution_policy.name in service.depends_on

        (balancer,) = service.inputs["loadBalancers"]
        strategy_name = service.inputs["deploymentConfiguration"]["strategy"]
        if strategy_name == "ROLLING":
            assert "advancedConfiguration" not in balancer
            continue
        role = roles[balancer["advancedConfiguration"]["roleArn"]]
        policy = attachments[role.outputs["name"]]
        assert policy.inputs["policyArn"] == LOAD_BALANCER_POLICY, (
            f"{policy.name}: policyArn = {policy.inputs['policyArn']!r}: the role ECS shifts "
            f"traffic with needs {LOAD_BALANCER_POLICY} (ECS infrastructure IAM role for load "
            "balancers)"
        )
        trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
        assert trust["Principal"] == {"Service": "ecs.amazonaws.com"}
        assert policy.name in service.depends_on


# --- Replacement-safe names ---------------------------------------------------------------

# Inputs whose change makes the provider replace the resource (ForceNew in its schema), for
# the resource types that carry a fixed AWS name.
REPLACED_ON: dict[str, tuple[str, ...]] = {
    "aws:lb/targetGroup:TargetGroup": ("name", "port", "protocol", "vpcId", "targetType"),
    "aws:ecr/repository:Repository": ("name", "encryptionConfigurations"),
    "aws:lb/loadBalancer:LoadBalancer": ("name", "internal", "loadBalancerType"),
    "aws:ecs/service:Service": ("name", "cluster"),
    "aws:ecs/cluster:Cluster": ("name",),
    "aws:cloudwatch/logGroup:LogGroup": ("name",),
    "aws:sns/topic:Topic": ("name",),
}


CANARY = {"strategy": "canary"}


@pytest.mark.parametrize(
    ("change", "base", "config", "replaced"),
    [
        ("port", {}, {"services": [service_config("prod", port=8080)]}, {"api-target-group"}),
        ("network mode", {}, {"network": {"mode": "dedicated"}}, {"api-target-group"}),
        ("repository encryption", {}, {"registry": {"encryption": "KMS"}}, {"api-registry"}),
        (
            "port, traffic shifting",
            {"services": [service_config("prod", deployment=CANARY)]},
            {"services": [service_config("prod", port=8080, deployment=CANARY)]},
            {"api-target-group", "api-alternate-target-group"},
        ),
    ],
)
def test_a_replacement_never_asks_for_a_name_its_predecessor_holds(
    synth: Synth,
    change: str,
    base: dict[str, Any],
    config: dict[str, Any],
    replaced: set[str],
) -> None:
    """Pulumi creates a replacement before deleting the old resource (unless
    deleteBeforeReplace): the new one must not need the old one's AWS name."""
    before = {r.name: r for r in synth("prod", base).evaluation.resources}
    after = {r.name: r for r in synth("prod", config).evaluation.resources}
    seen = set()
    for name, new in after.items():
        keys = REPLACED_ON.get(new.type)
        old = before.get(name)
        if keys is None or old is None:
            continue
        if any(old.inputs.get(key) != new.inputs.get(key) for key in keys):
            seen.add(name)
            old_names = {r.inputs.get("name") for r in before.values() if r.type == new.type}
            assert new.delete_before_replace or new.inputs["name"] not in old_names, (
                f"{change}: {new.type} {name} would be created as {new.inputs['name']!r}, "
                "a name the old stack still holds"
            )
    assert seen == replaced, f"{change}: replaced {sorted(seen)}"


def test_the_seed_keeps_its_names_on_the_first_deploy(synth: Synth) -> None:
    template = synth("prod")
    assert template.resource("aws:lb/targetGroup:TargetGroup").inputs["name"] == (
        "app-api-target-group"
    )
    assert template.resource("aws:ecr/repository:Repository").inputs["name"] == (
        "my-application-api"
    )
