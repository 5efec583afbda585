"""The shared internet-facing ALB (seed: app-production-lb) and each service's target groups.

Target groups (seed: app-api-target-group) use `ip` targets on the container port, a health
check on the service's health path expecting 200, and tuned timings. What they imply for a
deploy, against AWS's defaults (interval 30 s, healthy threshold 5, unhealthy threshold 2,
deregistration delay 300 s):

| phase                                  | here (10 s, 2, 3, 30 s) | AWS defaults     |
|----------------------------------------|-------------------------|------------------|
| new task: registered -> receives load  | 2 x 10 s = 20 s         | 5 x 30 s = 150 s |
| failing task taken out of rotation     | 3 x 10 s = 30 s         | 2 x 30 s = 60 s  |
| old task drained before it is stopped  | 30 s                    | 300 s            |
| one rolling deploy, about (*)          | 60 + 20 + 30 s = ~2 min | 60 + 150 + 300 s = ~8.5 min |

(*) With maximum 200 % every replacement task starts at once, so a deploy is one round of
start (~60 s to provision, pull and boot on Fargate), health checks and draining.

Draining 30 s assumes requests finish well within 30 s (the app serves small JSON); raise
`deregistrationDelaySeconds` for long requests. The ECS health-check grace period (60 s)
only stops ECS from replacing a task on early failed checks; it does not slow any of the above.

Routing: without a certificate the HTTP listener on 80 serves traffic; with
`certificateArn` an HTTPS listener on 443 serves it and 80 redirects to 443 (301). The first
service receives every request no rule matches (the listener's default action); further
services get path/host rules. A service on a traffic-shifting strategy (blue_green, canary,
linear) is reached through a "production listener rule" forwarding to its two target groups
by weight, which ECS rewrites during a deployment (so Pulumi ignores changes to its actions).
"""

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.access_logs import AccessLogBucket
from infra.network import Network
from infra.security_groups import LoadBalancerSecurityGroup
from infra.settings import (
    CATCH_ALL_PRIORITY,
    ServiceSettings,
    StackSettings,
    rule_priority,
)


@dataclass(frozen=True)
class ServiceTargets:
    """Where the ALB sends one service's traffic."""

    target_group: aws.lb.TargetGroup
    alternate_target_group: aws.lb.TargetGroup | None
    """The second target group ECS shifts traffic to (traffic-shifting strategies only)."""
    production_rule: aws.lb.ListenerRule | None
    """The listener rule ECS rewrites while shifting (traffic-shifting strategies only)."""
    rule: aws.lb.ListenerRule | None
    """The rule that routes to the service (None: the listener's default action does)."""


class LoadBalancer(pulumi.ComponentResource):
    dns_name: pulumi.Output[str]
    arn_suffix: pulumi.Output[str]
    url: pulumi.Output[str]
    security_group: LoadBalancerSecurityGroup
    serving_listener: aws.lb.Listener
    targets: dict[str, ServiceTargets]

    def __init__(
        self,
        name: str,
        settings: StackSettings,
        network: Network,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ecs-fargate-app:infra:LoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        lb_settings = settings.load_balancer
        self.security_group = LoadBalancerSecurityGroup(
            f"{name}-sg", network.vpc_id, [80, 443] if settings.https else [80], opts=child
        )
        access_logs: AccessLogBucket | None = None
        if settings.access_logs:
            access_logs = AccessLogBucket(
                f"{name}-access-logs",
                lb_settings.access_logs,
                settings.region,
                force_destroy=not lb_settings.deletion_protection,
                opts=child,
            )
        alb = aws.lb.LoadBalancer(
            name,
            name=settings.load_balancer_name,
            internal=False,
            load_balancer_type="application",
            ip_address_type="ipv4",
            security_groups=[self.security_group.id],
            subnets=network.load_balancer_subnet_ids,
            enable_deletion_protection=lb_settings.deletion_protection,
            idle_timeout=lb_settings.idle_timeout_seconds,
            drop_invalid_header_fields=True,
            access_logs=aws.lb.LoadBalancerAccessLogsArgs(
                bucket=access_logs.bucket, prefix=access_logs.prefix, enabled=True
            )
            if access_logs is not None
            else None,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=access_logs.ready if access_logs is not None else []
            ),
        )

        groups = {
            service.name: self._target_groups(service, settings, network, child)
            for service in settings.services
        }
        first = settings.services[0]
        first_primary, first_alternate = groups[first.name]
        default_action = (
            aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=first_primary.arn)
            if first_alternate is None
            else aws.lb.ListenerDefaultActionArgs(
                type="fixed-response",
                fixed_response=aws.lb.ListenerDefaultActionFixedResponseArgs(
                    content_type="text/plain", status_code="404", message_body="Not found"
                ),
            )
        )
        if settings.https:
            self.serving_listener = aws.lb.Listener(
                f"{name}-https",
                load_balancer_arn=alb.arn,
                port=443,
                protocol="HTTPS",
                ssl_policy=lb_settings.ssl_policy,
                certificate_arn=lb_settings.certificate_arn,
                default_actions=[default_action],
                opts=child,
            )
            aws.lb.Listener(
                f"{name}-http",
                load_balancer_arn=alb.arn,
                port=80,
                protocol="HTTP",
                default_actions=[
                    aws.lb.ListenerDefaultActionArgs(
                        type="redirect",
                        redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                            protocol="HTTPS", port="443", status_code="HTTP_301"
                        ),
                    )
                ],
                opts=child,
            )
        else:
            self.serving_listener = aws.lb.Listener(
                f"{name}-http",
                load_balancer_arn=alb.arn,
                port=80,
                protocol="HTTP",
                default_actions=[default_action],
                opts=child,
            )

        self.targets = {}
        for index, service in enumerate(settings.services):
            primary, alternate = groups[service.name]
            rule = self._rule(index, service, settings, primary, alternate, child)
            self.targets[service.name] = ServiceTargets(
                target_group=primary,
                alternate_target_group=alternate,
                production_rule=rule if alternate is not None else None,
                rule=rule,
            )

        self.dns_name = alb.dns_name
        self.arn_suffix = alb.arn_suffix
        scheme = "https" if settings.https else "http"
        self.url = pulumi.Output.concat(scheme, "://", alb.dns_name)
        self.register_outputs({"dns_name": self.dns_name, "url": self.url})

    def _target_groups(
        self,
        service: ServiceSettings,
        settings: StackSettings,
        network: Network,
        child: pulumi.ResourceOptions,
    ) -> tuple[aws.lb.TargetGroup, aws.lb.TargetGroup | None]:
        health = settings.load_balancer.target_health

        def target_group(logical_name: str, name: str) -> aws.lb.TargetGroup:
            return aws.lb.TargetGroup(
                logical_name,
                name=name,
                port=service.port,
                protocol="HTTP",
                target_type="ip",
                vpc_id=network.vpc_id,
                deregistration_delay=health.deregistration_delay_seconds,
                health_check=aws.lb.TargetGroupHealthCheckArgs(
                    enabled=True,
                    path=service.health_path,
                    matcher="200",
                    protocol="HTTP",
                    port="traffic-port",
                    interval=health.interval_seconds,
                    timeout=health.timeout_seconds,
                    healthy_threshold=health.healthy_threshold,
                    unhealthy_threshold=health.unhealthy_threshold,
                ),
                opts=child,
            )

        names = service.names
        primary = target_group(f"{service.name}-target-group", names.target_group)
        if service.deployment.strategy == "rolling":
            return primary, None
        alternate = target_group(
            f"{service.name}-alternate-target-group", names.alternate_target_group
        )
        return primary, alternate

    def _rule(
        self,
        index: int,
        service: ServiceSettings,
        settings: StackSettings,
        primary: aws.lb.TargetGroup,
        alternate: aws.lb.TargetGroup | None,
        child: pulumi.ResourceOptions,
    ) -> aws.lb.ListenerRule | None:
        routing = service.routing
        if not routing.has_conditions and alternate is None:
            return None  # the first service on a rolling deploy: the default action routes
        conditions: list[aws.lb.ListenerRuleConditionArgs] = []
        if routing.path_patterns:
            conditions.append(
                aws.lb.ListenerRuleConditionArgs(
                    path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(
                        values=routing.path_patterns
                    )
                )
            )
        if routing.host_headers:
            conditions.append(
                aws.lb.ListenerRuleConditionArgs(
                    host_header=aws.lb.ListenerRuleConditionHostHeaderArgs(
                        values=routing.host_headers
                    )
                )
            )
        if not conditions:  # the first service, catching everything behind the other rules
            conditions.append(
                aws.lb.ListenerRuleConditionArgs(
                    path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=["/*"])
                )
            )
        if alternate is None:
            action = aws.lb.ListenerRuleActionArgs(type="forward", target_group_arn=primary.arn)
            options = child
        else:
            action = aws.lb.ListenerRuleActionArgs(
                type="forward",
                forward=aws.lb.ListenerRuleActionForwardArgs(
                    target_groups=[
                        aws.lb.ListenerRuleActionForwardTargetGroupArgs(
                            arn=primary.arn, weight=100
                        ),
                        aws.lb.ListenerRuleActionForwardTargetGroupArgs(
                            arn=alternate.arn, weight=0
                        ),
                    ]
                ),
            )
            # ECS moves the weights between the two groups on every deployment.
            options = pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(ignore_changes=["actions"])
            )
        return aws.lb.ListenerRule(
            f"{service.name}-listener-rule",
            listener_arn=self.serving_listener.arn,
            priority=rule_priority(settings, index)
            if routing.has_conditions
            else CATCH_ALL_PRIORITY,
            conditions=conditions,
            actions=[action],
            opts=options,
        )
