"""The components as another program would use them: each hands the options it is given to
Pulumi (a component passes `opts` to `ComponentResource.__init__`, which is how a caller's
parent, providers, protect or aliases reach it and, through it, its children). __main__.py
passes none, so only a program of its own can tell."""

import pulumi
import pulumi_aws as aws

from infra.cluster import Cluster
from infra.image import ServiceImage
from infra.load_balancer import LoadBalancer
from infra.mock_cloud import evaluate
from infra.monitoring import Monitoring
from infra.network import Network
from infra.registry import Registry
from infra.scaling import ServiceScaling
from infra.service import FargateService, FargateServiceProps
from infra.settings import load_settings
from tests.infra.stack_template import StackTemplate, Synth, stack_config_text

OUTER = "outer"


def nested_program(providers: dict[str, pulumi.ProviderResource] | None = None) -> None:
    """__main__.py's components (one service), each given a parent of the caller's (which
    holds the caller's `providers`, when given)."""
    outer = pulumi.ComponentResource(
        "tests:index:Outer", OUTER, opts=pulumi.ResourceOptions(providers=providers)
    )
    opts = pulumi.ResourceOptions(parent=outer)
    settings = load_settings()
    service = settings.services[0]
    network = Network("network", settings.network, opts)
    cluster = Cluster("cluster", settings, opts)
    load_balancer = LoadBalancer("load-balancer", settings, network, opts)
    monitoring = Monitoring("monitoring", settings, load_balancer, opts)
    registry = Registry(
        f"{service.name}-registry", service.names.repository, settings.registry, opts
    )
    image = ServiceImage(f"{service.name}-image", service, registry, opts)
    fargate = FargateService(
        service.name,
        FargateServiceProps(
            settings=settings,
            service=service,
            cluster=cluster,
            network=network,
            load_balancer=load_balancer,
            image=image,
            deployment_alarm_names=monitoring.deployment_alarm_names[service.name],
        ),
        opts,
    )
    ServiceScaling(
        f"{service.name}-scaling",
        service,
        cluster.name,
        fargate.service_name,
        request_count_label=pulumi.Output.concat(
            load_balancer.arn_suffix,
            "/",
            load_balancer.targets[service.name].target_group.arn_suffix,
        ),
        opts=opts,
    )


def test_every_component_nests_its_resources_under_the_parent_it_is_given(
    synth: Synth,
) -> None:
    nested = StackTemplate(evaluate("prod", stack_config_text("prod"), program=nested_program))
    resources = [r for r in nested.evaluation.resources if r.name != OUTER]
    outside = [f"{r.type} {r.name}" for r in resources if r.path[0] != OUTER]
    assert not outside, f"not under the caller's parent: {outside}"
    # Not vacuous: the same resources as the program's own stack, one level down.
    assert {(r.type, r.path) for r in resources} == {
        (r.type, (OUTER, *r.path)) for r in synth("prod").evaluation.resources
    }


def test_lookups_ask_the_provider_the_caller_gives() -> None:
    """A caller that deploys through its own provider (another account or region) gets the
    account id and the ECR token of that provider, not of the default one."""

    def program() -> None:
        nested_program(providers={"aws": aws.Provider("elsewhere", region="eu-west-1")})

    invokes = evaluate("prod", stack_config_text("prod"), program=program).invokes
    assert {invoke.token for invoke in invokes} == {
        "aws:index/getCallerIdentity:getCallerIdentity",
        "aws:ecr/getAuthorizationToken:getAuthorizationToken",
    }
    strays = [invoke for invoke in invokes if "::elsewhere::" not in invoke.provider]
    assert not strays, strays
