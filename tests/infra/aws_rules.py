"""What AWS would refuse, found without AWS: its API models plus the rules it documents elsewhere.

1. botocore's service models (shipped inside the package, no network): botocore's own
   ParamValidator (types, required members), then the constraints it skips: enums, min/max of
   numbers, lengths of strings and lists, and patterns.
2. Rules AWS documents outside the models (the ECS, ELB, CloudWatch, ECR, S3 and IAM guides and
   the model's own documentation text), written out here literally, never imported from infra/.

Every violation names the resource, the API field, the value and the rule:
    aws:lb/targetGroup:TargetGroup api-target-group: elbv2.CreateTargetGroup
    HealthCheckIntervalSeconds = 4: at least 5 (model)
"""

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from botocore.loaders import Loader
from botocore.model import ServiceModel, Shape
from botocore.validate import ParamValidator

from infra.mock_cloud import RecordedResource
from tests.infra.aws_requests import ApiCall, api_calls


@dataclass(frozen=True)
class Violation:
    resource: RecordedResource
    call: ApiCall
    field: str
    value: Any
    rule: str

    def __str__(self) -> str:
        value = json.dumps(self.value) if not isinstance(self.value, str) else repr(self.value)
        return (
            f"{self.resource.type} {self.resource.name}: {self.call.service}."
            f"{self.call.operation} {self.field} = {value[:200]}: {self.rule}"
        )


SERVICES = (
    "application-autoscaling", "cloudwatch", "ec2", "ecr", "ecs", "elbv2", "iam", "logs", "s3",
    "sns",
)  # fmt: skip


@cache
def _model(service: str) -> ServiceModel:
    return ServiceModel(Loader().load_service_model(service, "service-2"), service_name=service)


def preload_models() -> None:
    """Load the model of every service a request mapping names."""
    for service in SERVICES:
        _model(service).operation_names  # noqa: B018 - loads the model's operations


@cache
def _pattern(pattern: str) -> re.Pattern[str] | None:
    """AWS's patterns are Java regexes; the few Python cannot read (\\p{...}) are skipped."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


def model_problems(call: ApiCall) -> Iterator[tuple[str, Any, str]]:
    """(field, value, rule) for each way `call.params` breaks its operation's input shape."""
    shape = _model(call.service).operation_model(call.operation).input_shape
    assert shape is not None, f"{call.service}.{call.operation} takes no input"
    report = ParamValidator().validate(call.params, shape)
    if report.has_errors():
        for line in report.generate_report().splitlines()[1:]:
            yield "(request)", None, f"{line.strip()} (botocore validator)"
    yield from _walk(shape, call.params, "")


def _walk(shape: Shape, value: Any, path: str) -> Iterator[tuple[str, Any, str]]:
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members  # type: ignore[attr-defined]
        for key, item in value.items():
            if key in members:
                yield from _walk(members[key], item, f"{path}.{key}" if path else key)
        return
    if kind == "list" and isinstance(value, list):
        if "min" in meta and len(value) < meta["min"]:
            yield path, value, f"at least {meta['min']} items (model)"
        if "max" in meta and len(value) > meta["max"]:
            yield path, value, f"at most {meta['max']} items (model)"
        for index, item in enumerate(value):
            yield from _walk(shape.member, item, f"{path}[{index}]")  # type: ignore[attr-defined]
        return
    if kind == "map" and isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(shape.value, item, f"{path}.{key}")  # type: ignore[attr-defined]
        return
    if kind == "string" and isinstance(value, str):
        enum: list[str] = getattr(shape, "enum", [])
        if enum and value not in enum:
            yield path, value, f"one of {enum} (model enum)"
        if "min" in meta and len(value) < meta["min"]:
            yield path, value, f"at least {meta['min']} characters (model)"
        if "max" in meta and len(value) > meta["max"]:
            yield path, value, f"at most {meta['max']} characters (model)"
        pattern = _pattern(meta["pattern"]) if "pattern" in meta else None
        if pattern is not None and not pattern.fullmatch(value):
            yield path, value, f"must match {meta['pattern']} (model pattern)"
        return
    if kind in {"integer", "long", "double", "float"} and isinstance(value, int | float):
        if "min" in meta and value < meta["min"]:
            yield path, value, f"at least {meta['min']} (model)"
        if "max" in meta and value > meta["max"]:
            yield path, value, f"at most {meta['max']} (model)"


# --- Rules AWS documents outside the models -------------------------------------------------

Problems = Iterator[tuple[str, Any, str]]

# Fargate task sizes (ECS Developer Guide, "Task CPU and memory", Linux): cpu -> memory MiB.
FARGATE_SIZES: dict[str, set[int]] = {
    "256": {512, 1024, 2048},
    "512": set(range(1024, 4097, 1024)),
    "1024": set(range(2048, 8193, 1024)),
    "2048": set(range(4096, 16385, 1024)),
    "4096": set(range(8192, 30721, 1024)),
    "8192": set(range(16384, 61441, 4096)),
    "16384": set(range(32768, 122881, 8192)),
}
# CloudWatch Logs PutRetentionPolicy: "Possible values are: 1, 3, 5, 7, 14, 30, ...".
RETENTION_DAYS = {
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
}  # fmt: skip
# CloudWatch metrics this stack may alarm on or chart, with their dimension sets (ELB guide,
# "CloudWatch metrics for your Application Load Balancer"; ECS guide, "Amazon ECS CloudWatch
# metrics").
METRICS: dict[tuple[str, str], set[frozenset[str]]] = {
    ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count"): {frozenset({"LoadBalancer"})},
    ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"): {
        frozenset({"LoadBalancer"}),
        frozenset({"LoadBalancer", "TargetGroup"}),
    },
    ("AWS/ApplicationELB", "UnHealthyHostCount"): {frozenset({"LoadBalancer", "TargetGroup"})},
    ("AWS/ApplicationELB", "HealthyHostCount"): {frozenset({"LoadBalancer", "TargetGroup"})},
    ("AWS/ApplicationELB", "TargetResponseTime"): {
        frozenset({"LoadBalancer"}),
        frozenset({"LoadBalancer", "TargetGroup"}),
    },
    ("AWS/ApplicationELB", "RequestCount"): {
        frozenset({"LoadBalancer"}),
        frozenset({"LoadBalancer", "TargetGroup"}),
    },
    ("AWS/ECS", "CPUUtilization"): {frozenset({"ClusterName", "ServiceName"})},
    ("AWS/ECS", "MemoryUtilization"): {frozenset({"ClusterName", "ServiceName"})},
}
# Service principals the stack's trust policies may name (ECS guide: task execution role and
# task role trust ecs-tasks.amazonaws.com; the infrastructure role for load balancers trusts
# ecs.amazonaws.com).
SERVICE_PRINCIPALS = {"ecs-tasks.amazonaws.com", "ecs.amazonaws.com"}
# AWS managed policies the stack attaches, with their documented paths.
MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
    "arn:aws:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers",
}
# ELB access logs (ELB guide, "Enable access logs"): the ELB account of us-east-1.
ELB_ACCOUNT_US_EAST_1 = "127311923021"
_ELB_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?")
_ECS_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
_SG_TEXT = re.compile(r"[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]{0,255}")
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _in(low: float, high: float, value: Any) -> bool:
    return isinstance(value, int | float) and low <= value <= high


def _tenths(value: Any) -> bool:
    return isinstance(value, int | float) and Decimal(str(value)) % Decimal("0.1") == 0


def _task_definition(params: dict[str, Any]) -> Problems:
    if params.get("requiresCompatibilities") != ["FARGATE"]:
        yield "requiresCompatibilities", params.get("requiresCompatibilities"), "FARGATE only"
    if params.get("networkMode") != "awsvpc":
        yield "networkMode", params.get("networkMode"), "Fargate tasks must use awsvpc"
    cpu, memory = params.get("cpu"), params.get("memory")
    if cpu not in FARGATE_SIZES:
        yield "cpu", cpu, f"a Fargate task cpu ({', '.join(FARGATE_SIZES)})"
    elif not str(memory).isdigit() or int(str(memory)) not in FARGATE_SIZES[cpu]:
        yield "memory", memory, f"not a Fargate memory size for cpu {cpu}"
    platform = params.get("runtimePlatform") or {}
    if platform.get("operatingSystemFamily") != "LINUX":
        yield (
            "runtimePlatform.operatingSystemFamily",
            platform.get("operatingSystemFamily"),
            ("LINUX (this stack's tasks)"),
        )
    containers = params.get("containerDefinitions", [])
    if not any(c.get("essential", True) for c in containers):
        yield "containerDefinitions[*].essential", False, "a task needs an essential container"
    volumes = {volume["name"] for volume in params.get("volumes", [])}
    for index, container in enumerate(containers):
        at = f"containerDefinitions[{index}]"
        for mapping in container.get("portMappings", []):
            if mapping.get("hostPort", mapping.get("containerPort")) != mapping.get(
                "containerPort"
            ):
                yield (
                    f"{at}.portMappings.hostPort",
                    mapping.get("hostPort"),
                    ("awsvpc: hostPort must equal containerPort"),
                )
        stop = container.get("stopTimeout")
        if stop is not None and not _in(2, 120, stop):
            yield f"{at}.stopTimeout", stop, "Fargate: 2-120 seconds"
        for mount in container.get("mountPoints", []):
            if mount.get("sourceVolume") not in volumes:
                yield (
                    f"{at}.mountPoints.sourceVolume",
                    mount.get("sourceVolume"),
                    ("must name a volume of the task definition"),
                )
        check = container.get("healthCheck")
        if check is not None:
            # ECS API HealthCheck: interval 5-300, timeout 2-60, retries 1-10, startPeriod 0-300.
            for key, low, high in (
                ("interval", 5, 300),
                ("timeout", 2, 60),
                ("retries", 1, 10),
                ("startPeriod", 0, 300),
            ):
                if key in check and not _in(low, high, check[key]):
                    yield f"{at}.healthCheck.{key}", check[key], f"{low}-{high} (ECS HealthCheck)"
            command = check.get("command") or []
            if not command or command[0] not in {"CMD", "CMD-SHELL"}:
                yield f"{at}.healthCheck.command", command, "must start with CMD or CMD-SHELL"
        if not _ECS_NAME.fullmatch(str(container.get("name", ""))):
            yield f"{at}.name", container.get("name"), "up to 255 letters, digits, - and _"
    if not _ECS_NAME.fullmatch(str(params.get("family", ""))):
        yield "family", params.get("family"), "up to 255 letters, digits, - and _"


def _service(params: dict[str, Any]) -> Problems:
    if "launchType" in params and "capacityProviderStrategy" in params:
        yield (
            "launchType",
            params["launchType"],
            ("launchType and capacityProviderStrategy cannot both be set (ECS CreateService)"),
        )
    for item in params.get("capacityProviderStrategy", []):
        if item.get("capacityProvider") not in {"FARGATE", "FARGATE_SPOT"}:
            yield (
                "capacityProviderStrategy.capacityProvider",
                item.get("capacityProvider"),
                ("FARGATE or FARGATE_SPOT for a Fargate service"),
            )
    if not _ECS_NAME.fullmatch(str(params.get("serviceName", ""))):
        yield "serviceName", params.get("serviceName"), "up to 255 letters, digits, - and _"
    configuration = params.get("deploymentConfiguration", {})
    strategy = configuration.get("strategy", "ROLLING")
    if "deploymentCircuitBreaker" in configuration and strategy != "ROLLING":
        yield (
            "deploymentConfiguration.deploymentCircuitBreaker",
            (configuration["deploymentCircuitBreaker"]),
            f"only for rolling updates (ECS DeploymentCircuitBreaker), strategy is {strategy}",
        )
    if strategy != "ROLLING" and "bakeTimeInMinutes" not in configuration:
        yield (
            "deploymentConfiguration.bakeTimeInMinutes",
            None,
            (f"required with the {strategy} strategy (ECS DeploymentConfiguration)"),
        )
    if "bakeTimeInMinutes" in configuration and not _in(
        0, 1440, configuration["bakeTimeInMinutes"]
    ):
        yield (
            "deploymentConfiguration.bakeTimeInMinutes",
            configuration["bakeTimeInMinutes"],
            ("0-1440 minutes"),
        )
    canary = configuration.get("canaryConfiguration")
    if canary is not None:
        if strategy != "CANARY":
            yield "deploymentConfiguration.canaryConfiguration", canary, "only with CANARY"
        percent = canary.get("canaryPercent")
        if not (_in(0.1, 100, percent) and _tenths(percent)):
            yield (
                "deploymentConfiguration.canaryConfiguration.canaryPercent",
                percent,
                ("multiples of 0.1 from 0.1 to 100.0 (ECS CanaryConfiguration)"),
            )
        if not _in(0, 1440, canary.get("canaryBakeTimeInMinutes")):
            yield (
                "deploymentConfiguration.canaryConfiguration.canaryBakeTimeInMinutes",
                (canary.get("canaryBakeTimeInMinutes")),
                "0-1440 minutes",
            )
    linear = configuration.get("linearConfiguration")
    if linear is not None:
        if strategy != "LINEAR":
            yield "deploymentConfiguration.linearConfiguration", linear, "only with LINEAR"
        percent = linear.get("stepPercent")
        if not (_in(3, 100, percent) and _tenths(percent)):
            yield (
                "deploymentConfiguration.linearConfiguration.stepPercent",
                percent,
                ("multiples of 0.1 from 3.0 to 100.0 (ECS LinearConfiguration)"),
            )
        if not _in(0, 1440, linear.get("stepBakeTimeInMinutes")):
            yield (
                "deploymentConfiguration.linearConfiguration.stepBakeTimeInMinutes",
                (linear.get("stepBakeTimeInMinutes")),
                "0-1440 minutes",
            )
    for index, balancer in enumerate(params.get("loadBalancers", [])):
        advanced = balancer.get("advancedConfiguration")
        if strategy != "ROLLING" and advanced is None:
            yield (
                f"loadBalancers[{index}].advancedConfiguration",
                None,
                (f"{strategy} needs an alternate target group, production listener rule and role"),
            )
    maximum, minimum = (
        configuration.get("maximumPercent"),
        configuration.get("minimumHealthyPercent"),
    )
    if isinstance(maximum, int) and isinstance(minimum, int) and maximum <= minimum:
        yield (
            "deploymentConfiguration.maximumPercent",
            maximum,
            (f"must exceed minimumHealthyPercent ({minimum}) or no task can be replaced"),
        )


def _elb_name(field: str, name: Any) -> Problems:
    text = str(name)
    if not _ELB_NAME.fullmatch(text):
        yield field, name, "1-32 letters, digits and hyphens, not starting or ending with '-'"
    elif field == "Name" and text.startswith("internal-"):
        yield field, name, "must not start with 'internal-'"


def _load_balancer(params: dict[str, Any]) -> Problems:
    yield from _elb_name("Name", params.get("Name"))
    if params.get("IpAddressType", "ipv4") != "ipv4":
        # Neither the default VPC nor the stack's dedicated VPC has IPv6 CIDR blocks, and
        # dualstack needs subnets with IPv6 (ELB CreateLoadBalancer).
        yield "IpAddressType", params["IpAddressType"], "ipv4: the stack's subnets have no IPv6"


def _load_balancer_attributes(params: dict[str, Any]) -> Problems:
    attributes = {a["Key"]: a["Value"] for a in params.get("Attributes", [])}
    timeout = attributes.get("idle_timeout.timeout_seconds")
    if timeout is not None and not (timeout.isdigit() and 1 <= int(timeout) <= 4000):
        yield "Attributes[idle_timeout.timeout_seconds]", timeout, "1-4000 seconds (ELB)"
    if attributes.get("access_logs.s3.enabled") == "true":
        if not attributes.get("access_logs.s3.bucket"):
            yield "Attributes[access_logs.s3.bucket]", None, "required when access logs are on"
        prefix = attributes.get("access_logs.s3.prefix", "")
        if "AWSLogs" in prefix:
            yield "Attributes[access_logs.s3.prefix]", prefix, "must not include AWSLogs"


def _target_group(params: dict[str, Any]) -> Problems:
    yield from _elb_name("Name", params.get("Name"))
    interval, timeout = (
        params.get("HealthCheckIntervalSeconds"),
        params.get("HealthCheckTimeoutSeconds"),
    )
    if isinstance(interval, int) and isinstance(timeout, int) and timeout >= interval:
        yield "HealthCheckTimeoutSeconds", timeout, f"must be less than the interval ({interval})"
    port = params.get("HealthCheckPort", "traffic-port")
    if port not in {"traffic-port", str(params.get("Port"))}:
        # The tasks' security group admits the load balancer on the traffic port only.
        yield "HealthCheckPort", port, "traffic-port: the task security group admits no other"
    if params.get("HealthCheckProtocol", params.get("Protocol")) != params.get("Protocol"):
        # The container serves the target group's protocol (plain HTTP) and nothing else.
        yield (
            "HealthCheckProtocol",
            params.get("HealthCheckProtocol"),
            (f"{params.get('Protocol')}: the protocol the targets serve"),
        )
    path = params.get("HealthCheckPath")
    if path is not None and not str(path).startswith("/"):
        yield "HealthCheckPath", path, "must start with '/'"
    code = (params.get("Matcher") or {}).get("HttpCode")
    if code is not None and not all(
        part.isdigit() and 200 <= int(part) <= 499 for part in re.split(r"[,-]", code)
    ):
        yield "Matcher.HttpCode", code, "HTTP codes 200-499 (ELB Matcher)"
    if params.get("TargetType") != "ip":
        yield "TargetType", params.get("TargetType"), "ip: Fargate tasks register by IP"


def _target_group_attributes(params: dict[str, Any]) -> Problems:
    attributes = {a["Key"]: a["Value"] for a in params.get("Attributes", [])}
    delay = attributes.get("deregistration_delay.timeout_seconds")
    if delay is not None and not (delay.isdigit() and int(delay) <= 3600):
        yield "Attributes[deregistration_delay.timeout_seconds]", delay, "0-3600 seconds (ELB)"


def _listener(params: dict[str, Any]) -> Problems:
    if params.get("Protocol") == "HTTPS":
        if not params.get("Certificates"):
            yield "Certificates", None, "an HTTPS listener needs a certificate"
        if not params.get("SslPolicy"):
            yield "SslPolicy", None, "an HTTPS listener needs a security policy"
    yield from _actions("DefaultActions", params.get("DefaultActions", []))


_FIXED_RESPONSE_CONTENT_TYPES = frozenset(
    # The model's FixedResponseActionConfig.ContentType documentation ("Valid Values").
    {"text/plain", "text/css", "text/html", "application/javascript", "application/json"}
)
# ELBv2 Action: "Each rule must include exactly one of the following types of actions: forward,
# fixed-response, or redirect", each with its config.
_ACTION_CONFIG = {"fixed-response": "FixedResponseConfig", "redirect": "RedirectConfig"}


def _actions(field: str, actions: list[dict[str, Any]]) -> Problems:
    for index, action in enumerate(actions):
        kind = action.get("Type")
        if kind == "forward" and not ("TargetGroupArn" in action or "ForwardConfig" in action):
            yield f"{field}[{index}]", action, "forward needs TargetGroupArn or ForwardConfig"
        if kind in _ACTION_CONFIG and _ACTION_CONFIG[kind] not in action:
            yield f"{field}[{index}]", action, f"{kind} needs {_ACTION_CONFIG[kind]}"
        content_type = (action.get("FixedResponseConfig") or {}).get("ContentType")
        if content_type is not None and content_type not in _FIXED_RESPONSE_CONTENT_TYPES:
            yield (
                f"{field}[{index}].FixedResponseConfig.ContentType",
                content_type,
                f"one of {', '.join(sorted(_FIXED_RESPONSE_CONTENT_TYPES))}",
            )
        for group in (action.get("ForwardConfig") or {}).get("TargetGroups", []):
            if not _in(0, 999, group.get("Weight", 1)):
                yield f"{field}[{index}].ForwardConfig.Weight", group.get("Weight"), "0-999"


def _rule(params: dict[str, Any]) -> Problems:
    if not params.get("Conditions"):
        yield "Conditions", params.get("Conditions"), "a rule needs at least one condition"
    yield from _actions("Actions", params.get("Actions", []))


def _security_group(params: dict[str, Any]) -> Problems:
    if not _SG_TEXT.fullmatch(str(params.get("Description", ""))):
        yield (
            "Description",
            params.get("Description"),
            ("up to 255 of a-zA-Z0-9. _-:/()#,@[]+=&;{}!$* (EC2 CreateSecurityGroup)"),
        )


def _security_group_rule(params: dict[str, Any]) -> Problems:
    for permission in params.get("IpPermissions", []):
        protocol = permission.get("IpProtocol")
        if protocol != "-1":
            for key in ("FromPort", "ToPort"):
                if not _in(0, 65535, permission.get(key)):
                    yield f"IpPermissions.{key}", permission.get(key), f"0-65535 for {protocol}"
        for pair in permission.get("IpRanges", []) + permission.get("UserIdGroupPairs", []):
            if not _SG_TEXT.fullmatch(str(pair.get("Description", ""))):
                yield "IpPermissions.Description", pair.get("Description"), "EC2 rule text"


def _policy_document(field: str, text: Any, *, trust: bool) -> Problems:
    try:
        document = json.loads(text)
    except (TypeError, json.JSONDecodeError) as error:
        yield field, text, f"not JSON ({error})"
        return
    if document.get("Version") != "2012-10-17":
        yield f"{field}.Version", document.get("Version"), "2012-10-17 (IAM policy grammar)"
    statements = document.get("Statement")
    if not isinstance(statements, list) or not statements:
        yield f"{field}.Statement", statements, "a non-empty list of statements"
        return
    for index, statement in enumerate(statements):
        at = f"{field}.Statement[{index}]"
        if statement.get("Effect") not in {"Allow", "Deny"}:
            yield f"{at}.Effect", statement.get("Effect"), "Allow or Deny"
        if "Action" not in statement:
            yield f"{at}.Action", None, "required"
        if trust:
            if statement.get("Action") != "sts:AssumeRole":
                yield f"{at}.Action", statement.get("Action"), "sts:AssumeRole (trust policy)"
            principal = (statement.get("Principal") or {}).get("Service")
            if principal not in SERVICE_PRINCIPALS:
                yield (
                    f"{at}.Principal.Service",
                    principal,
                    (f"a documented ECS service principal ({sorted(SERVICE_PRINCIPALS)})"),
                )


def _role(params: dict[str, Any]) -> Problems:
    yield from _policy_document(
        "AssumeRolePolicyDocument", params.get("AssumeRolePolicyDocument"), trust=True
    )


def _attachment(params: dict[str, Any]) -> Problems:
    if params.get("PolicyArn") not in MANAGED_POLICIES:
        yield (
            "PolicyArn",
            params.get("PolicyArn"),
            (f"an AWS managed policy at its documented path ({sorted(MANAGED_POLICIES)})"),
        )


def _retention(params: dict[str, Any]) -> Problems:
    if params.get("retentionInDays") not in RETENTION_DAYS:
        yield (
            "retentionInDays",
            params.get("retentionInDays"),
            ("a CloudWatch Logs retention period (1, 3, 5, 7, 14, 30, ... 3653)"),
        )


def _alarm(params: dict[str, Any]) -> Problems:
    periods, datapoints = params.get("EvaluationPeriods"), params.get("DatapointsToAlarm")
    if isinstance(periods, int) and isinstance(datapoints, int) and datapoints > periods:
        yield "DatapointsToAlarm", datapoints, f"at most EvaluationPeriods ({periods})"
    # The model requires only AlarmName since alarms may use EvaluationCriteria; its docs (and
    # the provider's: "Required for traditional metric alarms") require these with MetricName
    # or Metrics, and a Threshold unless the alarm compares with a ThresholdMetricId band.
    if "EvaluationCriteria" not in params:
        needed = ["EvaluationPeriods", "ComparisonOperator"]
        if "ThresholdMetricId" not in params:
            needed.append("Threshold")
        for member in needed:
            if member not in params:
                yield member, None, "required for an alarm on MetricName or Metrics"
    single = [key for key in ("Statistic", "ExtendedStatistic") if key in params]
    if "Metrics" in params:
        if single or "MetricName" in params:
            yield "Metrics", params["Metrics"], "Metrics excludes MetricName/Statistic"
        returned = [q for q in params["Metrics"] if q.get("ReturnData", True)]
        if len(returned) != 1:
            yield "Metrics[*].ReturnData", len(returned), "exactly one query returns data"
        metrics = [
            (q["MetricStat"]["Metric"], q["MetricStat"]["Period"])
            for q in params["Metrics"]
            if "MetricStat" in q
        ]
    else:
        if len(single) != 1:
            yield "Statistic", single, "exactly one of Statistic and ExtendedStatistic"
        metrics = [(params, params.get("Period"))]
    for metric, period in metrics:
        key = (metric.get("Namespace"), metric.get("MetricName"))
        dimensions = frozenset(d["Name"] for d in metric.get("Dimensions", []))
        if key not in METRICS:
            yield "MetricName", key, "not a documented metric of AWS/ApplicationELB or AWS/ECS"
        elif dimensions not in METRICS[key]:
            yield "Dimensions", sorted(dimensions), f"not a documented dimension set of {key[1]}"
        if not (period in {10, 20, 30} or (isinstance(period, int) and period % 60 == 0)):
            yield "Period", period, "10, 20, 30 or a multiple of 60 seconds"
        if isinstance(period, int) and isinstance(periods, int) and period * periods > 86400:
            yield "EvaluationPeriods", periods, "Period x EvaluationPeriods at most one day"
    for actions in ("AlarmActions", "OKActions"):
        for action in params.get(actions, []):
            if not str(action).startswith("arn:aws:sns:"):
                yield actions, action, "an SNS topic ARN"


def _dashboard(params: dict[str, Any]) -> Problems:
    try:
        body = json.loads(params["DashboardBody"])
    except json.JSONDecodeError as error:
        yield "DashboardBody", params["DashboardBody"], f"not JSON ({error})"
        return
    for index, widget in enumerate(body.get("widgets", [])):
        at = f"DashboardBody.widgets[{index}]"
        x, width = widget.get("x", 0), widget.get("width", 6)
        if not (_in(0, 23, x) and _in(1, 24, width) and x + width <= 24):
            yield f"{at}.x/width", (x, width), "inside the 24-column grid"
        y, height = widget.get("y", 0), widget.get("height", 6)
        if not (isinstance(y, int) and y >= 0 and _in(1, 1000, height)):
            yield f"{at}.y/height", (y, height), "y 0 or more, height 1 to 1000"
        if widget.get("type") not in {"metric", "alarm", "text", "log"}:
            yield f"{at}.type", widget.get("type"), "a dashboard widget type"
        for metric in widget.get("properties", {}).get("metrics", []):
            names = [part for part in metric if isinstance(part, str)]
            key = (names[0], names[1]) if len(names) >= 2 else ("", "")
            dimensions = frozenset(names[2::2])
            if key not in METRICS or dimensions not in METRICS[key]:
                yield f"{at}.metrics", metric, "a documented metric and dimension set"


def _lifecycle_policy(params: dict[str, Any]) -> Problems:
    """ECR's lifecycle policy grammar (ECR User Guide, "Lifecycle policy properties")."""
    field = "lifecyclePolicyText"
    try:
        rules = json.loads(params[field])["rules"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        yield field, params.get(field), f"a JSON document with rules ({error})"
        return
    priorities = [rule.get("rulePriority") for rule in rules]
    if len(set(priorities)) != len(priorities):
        yield f"{field}.rules[*].rulePriority", priorities, "unique per policy"
    for index, rule in enumerate(rules):
        at = f"{field}.rules[{index}]"
        priority = rule.get("rulePriority")
        if not (isinstance(priority, int) and priority >= 1):
            yield f"{at}.rulePriority", priority, "an integer of at least 1"
        if (rule.get("action") or {}).get("type") != "expire":
            yield f"{at}.action.type", (rule.get("action") or {}).get("type"), "expire"
        selection = rule.get("selection") or {}
        status = selection.get("tagStatus")
        if status not in {"tagged", "untagged", "any"}:
            yield f"{at}.selection.tagStatus", status, "tagged, untagged or any"
        if status == "tagged" and not (
            selection.get("tagPatternList") or selection.get("tagPrefixList")
        ):
            yield f"{at}.selection.tagPatternList", None, "required when tagStatus is tagged"
        count_type = selection.get("countType")
        if count_type not in {"imageCountMoreThan", "sinceImagePushed"}:
            yield f"{at}.selection.countType", count_type, "imageCountMoreThan or sinceImagePushed"
        if (count_type == "sinceImagePushed") != ("countUnit" in selection):
            yield (
                f"{at}.selection.countUnit",
                selection.get("countUnit"),
                ("days, exactly when countType is sinceImagePushed"),
            )
        number = selection.get("countNumber")
        if not (isinstance(number, int) and number >= 1):
            yield f"{at}.selection.countNumber", number, "an integer of at least 1"
        if status == "any" and priority != max(priorities):
            yield f"{at}.rulePriority", priority, "a tagStatus any rule must have the highest"


def _scaling_target(params: dict[str, Any]) -> Problems:
    if not re.fullmatch(r"service/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+", params.get("ResourceId", "")):
        yield "ResourceId", params.get("ResourceId"), "service/<cluster name>/<service name>"
    low, high = params.get("MinCapacity"), params.get("MaxCapacity")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        yield "MinCapacity", low, f"at most MaxCapacity ({high})"


def _scaling_policy(params: dict[str, Any]) -> Problems:
    yield from _scaling_target(params)
    tracking = params.get("TargetTrackingScalingPolicyConfiguration", {})
    spec = tracking.get("PredefinedMetricSpecification", {})
    label = spec.get("ResourceLabel")
    if spec.get("PredefinedMetricType") == "ALBRequestCountPerTarget":
        if not re.fullmatch(r"app/[^/]+/[0-9a-f]+/targetgroup/[^/]+/[0-9a-f]+", label or ""):
            yield (
                "ResourceLabel",
                label,
                (
                    "app/<load balancer>/<id>/targetgroup/<target group>/<id> for "
                    "ALBRequestCountPerTarget"
                ),
            )
    elif label is not None:
        yield "ResourceLabel", label, "only with ALBRequestCountPerTarget"
    if spec.get("PredefinedMetricType", "").startswith("ECSService") and not _in(
        0.000001, 100, tracking.get("TargetValue")
    ):
        yield "TargetValue", tracking.get("TargetValue"), "a utilization percentage"


def _bucket(params: dict[str, Any]) -> Problems:
    name = str(params.get("Bucket", ""))
    if not _S3_BUCKET.fullmatch(name) or ".." in name:
        yield "Bucket", name, "3-63 lowercase letters, digits, '.' and '-' (S3 bucket naming)"


def _bucket_encryption(params: dict[str, Any]) -> Problems:
    for rule in params["ServerSideEncryptionConfiguration"]["Rules"]:
        algorithm = rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
        if algorithm != "AES256":
            yield "SSEAlgorithm", algorithm, "AES256: ELB log delivery supports only SSE-S3"


def _bucket_lifecycle(params: dict[str, Any]) -> Problems:
    for rule in params["LifecycleConfiguration"]["Rules"]:
        if "Filter" not in rule:
            yield "Rules.Filter", None, "required (S3 lifecycle configuration)"
        days = (rule.get("Expiration") or {}).get("Days")
        if days is not None and not (isinstance(days, int) and days >= 1):
            yield "Rules.Expiration.Days", days, "a positive whole number of days"


def _bucket_policy(params: dict[str, Any]) -> Problems:
    yield from _policy_document("Policy", params.get("Policy"), trust=False)


def _public_access(params: dict[str, Any]) -> Problems:
    for key, value in params["PublicAccessBlockConfiguration"].items():
        if value is not True:
            yield f"PublicAccessBlockConfiguration.{key}", value, "true: log buckets are private"


def _subscription(params: dict[str, Any]) -> Problems:
    if params.get("Protocol") == "email" and not re.fullmatch(
        r"[^@\s]+@[^@\s]+\.[^@\s]+", str(params.get("Endpoint"))
    ):
        yield "Endpoint", params.get("Endpoint"), "an email address for the email protocol"


def _topic(params: dict[str, Any]) -> Problems:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(params.get("Name"))):
        yield "Name", params.get("Name"), "1-256 letters, digits, - and _ (SNS topic name)"


DOCUMENTED: dict[tuple[str, str], Callable[[dict[str, Any]], Problems]] = {
    ("ecs", "RegisterTaskDefinition"): _task_definition,
    ("ecs", "CreateService"): _service,
    ("elbv2", "CreateLoadBalancer"): _load_balancer,
    ("elbv2", "ModifyLoadBalancerAttributes"): _load_balancer_attributes,
    ("elbv2", "CreateTargetGroup"): _target_group,
    ("elbv2", "ModifyTargetGroupAttributes"): _target_group_attributes,
    ("elbv2", "CreateListener"): _listener,
    ("elbv2", "CreateRule"): _rule,
    ("ec2", "CreateSecurityGroup"): _security_group,
    ("ec2", "AuthorizeSecurityGroupIngress"): _security_group_rule,
    ("ec2", "AuthorizeSecurityGroupEgress"): _security_group_rule,
    ("iam", "CreateRole"): _role,
    ("iam", "AttachRolePolicy"): _attachment,
    ("logs", "PutRetentionPolicy"): _retention,
    ("cloudwatch", "PutMetricAlarm"): _alarm,
    ("cloudwatch", "PutDashboard"): _dashboard,
    ("ecr", "PutLifecyclePolicy"): _lifecycle_policy,
    ("application-autoscaling", "RegisterScalableTarget"): _scaling_target,
    ("application-autoscaling", "PutScalingPolicy"): _scaling_policy,
    ("s3", "CreateBucket"): _bucket,
    ("s3", "PutBucketEncryption"): _bucket_encryption,
    ("s3", "PutBucketLifecycleConfiguration"): _bucket_lifecycle,
    ("s3", "PutBucketPolicy"): _bucket_policy,
    ("s3", "PutPublicAccessBlock"): _public_access,
    ("sns", "Subscribe"): _subscription,
    ("sns", "CreateTopic"): _topic,
}


def call_violations(resource: RecordedResource, call: ApiCall) -> list[Violation]:
    problems = list(model_problems(call))
    documented = DOCUMENTED.get((call.service, call.operation))
    if documented is not None:
        problems += list(documented(call.params))
    return [Violation(resource, call, field, value, rule) for field, value, rule in problems]


def violations(resources: list[RecordedResource]) -> list[Violation]:
    """Every request of every resource, checked against the models and the documented rules."""
    found: list[Violation] = []
    for resource in resources:
        for call in api_calls(resource):
            found += call_violations(resource, call)
    return found
