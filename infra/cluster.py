"""The ECS cluster (seed: production-app-cluster): Fargate only, Container Insights on."""

import pulumi
import pulumi_aws as aws

from infra.settings import StackSettings


class Cluster(pulumi.ComponentResource):
    """A cluster with both Fargate capacity providers attached.

    The default strategy is on-demand FARGATE; a service with `spot: true` asks for
    FARGATE_SPOT in its own strategy (X86_64 only, which settings enforce).
    """

    name: pulumi.Output[str]
    arn: pulumi.Output[str]
    capacity_providers: aws.ecs.ClusterCapacityProviders

    def __init__(
        self, name: str, settings: StackSettings, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("ecs-fargate-app:infra:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster = aws.ecs.Cluster(
            name,
            name=settings.cluster_name,
            settings=[
                aws.ecs.ClusterSettingArgs(
                    name="containerInsights", value=settings.cluster.container_insights
                )
            ],
            opts=child,
        )
        self.capacity_providers = aws.ecs.ClusterCapacityProviders(
            f"{name}-capacity-providers",
            cluster_name=cluster.name,
            capacity_providers=["FARGATE", "FARGATE_SPOT"],
            default_capacity_provider_strategies=[
                aws.ecs.ClusterCapacityProvidersDefaultCapacityProviderStrategyArgs(
                    capacity_provider="FARGATE", weight=1, base=0
                )
            ],
            opts=child,
        )
        self.name = cluster.name
        self.arn = cluster.arn
        self.register_outputs({"name": self.name})
