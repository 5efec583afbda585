"""The stack's one settings object, built and validated from Pulumi config before any resource.

Config lives in `Pulumi.<stack>.yaml` under the project namespace (`ecs-fargate-app:`), with
camelCase keys; nested objects and lists are YAML maps and lists. Every default below is the
seed guide's production value unless its comment says otherwise, so an empty config describes
the seed's stack. Names that are account-wide in AWS (cluster, load balancer, task family,
target group, repository) take the seed's name in the `production` environment and get the
environment as a suffix or infix elsewhere, so `dev` and `production` can share one account.

Bad config raises ConfigError naming each key, the value given and what is allowed.
"""

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import pulumi
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from app.contract import HEALTH_CHECK_COMMAND, HEALTH_PATH, KEEP_ALIVE_TIMEOUT_SECONDS, PORT
from infra.image_ref import InvalidImageReference, parse_image_reference

PRODUCTION: Final = "production"
PROJECT_ROOT: Final = Path(__file__).resolve().parent.parent
"""The directory holding Pulumi.yaml; build paths are relative to it, as for `pulumi up`."""

# AWS Fargate's task size table (Linux): cpu units -> (min, max, step) of memory in MiB.
FARGATE_MEMORY_BY_CPU: Final[dict[int, tuple[int, int, int]]] = {
    256: (512, 2048, 512),  # 512, 1024, 2048 (1536 is not offered; checked below)
    512: (1024, 4096, 1024),
    1024: (2048, 8192, 1024),
    2048: (4096, 16384, 1024),
    4096: (8192, 30720, 1024),
    8192: (16384, 61440, 4096),
    16384: (32768, 122880, 8192),
}
# CloudWatch Logs accepts only these retention periods (0, "never expire", is not allowed here).
LOG_RETENTION_DAYS: Final = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545,
    731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
ELB_NAME_LIMIT: Final = 32
# Listener rule priority used for a service's catch-all production rule (lowest precedence).
CATCH_ALL_PRIORITY: Final = 50000

_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_ELB_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_ECR_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*")
_ECS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")
_CERTIFICATE_ARN = re.compile(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+")
_SNS_TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d")
_UNSET: Final = object()


class ConfigError(pulumi.RunError):
    """Stack config that cannot describe a valid stack; raised before any resource exists."""


def _invalid(message: str, *, key: str | None = None, given: object = _UNSET) -> Exception:
    """A validation error that names the offending key (relative to the model) and value."""
    context: dict[str, Any] = {"key": key}
    if given is not _UNSET:
        context["given"] = given
    # pydantic fills `{name}` from the context, one key after another: the final message goes in
    # last, so braces in it (a user's value) are shown as given, not read as fields.
    context["message"] = message
    return PydanticCustomError("invalid_setting", "{message}", context)


class _Settings(BaseModel):
    """Config keys are camelCase aliases; unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class NetworkSettings(_Settings):
    mode: Literal["default", "dedicated"] = "default"
    """`default`: the account's default VPC, tasks in its public subnets with public IPs (the
    seed's choice; no NAT cost). `dedicated`: a new VPC, tasks in private subnets behind NAT."""
    cidr_block: str = "10.0.0.0/16"
    availability_zones: int = Field(default=2, ge=2, le=6)
    nat_gateways: Literal["single", "one_per_az"] = "single"


class RegistrySettings(_Settings):
    immutable_tags: bool = True
    encryption: Literal["AES256", "KMS"] = "AES256"
    untagged_expiry_days: int = Field(default=7, ge=1, le=3650)
    keep_tagged_images: int = Field(default=30, ge=1, le=10000)
    force_delete: bool = False
    """Delete the repository even if it holds images; only for throw-away environments."""


class ClusterSettings(_Settings):
    name: str | None = None
    """Default `<environment>-app-cluster` (seed: production-app-cluster)."""
    container_insights: Literal["enabled", "enhanced"] = "enabled"


class TargetHealthSettings(_Settings):
    """Target group health check and draining, tuned for fast, safe deploys.

    AWS defaults are interval 30 s, timeout 5 s, healthy 5, unhealthy 2, deregistration
    delay 300 s; see infra/load_balancer.py for the deploy time each choice implies.
    """

    interval_seconds: int = Field(default=10, ge=5, le=300)
    timeout_seconds: int = Field(default=5, ge=2, le=120)
    healthy_threshold: int = Field(default=2, ge=2, le=10)
    unhealthy_threshold: int = Field(default=3, ge=2, le=10)
    deregistration_delay_seconds: int = Field(default=30, ge=0, le=3600)

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> "TargetHealthSettings":
        if self.timeout_seconds >= self.interval_seconds:
            raise _invalid(
                f"must be shorter than intervalSeconds ({self.interval_seconds})",
                key="timeoutSeconds",
                given=self.timeout_seconds,
            )
        return self


class AccessLogSettings(_Settings):
    """ALB access logs to an S3 bucket the stack creates (public access blocked, SSE-S3, the
    bucket policy AWS documents for ELB log delivery)."""

    enabled: bool | None = None
    """Default: on in `production`, off elsewhere."""
    expiry_days: int = Field(default=90, ge=1, le=3650)
    """Log objects are deleted this many days after delivery."""
    prefix: str = "alb"

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        # ELB refuses a prefix with "AWSLogs" or a leading/trailing slash (its own path follows).
        if not re.fullmatch(r"[A-Za-z0-9!_.*'()-]+(?:/[A-Za-z0-9!_.*'()-]+)*", value) or (
            "AWSLogs" in value
        ):
            raise _invalid(
                "must be an S3 key prefix without leading or trailing '/' and without 'AWSLogs'"
            )
        return value


class LoadBalancerSettings(_Settings):
    name: str | None = None
    """Default `app-<environment>-lb` (seed: app-production-lb)."""
    certificate_arn: str | None = None
    """An ACM certificate ARN turns on HTTPS on 443 and redirects 80 to it."""
    ssl_policy: str = "ELBSecurityPolicy-TLS13-1-2-2021-06"
    deletion_protection: bool = True
    idle_timeout_seconds: int = Field(default=60, ge=1, lt=KEEP_ALIVE_TIMEOUT_SECONDS)
    """Below the app's keep-alive timeout (app/contract.py), or the ALB would reuse connections
    the app already closed and answer 502."""
    target_health: TargetHealthSettings = Field(default_factory=TargetHealthSettings)
    access_logs: AccessLogSettings = Field(default_factory=AccessLogSettings)

    @field_validator("certificate_arn")
    @classmethod
    def _certificate_arn(cls, value: str | None) -> str | None:
        if value is not None and not _CERTIFICATE_ARN.fullmatch(value):
            raise _invalid(
                "must be an ACM certificate ARN "
                "(arn:aws:acm:<region>:<12-digit account>:certificate/<id>)"
            )
        return value


class MonitoringSettings(_Settings):
    sns_topic: bool = False
    """Create an SNS topic that receives every alarm (implied by alarmEmails)."""
    alarm_emails: list[str] = []
    """Each address gets an email subscription to the stack's topic (AWS asks it to confirm)."""
    alarm_topic_arn: str | None = None
    """An existing SNS topic that receives every alarm instead of a topic of the stack's own."""
    target_5xx_per_minute: int = Field(default=10, ge=1)
    load_balancer_5xx_per_minute: int = Field(default=10, ge=1)
    p99_latency_seconds: float = Field(default=1.0, gt=0, le=60)
    cpu_alarm_percent: float = Field(default=85, gt=0, le=100)
    memory_alarm_percent: float = Field(default=85, gt=0, le=100)
    dashboard: bool = True

    @field_validator("alarm_emails")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for index, email in enumerate(value):
            if not _EMAIL.fullmatch(email):
                raise _invalid("is not an email address", key=f"[{index}]", given=email)
        return value

    @field_validator("alarm_topic_arn")
    @classmethod
    def _topic_arn(cls, value: str | None) -> str | None:
        if value is not None and not _SNS_TOPIC_ARN.fullmatch(value):
            raise _invalid(
                "must be an SNS topic ARN (arn:aws:sns:<region>:<12-digit account>:<topic name>)"
            )
        return value

    @model_validator(mode="after")
    def _one_destination(self) -> "MonitoringSettings":
        if self.alarm_topic_arn is not None and (self.sns_topic or self.alarm_emails):
            raise _invalid(
                "alarms go to this existing topic; drop snsTopic and alarmEmails "
                "(subscribe addresses to that topic instead)",
                key="alarmTopicArn",
                given=self.alarm_topic_arn,
            )
        return self

    @property
    def creates_topic(self) -> bool:
        return self.sns_topic or bool(self.alarm_emails)


class BuildSettings(_Settings):
    """Build the image from source with pulumi-docker (paths relative to the project)."""

    context: str = "app"
    dockerfile: str = "app/Dockerfile"
    args: dict[str, str] = {}
    """Docker build arguments (`--build-arg`); part of the image's push tag."""

    @field_validator("context", "dockerfile")
    @classmethod
    def _inside_project(cls, value: str) -> str:
        path = Path(value)
        if path.is_absolute() or ".." in path.parts or not value:
            raise _invalid("must be a relative path inside the project directory")
        return value

    @field_validator("context")
    @classmethod
    def _context_exists(cls, value: str) -> str:
        if not (PROJECT_ROOT / value).is_dir():
            raise _invalid("is not a directory of the project")
        return value

    @field_validator("dockerfile")
    @classmethod
    def _dockerfile_exists(cls, value: str) -> str:
        if not (PROJECT_ROOT / value).is_file():
            raise _invalid("is not a file of the project")
        return value


class RoutingSettings(_Settings):
    """Which requests the shared ALB sends to a service; the first service may have none and
    then receives everything no other service's rule matches."""

    path_patterns: list[str] = []
    host_headers: list[str] = []
    priority: int | None = Field(default=None, ge=1, lt=CATCH_ALL_PRIORITY)
    """Default: 100 times the service's position in `services`."""

    @property
    def has_conditions(self) -> bool:
        return bool(self.path_patterns or self.host_headers)


class ScalingSettings(_Settings):
    policy_name: str = "app-scaling-policy"
    cpu_target_percent: float = Field(default=70, gt=0, le=100)
    memory_target_percent: float | None = Field(default=None, gt=0, le=100)
    """Optional second target-tracking policy on ECSServiceAverageMemoryUtilization."""
    requests_per_target: int | None = Field(default=None, ge=1)
    """Optional ALBRequestCountPerTarget policy (requests per task per minute)."""
    scale_in_cooldown_seconds: int = Field(default=300, ge=0, le=3600)
    scale_out_cooldown_seconds: int = Field(default=60, ge=0, le=3600)


Strategy = Literal["rolling", "blue_green", "canary", "linear"]


class DeploymentSettings(_Settings):
    strategy: Strategy = "rolling"
    """`rolling` is the seed's; the others use ECS's native traffic-shifting deployments."""
    minimum_healthy_percent: int = Field(default=100, ge=0, le=100)
    maximum_percent: int = Field(default=200, ge=100, le=200)
    bake_time_minutes: int = Field(default=5, ge=0, le=1440)
    """blue_green/canary/linear: time both versions stay up after the shift, for rollback."""
    canary_percent: float = Field(default=10.0, ge=0.1, le=100)
    """ECS takes multiples of 0.1 from 0.1 to 100."""
    canary_bake_time_minutes: int = Field(default=5, ge=0, le=1440)
    linear_step_percent: float = Field(default=25.0, ge=3, le=100)
    """ECS takes multiples of 0.1 from 3 to 100."""
    linear_step_bake_time_minutes: int = Field(default=2, ge=0, le=1440)
    alarm_rollback: bool = True
    """Roll back when one of the service's deployment alarms fires during a deployment."""
    wait_for_steady_state: bool = True
    """`pulumi up` returns only when the deployment is stable (or fails when it rolls back)."""
    health_check_grace_period_seconds: int = Field(default=60, ge=0, le=7200)

    @field_validator("canary_percent", "linear_step_percent")
    @classmethod
    def _tenths(cls, value: float) -> float:
        if abs(value * 10 - round(value * 10)) > 1e-9:
            raise _invalid("ECS accepts traffic percentages in steps of 0.1 (for example 5.5)")
        return round(value, 1)

    @property
    def circuit_breaker(self) -> bool:
        """ECS's deployment circuit breaker exists for rolling deployments only (ECS API:
        DeploymentCircuitBreaker); the traffic-shifting strategies roll back on the deployment
        alarms and their bake time instead."""
        return self.strategy == "rolling"

    @model_validator(mode="after")
    def _room_to_roll(self) -> "DeploymentSettings":
        if self.maximum_percent <= self.minimum_healthy_percent:
            raise _invalid(
                f"must be above minimumHealthyPercent ({self.minimum_healthy_percent}), "
                "or a rolling deployment can neither start nor stop a task",
                key="maximumPercent",
                given=self.maximum_percent,
            )
        return self


@dataclass(frozen=True)
class ServiceNames:
    """AWS names of one service's resources, resolved for an environment."""

    service: str
    task_family: str
    container: str
    repository: str
    target_group: str
    alternate_target_group: str
    log_group: str


class ServiceSettings(_Settings):
    name: str = Field(default="api", max_length=20)
    """Short key for the service: resource names, stack outputs, dashboard."""
    service_name: str | None = None
    """Default `<name>-<environment>-service` (seed: api-production-service)."""
    task_family: str | None = None
    """Default `app-<name>-task`, suffixed outside production (seed: app-api-task)."""
    container_name: str | None = None
    """Default `app-<name>-container` (seed: app-api-container)."""
    repository_name: str | None = None
    """Default `my-application-<name>`, suffixed outside production (seed: my-application-api)."""
    target_group_name: str | None = None
    """Default `app-<name>-target-group`, suffixed outside production (seed:
    app-api-target-group); the blue/green alternate is `<that>-alt`. At most 28 characters.
    Another port or VPC than the seed's adds a hash of them (see `_resolve_names`)."""

    image: str | None = None
    """An existing image, `<repo>:<tag>` or `<repo>@sha256:<digest>`; nothing is built."""
    build: BuildSettings | None = None
    """Build from source instead (the default when `image` is not set)."""

    port: int = Field(default=PORT, ge=1, le=65535)
    health_path: str = HEALTH_PATH
    health_check_command: str | None = HEALTH_CHECK_COMMAND
    """Container health check, run as `CMD-SHELL <command> || exit 1` every 30 s; must exist in
    the image (the default is the app's own, see app/contract.py). `null` turns it off."""
    cpu: int = 1024
    memory: int = 3072
    cpu_architecture: Literal["ARM64", "X86_64"] = "ARM64"
    spot: bool = False
    """Run on FARGATE_SPOT (X86_64 only: AWS offers no Fargate Spot for ARM64)."""
    min_count: int = Field(default=2, ge=1, le=1000)
    max_count: int = Field(default=10, ge=1, le=1000)
    desired_count: int = 2
    stop_timeout_seconds: int = Field(default=30, ge=2, le=120)
    """SIGTERM to SIGKILL; the app stops draining before that (app/contract.py)."""
    health_message: str | None = Field(default=None, min_length=1)
    """APP_HEALTH_MESSAGE: what GET /health answers (default the app's, the seed's text)."""
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    scaling: ScalingSettings = Field(default_factory=ScalingSettings)
    deployment: DeploymentSettings = Field(default_factory=DeploymentSettings)

    _names: ServiceNames | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise _invalid(
                "must be lowercase letters, digits and single hyphens, starting a letter"
            )
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return _check_image(value)

    @field_validator("health_path")
    @classmethod
    def _health_path(cls, value: str) -> str:
        if not value.startswith("/") or any(ch.isspace() for ch in value) or len(value) > 1024:
            raise _invalid("must be a URL path starting with '/' (for example /health)")
        return value

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: int) -> int:
        if value not in FARGATE_MEMORY_BY_CPU:
            allowed = ", ".join(str(cpu) for cpu in FARGATE_MEMORY_BY_CPU)
            raise _invalid(f"is not a Fargate task size; allowed cpu units: {allowed}")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: int, info: ValidationInfo) -> int:
        cpu = info.data.get("cpu")
        if cpu is None:  # cpu itself was invalid and is reported on its own
            return value
        low, high, step = FARGATE_MEMORY_BY_CPU[cpu]
        allowed = value in (512, 1024, 2048) if cpu == 256 else (low <= value <= high)
        if not allowed or (value - low) % step:
            choices = "512, 1024, 2048" if cpu == 256 else f"{low}-{high} in steps of {step}"
            raise _invalid(
                f"is not valid with cpu {cpu} on Fargate; allowed memory (MiB): {choices}"
            )
        return value

    @field_validator("max_count")
    @classmethod
    def _max_count(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_count")
        if low is not None and value < low:
            raise _invalid(f"must be at least minCount ({low})")
        return value

    @field_validator("desired_count")
    @classmethod
    def _desired_count(cls, value: int, info: ValidationInfo) -> int:
        low, high = info.data.get("min_count"), info.data.get("max_count")
        if low is not None and high is not None and not low <= value <= high:
            raise _invalid(f"must be between minCount ({low}) and maxCount ({high})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "ServiceSettings":
        if self.image is not None and self.build is not None:
            raise _invalid("set either image or build, not both", key="image", given=self.image)
        if self.spot and self.cpu_architecture == "ARM64":
            raise _invalid(
                "Fargate Spot runs X86_64 tasks only; set cpuArchitecture: X86_64 or spot: false",
                key="spot",
                given=True,
            )
        if self.scaling.requests_per_target is not None and self.deployment.strategy != "rolling":
            raise _invalid(
                "ALBRequestCountPerTarget scaling follows one target group, but the "
                f"{self.deployment.strategy} strategy alternates two; use it with rolling only",
                key="scaling.requestsPerTarget",
                given=self.scaling.requests_per_target,
            )
        return self

    @property
    def names(self) -> ServiceNames:
        if self._names is None:
            raise RuntimeError("service names are resolved by StackSettings validation")
        return self._names

    @property
    def build_source(self) -> BuildSettings | None:
        """What to build, or None when the service runs an existing image."""
        return None if self.image is not None else (self.build or BuildSettings())

    def _resolve_names(
        self, environment: str, network: NetworkSettings, registry: RegistrySettings
    ) -> ServiceNames:
        """Names of resources AWS replaces (rather than updates) on some changes carry those
        causes, so a replacement, created before the old resource is deleted, never asks for a
        name the old one still holds: target groups carry the port and VPC (the seed's port
        8000 in the default VPC adds nothing), the repository its encryption (AES256 adds
        nothing)."""
        suffix = "" if environment == PRODUCTION else f"-{environment}"
        family = self.task_family or f"app-{self.name}-task{suffix}"
        target_group = self.target_group_name or f"app-{self.name}-target-group{suffix}"
        vpc = network.mode if network.mode == "default" else f"dedicated {network.cidr_block}"
        causes = "" if (self.port, vpc) == (PORT, "default") else f"{self.port} {vpc}"
        repository = self.repository_name or f"my-application-{self.name}{suffix}"
        return ServiceNames(
            service=self.service_name or f"{self.name}-{environment}-service",
            task_family=family,
            container=self.container_name or f"app-{self.name}-container",
            repository=repository if registry.encryption == "AES256" else f"{repository}-kms",
            target_group=_with_causes(target_group, causes),
            alternate_target_group=_with_causes(target_group, causes, "-alt"),
            log_group=f"/ecs/{family}",
        )


class StackSettings(_Settings):
    environment: str = Field(max_length=20)
    """Environment name used in resource names; Pulumi.<stack>.yaml sets it (default: stack)."""
    region: str
    """From `aws:region`; the AWS provider deploys there."""
    image: str | None = None
    """The image the first service runs, overriding its `image`/`build`. The automation
    service sets this key to deploy a given version."""
    app_version: str | None = Field(default=None, min_length=1)
    """APP_VERSION seen by the app; default: the image's tag or digest."""
    preflight_checks: bool = True
    """Check for AWS credentials and Docker before a real deploy (infra/preflight.py)."""
    log_retention_days: int = 30
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    load_balancer: LoadBalancerSettings = Field(default_factory=LoadBalancerSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    services: list[ServiceSettings] = Field(default_factory=lambda: [ServiceSettings()])

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise _invalid(
                "must be lowercase letters, digits and single hyphens, starting a letter"
            )
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.fullmatch(value):
            raise _invalid("is not an AWS region name (for example us-east-1)")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return _check_image(value)

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            allowed = ", ".join(str(days) for days in LOG_RETENTION_DAYS)
            raise _invalid(f"is not a CloudWatch Logs retention period; allowed days: {allowed}")
        return value

    @field_validator("services")
    @classmethod
    def _services(cls, value: list[ServiceSettings]) -> list[ServiceSettings]:
        if not value:
            raise _invalid("must list at least one service")
        seen: set[str] = set()
        for index, service in enumerate(value):
            if service.name in seen:
                raise _invalid(
                    "is used by two services; service names must be unique",
                    key=f"[{index}].name",
                    given=service.name,
                )
            seen.add(service.name)
            if index > 0 and not service.routing.has_conditions:
                raise _invalid(
                    "needs pathPatterns or hostHeaders: only the first service receives "
                    "the requests no rule matches",
                    key=f"[{index}].routing",
                )
        return value

    @model_validator(mode="after")
    def _resolve(self) -> "StackSettings":
        if self.image is not None:
            first = self.services[0]
            first.image, first.build = self.image, None
        priorities: dict[int, int] = {}
        for index, service in enumerate(self.services):
            service._names = service._resolve_names(self.environment, self.network, self.registry)
            _check_service_names(
                index, service.names, alternate=service.deployment.strategy != "rolling"
            )
            if service.routing.has_conditions:
                priority = service.routing.priority or 100 * (index + 1)
                if priority in priorities:
                    raise _invalid(
                        f"is also used by services[{priorities[priority]}]; "
                        "listener rule priorities must be unique",
                        key=f"services[{index}].routing.priority",
                        given=priority,
                    )
                priorities[priority] = index
        _check_elb_name("loadBalancer.name", self.load_balancer_name)
        _check_ecs_name("cluster.name", self.cluster_name)
        monitoring = self.monitoring
        if self.environment == PRODUCTION and not (
            monitoring.alarm_emails or monitoring.alarm_topic_arn
        ):
            raise _invalid(
                "production alarms must reach someone: set monitoring.alarmEmails (a list of "
                "addresses) or monitoring.alarmTopicArn (an existing SNS topic ARN)",
                key="monitoring",
            )
        return self

    @property
    def cluster_name(self) -> str:
        return self.cluster.name or f"{self.environment}-app-cluster"

    @property
    def load_balancer_name(self) -> str:
        return self.load_balancer.name or f"app-{self.environment}-lb"

    @property
    def https(self) -> bool:
        return self.load_balancer.certificate_arn is not None

    @property
    def access_logs(self) -> bool:
        enabled = self.load_balancer.access_logs.enabled
        return self.environment == PRODUCTION if enabled is None else enabled


def _check_image(value: str | None) -> str | None:
    if value is not None:
        try:
            parse_image_reference(value)
        except InvalidImageReference as error:
            raise _invalid(str(error)) from None
    return value


def _with_causes(name: str, causes: str, tail: str = "") -> str:
    """`name` + `tail`; with `causes`, a short hash of them goes before `tail` and `name` is
    shortened to keep ELB's 32 characters (the hash keeps it distinct)."""
    if not causes:
        return f"{name}{tail}"
    tail = f"-{hashlib.sha256(causes.encode()).hexdigest()[:6]}{tail}"
    return f"{name[: ELB_NAME_LIMIT - len(tail)].rstrip('-')}{tail}"


def rule_priority(settings: StackSettings, index: int) -> int:
    """The listener rule priority of `settings.services[index]` (validated unique)."""
    return settings.services[index].routing.priority or 100 * (index + 1)


def _check_service_names(index: int, names: ServiceNames, *, alternate: bool) -> None:
    prefix = f"services[{index}]"
    _check_ecs_name(f"{prefix}.serviceName", names.service)
    _check_ecs_name(f"{prefix}.taskFamily", names.task_family)
    _check_ecs_name(f"{prefix}.containerName", names.container)
    _check_elb_name(f"{prefix}.targetGroupName", names.target_group)
    if alternate:
        _check_elb_name(f"{prefix}.targetGroupName", names.alternate_target_group, alternate=True)
    if not _ECR_NAME.fullmatch(names.repository) or len(names.repository) > 256:
        raise _invalid(
            "is not a valid ECR repository name (lowercase letters, digits, '.', '_', '-', '/')",
            key=f"{prefix}.repositoryName",
            given=names.repository,
        )


def _check_elb_name(key: str, name: str, *, alternate: bool = False) -> None:
    limit = ELB_NAME_LIMIT
    if len(name) > limit or not _ELB_NAME.fullmatch(name):
        detail = " (this is the blue/green alternate: the name plus '-alt')" if alternate else ""
        raise _invalid(
            f"load balancer and target group names are at most {limit} letters, digits and "
            f"hyphens, not starting or ending with a hyphen{detail}",
            key=key,
            given=name,
        )


def _check_ecs_name(key: str, name: str) -> None:
    if not _ECS_NAME.fullmatch(name):
        raise _invalid(
            "is not a valid ECS name (1-255 letters, digits, '-' and '_')", key=key, given=name
        )


def load_settings() -> StackSettings:
    """Read and validate this stack's config (as `pulumi up` passes it to the program)."""
    namespace = pulumi.get_project()
    return parse_settings(
        _namespace_config(namespace),
        region=pulumi.Config("aws").get("region"),
        stack=pulumi.get_stack(),
        namespace=namespace,
    )


def parse_settings(
    raw: Mapping[str, str], *, region: str | None, stack: str, namespace: str
) -> StackSettings:
    """Validate config strings (`key -> value`, keys without namespace) into StackSettings."""
    problems: list[str] = []
    values: dict[str, Any] = {"environment": stack}
    for key, text in raw.items():
        if key == "region":
            problems.append(f"{namespace}:region: set the region as aws:region instead")
            continue
        try:
            values[key] = _decode(text)
        except json.JSONDecodeError as error:
            problems.append(f"{namespace}:{key}: is not valid YAML/JSON structure ({error.msg})")
    if not region:
        problems.append(
            "aws:region: is not set; add `aws:region: us-east-1` (or your region) "
            f"to Pulumi.{stack}.yaml"
        )
    else:
        values["region"] = region
    if not problems:
        try:
            return StackSettings.model_validate(values)
        except ValidationError as error:
            problems.extend(_describe(namespace, item) for item in error.errors())
    raise ConfigError(
        f"Invalid configuration for stack '{stack}' (Pulumi.{stack}.yaml):\n"
        + "\n".join(f"  - {problem}" for problem in problems)
    )


def _namespace_config(namespace: str) -> dict[str, str]:
    """Every `<namespace>:<key>` config value the engine passed to this program."""
    prefix = f"{namespace}:"
    merged: dict[str, Any] = {
        **pulumi.runtime.get_config_env(),
        **pulumi.runtime.config.CONFIG.get(),
    }
    return {
        key.removeprefix(prefix): str(value)
        for key, value in merged.items()
        if key.startswith(prefix)
    }


def _decode(text: str) -> Any:
    """Pulumi passes YAML maps and lists as JSON text and scalars as plain text."""
    return json.loads(text) if text.lstrip().startswith(("{", "[")) else text


def _describe(namespace: str, error: Any) -> str:
    loc: Sequence[int | str] = error["loc"]
    context: Mapping[str, Any] = error.get("ctx") or {}
    path = _render_path(loc)
    if context.get("key"):
        key = str(context["key"])
        path = f"{path}{key}" if key.startswith("[") or not path else f"{path}.{key}"
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(sorted(_allowed_keys(loc[:-1])))
        message = f"unknown key; allowed keys here: {allowed}"
    given = context["given"] if "given" in context else error.get("input")
    if isinstance(given, dict):  # a whole section (also what a missing key reports)
        return f"{namespace}:{path}: {message}"
    if isinstance(given, list) and any(isinstance(item, dict) for item in given):
        return f"{namespace}:{path}: {message}"
    return f"{namespace}:{path}: {message} (given: {given!r})"


def _render_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _allowed_keys(loc: Sequence[int | str]) -> list[str]:
    model: type[BaseModel] = StackSettings
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        if field is None:
            break
        model = _model_of(field.annotation) or model
    return [field.alias or name for name, field in model.model_fields.items() if name != "region"]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _model_of(argument)
        if found is not None:
            return found
    return None
