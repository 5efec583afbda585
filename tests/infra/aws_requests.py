"""Each recorded resource as the AWS API requests its provider sends to create it.

The provider (pulumi-aws, the Terraform AWS provider underneath) turns a resource's inputs into
one or more AWS API calls; this module does the same, by hand and independently of infra/, so
the requests can be validated against AWS's own API models (tests/infra/aws_rules.py). Field
names and shapes follow botocore's service models; values are the resolved inputs as recorded
under Pulumi's mocks. A resource type without a mapping here is an error: a new AWS type in the
stack must get one before the suite passes.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra.mock_cloud import RecordedResource


@dataclass(frozen=True)
class ApiCall:
    service: str
    """botocore's service name (ecs, elbv2, ...)."""
    operation: str
    params: dict[str, Any]


class NoRequestMapping(LookupError):
    """A resource type the stack declares but this module cannot turn into API requests."""


# Component types the program defines (no AWS request of their own; their children have).
COMPONENT_PREFIX = "ecs-fargate-app:infra:"


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _drop_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_drop_none(item) for item in value]
    return value


def _int(value: Any) -> Any:
    """The provider sends some integers it takes as strings (bake times) as numbers; a string
    that is not a whole number stays a string, and the model's type check reports it."""
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value


def _ecs_cluster(r: RecordedResource) -> list[ApiCall]:
    settings = [{"name": s["name"], "value": s["value"]} for s in r.inputs.get("settings", [])]
    return [
        ApiCall("ecs", "CreateCluster", {"clusterName": r.inputs["name"], "settings": settings})
    ]


def _ecs_capacity_providers(r: RecordedResource) -> list[ApiCall]:
    strategy = [
        _drop_none(
            {
                "capacityProvider": s["capacityProvider"],
                "weight": s.get("weight"),
                "base": s.get("base"),
            }
        )
        for s in r.inputs.get("defaultCapacityProviderStrategies", [])
    ]
    params = {
        "cluster": r.inputs["clusterName"],
        "capacityProviders": r.inputs["capacityProviders"],
        "defaultCapacityProviderStrategy": strategy,
    }
    return [ApiCall("ecs", "PutClusterCapacityProviders", params)]


def _ecs_task_definition(r: RecordedResource) -> list[ApiCall]:
    i = r.inputs
    params = {
        "family": i["family"],
        "taskRoleArn": i.get("taskRoleArn"),
        "executionRoleArn": i.get("executionRoleArn"),
        "networkMode": i.get("networkMode"),
        "containerDefinitions": json.loads(i["containerDefinitions"]),
        "volumes": [{"name": volume["name"]} for volume in i.get("volumes", [])],
        "requiresCompatibilities": i.get("requiresCompatibilities"),
        "cpu": i.get("cpu"),
        "memory": i.get("memory"),
        "runtimePlatform": i.get("runtimePlatform"),
    }
    return [ApiCall("ecs", "RegisterTaskDefinition", _drop_none(params))]


def _ecs_service(r: RecordedResource) -> list[ApiCall]:
    i = r.inputs
    configuration = dict(i.get("deploymentConfiguration") or {})
    if "bakeTimeInMinutes" in configuration:
        configuration["bakeTimeInMinutes"] = _int(configuration["bakeTimeInMinutes"])
    if "canaryConfiguration" in configuration:
        canary = dict(configuration["canaryConfiguration"])
        canary["canaryBakeTimeInMinutes"] = _int(canary.get("canaryBakeTimeInMinutes"))
        configuration["canaryConfiguration"] = canary
    if "linearConfiguration" in configuration:
        linear = dict(configuration["linearConfiguration"])
        linear["stepBakeTimeInMinutes"] = _int(linear.get("stepBakeTimeInMinutes"))
        configuration["linearConfiguration"] = linear
    configuration.update(
        {
            "deploymentCircuitBreaker": i.get("deploymentCircuitBreaker"),
            "maximumPercent": i.get("deploymentMaximumPercent"),
            "minimumHealthyPercent": i.get("deploymentMinimumHealthyPercent"),
            "alarms": i.get("alarms"),
        }
    )
    network = i.get("networkConfiguration") or {}
    params = {
        "cluster": i.get("cluster"),
        "serviceName": i["name"],
        "taskDefinition": i.get("taskDefinition"),
        "loadBalancers": i.get("loadBalancers"),
        "desiredCount": i.get("desiredCount"),
        "launchType": i.get("launchType"),
        "capacityProviderStrategy": i.get("capacityProviderStrategies"),
        "platformVersion": i.get("platformVersion"),
        "deploymentConfiguration": configuration,
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": network.get("subnets"),
                "securityGroups": network.get("securityGroups"),
                "assignPublicIp": "ENABLED" if network.get("assignPublicIp") else "DISABLED",
            }
        },
        "healthCheckGracePeriodSeconds": i.get("healthCheckGracePeriodSeconds"),
        "enableECSManagedTags": i.get("enableEcsManagedTags"),
        "propagateTags": i.get("propagateTags"),
        "enableExecuteCommand": i.get("enableExecuteCommand"),
    }
    return [ApiCall("ecs", "CreateService", _drop_none(params))]


def _elb_action(action: dict[str, Any]) -> dict[str, Any]:
    forward = action.get("forward")
    redirect = action.get("redirect")
    fixed = action.get("fixedResponse")
    request: dict[str, Any] = _drop_none(
        {
            "Type": action["type"],
            "TargetGroupArn": action.get("targetGroupArn"),
            "ForwardConfig": {
                "TargetGroups": [
                    {"TargetGroupArn": group["arn"], "Weight": group.get("weight")}
                    for group in forward["targetGroups"]
                ]
            }
            if forward
            else None,
            "RedirectConfig": {
                "Protocol": redirect.get("protocol"),
                "Port": redirect.get("port"),
                "StatusCode": redirect["statusCode"],
            }
            if redirect
            else None,
            "FixedResponseConfig": {
                "ContentType": fixed.get("contentType"),
                "StatusCode": fixed["statusCode"],
                "MessageBody": fixed.get("messageBody"),
            }
            if fixed
            else None,
        }
    )
    return request


def _bool_text(value: Any) -> str:
    return "true" if value else "false"


def _elb_load_balancer(r: RecordedResource) -> list[ApiCall]:
    i = r.inputs
    create = {
        "Name": i["name"],
        "Subnets": i.get("subnets"),
        "SecurityGroups": i.get("securityGroups"),
        "Scheme": "internal" if i.get("internal") else "internet-facing",
        "Type": i.get("loadBalancerType"),
        "IpAddressType": i.get("ipAddressType"),
    }
    attributes = [
        {
            "Key": "deletion_protection.enabled",
            "Value": _bool_text(i.get("enableDeletionProtection")),
        },
        {"Key": "idle_timeout.timeout_seconds", "Value": str(i.get("idleTimeout", 60))},
        {
            "Key": "routing.http.drop_invalid_header_fields.enabled",
            "Value": _bool_text(i.get("dropInvalidHeaderFields")),
        },
    ]
    logs = i.get("accessLogs")
    if logs:
        attributes += [
            {"Key": "access_logs.s3.enabled", "Value": _bool_text(logs.get("enabled"))},
            {"Key": "access_logs.s3.bucket", "Value": logs["bucket"]},
            {"Key": "access_logs.s3.prefix", "Value": logs.get("prefix", "")},
        ]
    modify = {"LoadBalancerArn": r.outputs["arn"], "Attributes": attributes}
    return [
        ApiCall("elbv2", "CreateLoadBalancer", _drop_none(create)),
        ApiCall("elbv2", "ModifyLoadBalancerAttributes", modify),
    ]


def _elb_target_group(r: RecordedResource) -> list[ApiCall]:
    i = r.inputs
    health = i.get("healthCheck") or {}
    create = {
        "Name": i["name"],
        "Protocol": i.get("protocol"),
        "Port": i.get("port"),
        "VpcId": i.get("vpcId"),
        "HealthCheckProtocol": health.get("protocol"),
        "HealthCheckPort": health.get("port"),
        "HealthCheckEnabled": health.get("enabled"),
        "HealthCheckPath": health.get("path"),
        "HealthCheckIntervalSeconds": health.get("interval"),
        "HealthCheckTimeoutSeconds": health.get("timeout"),
        "HealthyThresholdCount": health.get("healthyThreshold"),
        "UnhealthyThresholdCount": health.get("unhealthyThreshold"),
        "Matcher": {"HttpCode": health["matcher"]} if "matcher" in health else None,
        "TargetType": i.get("targetType"),
    }
    calls = [ApiCall("elbv2", "CreateTargetGroup", _drop_none(create))]
    if "deregistrationDelay" in i:
        attributes = [
            {"Key": "deregistration_delay.timeout_seconds", "Value": str(i["deregistrationDelay"])}
        ]
        calls.append(
            ApiCall(
                "elbv2",
                "ModifyTargetGroupAttributes",
                {"TargetGroupArn": r.outputs["arn"], "Attributes": attributes},
            )
        )
    return calls


def _elb_listener(r: RecordedResource) -> list[ApiCall]:
    i = r.inputs
    params = {
        "LoadBalancerArn": i["loadBalancerArn"],
        "Protocol": i.get("protocol"),
        "Port": i.get("port"),
        "SslPolicy": i.get("sslPolicy"),
        "Certificates": [{"CertificateArn": i["certificateArn"]}]
        if "certificateArn" in i
        else None,
        "DefaultActions": [_elb_action(action) for action in i.get("defaultActions", [])],
    }
    return [ApiCall("elbv2", "CreateListener", _drop_none(params))]


def _elb_rule(r: RecordedResource) -> list[ApiCall]:
    i = r.inputs
    conditions = []
    for condition in i.get("conditions", []):
        if "pathPattern" in condition:
            conditions.append(
                {
                    "Field": "path-pattern",
                    "PathPatternConfig": {"Values": condition["pathPattern"]["values"]},
                }
            )
        if "hostHeader" in condition:
            conditions.append(
                {
                    "Field": "host-header",
                    "HostHeaderConfig": {"Values": condition["hostHeader"]["values"]},
                }
            )
    params = {
        "ListenerArn": i["listenerArn"],
        "Conditions": conditions,
        "Priority": i.get("priority"),
        "Actions": [_elb_action(action) for action in i.get("actions", [])],
    }
    return [ApiCall("elbv2", "CreateRule", _drop_none(params))]


def _ec2_security_group(r: RecordedResource) -> list[ApiCall]:
    params = {
        "Description": r.inputs.get("description", "Managed by Pulumi"),
        "GroupName": r.outputs["name"],
        "VpcId": r.inputs.get("vpcId"),
    }
    return [ApiCall("ec2", "CreateSecurityGroup", _drop_none(params))]


def _ec2_rule(operation: str) -> Callable[[RecordedResource], list[ApiCall]]:
    def calls(r: RecordedResource) -> list[ApiCall]:
        i = r.inputs
        permission = {
            "IpProtocol": i["ipProtocol"],
            "FromPort": i.get("fromPort"),
            "ToPort": i.get("toPort"),
            "IpRanges": [{"CidrIp": i["cidrIpv4"], "Description": i.get("description")}]
            if "cidrIpv4" in i
            else None,
            "UserIdGroupPairs": [
                {"GroupId": i["referencedSecurityGroupId"], "Description": i.get("description")}
            ]
            if "referencedSecurityGroupId" in i
            else None,
        }
        params = {"GroupId": i["securityGroupId"], "IpPermissions": [_drop_none(permission)]}
        return [ApiCall("ec2", operation, params)]

    return calls


def _awsx_vpc(r: RecordedResource) -> list[ApiCall]:
    return [ApiCall("ec2", "CreateVpc", {"CidrBlock": r.inputs["cidrBlock"]})]


def _awsx_default_vpc(r: RecordedResource) -> list[ApiCall]:
    filters = [{"Name": "is-default", "Values": ["true"]}]
    return [ApiCall("ec2", "DescribeVpcs", {"Filters": filters})]


def _iam_role(r: RecordedResource) -> list[ApiCall]:
    params = {
        "RoleName": r.outputs["name"],
        "AssumeRolePolicyDocument": r.inputs["assumeRolePolicy"],
        "Description": r.inputs.get("description"),
    }
    return [ApiCall("iam", "CreateRole", _drop_none(params))]


def _iam_attachment(r: RecordedResource) -> list[ApiCall]:
    params = {"RoleName": r.inputs["role"], "PolicyArn": r.inputs["policyArn"]}
    return [ApiCall("iam", "AttachRolePolicy", params)]


def _log_group(r: RecordedResource) -> list[ApiCall]:
    name = r.inputs["name"]
    calls = [ApiCall("logs", "CreateLogGroup", {"logGroupName": name})]
    if "retentionInDays" in r.inputs:
        retention = {"logGroupName": name, "retentionInDays": r.inputs["retentionInDays"]}
        calls.append(ApiCall("logs", "PutRetentionPolicy", retention))
    return calls


def _dimensions(dimensions: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    if dimensions is None:
        return None
    return [{"Name": name, "Value": value} for name, value in dimensions.items()]


def _metric_alarm(r: RecordedResource) -> list[ApiCall]:
    i = r.inputs
    metrics = None
    if "metricQueries" in i:
        metrics = [
            _drop_none(
                {
                    "Id": query["id"],
                    "Expression": query.get("expression"),
                    "Label": query.get("label"),
                    "ReturnData": query.get("returnData"),
                    "MetricStat": {
                        "Metric": {
                            "Namespace": query["metric"]["namespace"],
                            "MetricName": query["metric"]["metricName"],
                            "Dimensions": _dimensions(query["metric"].get("dimensions")),
                        },
                        "Period": query["metric"]["period"],
                        "Stat": query["metric"]["stat"],
                    }
                    if "metric" in query
                    else None,
                }
            )
            for query in i["metricQueries"]
        ]
    params = {
        "AlarmName": i["name"],
        "AlarmDescription": i.get("alarmDescription"),
        "OKActions": i.get("okActions"),
        "AlarmActions": i.get("alarmActions"),
        "MetricName": i.get("metricName"),
        "Namespace": i.get("namespace"),
        "Statistic": i.get("statistic"),
        "ExtendedStatistic": i.get("extendedStatistic"),
        "Dimensions": _dimensions(i.get("dimensions")),
        "Period": i.get("period"),
        "EvaluationPeriods": i.get("evaluationPeriods"),
        "DatapointsToAlarm": i.get("datapointsToAlarm"),
        "Threshold": i.get("threshold"),
        "ComparisonOperator": i.get("comparisonOperator"),
        "TreatMissingData": i.get("treatMissingData"),
        "Metrics": metrics,
    }
    return [ApiCall("cloudwatch", "PutMetricAlarm", _drop_none(params))]


def _dashboard(r: RecordedResource) -> list[ApiCall]:
    params = {
        "DashboardName": r.inputs["dashboardName"],
        "DashboardBody": r.inputs["dashboardBody"],
    }
    return [ApiCall("cloudwatch", "PutDashboard", params)]


def _sns_topic(r: RecordedResource) -> list[ApiCall]:
    return [ApiCall("sns", "CreateTopic", {"Name": r.inputs.get("name", r.outputs["name"])})]


def _sns_subscription(r: RecordedResource) -> list[ApiCall]:
    i = r.inputs
    params = {"TopicArn": i["topic"], "Protocol": i["protocol"], "Endpoint": i["endpoint"]}
    return [ApiCall("sns", "Subscribe", params)]


def _scalable_target(r: RecordedResource) -> list[ApiCall]:
    i = r.inputs
    params = {
        "ServiceNamespace": i["serviceNamespace"],
        "ResourceId": i["resourceId"],
        "ScalableDimension": i["scalableDimension"],
        "MinCapacity": i.get("minCapacity"),
        "MaxCapacity": i.get("maxCapacity"),
    }
    return [ApiCall("application-autoscaling", "RegisterScalableTarget", _drop_none(params))]


def _scaling_policy(r: RecordedResource) -> list[ApiCall]:
    i = r.inputs
    tracking = i.get("targetTrackingScalingPolicyConfiguration") or {}
    predefined = tracking.get("predefinedMetricSpecification") or {}
    params = {
        "PolicyName": i["name"],
        "ServiceNamespace": i["serviceNamespace"],
        "ResourceId": i["resourceId"],
        "ScalableDimension": i["scalableDimension"],
        "PolicyType": i.get("policyType"),
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": tracking.get("targetValue"),
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": predefined.get("predefinedMetricType"),
                "ResourceLabel": predefined.get("resourceLabel"),
            },
            "ScaleOutCooldown": tracking.get("scaleOutCooldown"),
            "ScaleInCooldown": tracking.get("scaleInCooldown"),
        },
    }
    return [ApiCall("application-autoscaling", "PutScalingPolicy", _drop_none(params))]


def _ecr_repository(r: RecordedResource) -> list[ApiCall]:
    i = r.inputs
    encryption = (i.get("encryptionConfigurations") or [{}])[0]
    params = {
        "repositoryName": i["name"],
        "imageTagMutability": i.get("imageTagMutability"),
        "imageScanningConfiguration": i.get("imageScanningConfiguration"),
        "encryptionConfiguration": {"encryptionType": encryption["encryptionType"]}
        if encryption
        else None,
    }
    return [ApiCall("ecr", "CreateRepository", _drop_none(params))]


def _ecr_lifecycle(r: RecordedResource) -> list[ApiCall]:
    params = {"repositoryName": r.inputs["repository"], "lifecyclePolicyText": r.inputs["policy"]}
    return [ApiCall("ecr", "PutLifecyclePolicy", params)]


def _docker_image(r: RecordedResource) -> list[ApiCall]:
    """The push of the built image: ECR's PutImage with the push tag."""
    repository_url, tag = str(r.inputs["imageName"]).rsplit(":", 1)
    repository = repository_url.split("/", 1)[1]
    params = {"repositoryName": repository, "imageManifest": "{}", "imageTag": tag}
    return [ApiCall("ecr", "PutImage", params)]


def _s3_bucket(r: RecordedResource) -> list[ApiCall]:
    return [ApiCall("s3", "CreateBucket", {"Bucket": r.outputs["bucket"]})]


def _s3_public_access(r: RecordedResource) -> list[ApiCall]:
    i = r.inputs
    configuration = {
        key: i.get(field)
        for key, field in (
            ("BlockPublicAcls", "blockPublicAcls"),
            ("IgnorePublicAcls", "ignorePublicAcls"),
            ("BlockPublicPolicy", "blockPublicPolicy"),
            ("RestrictPublicBuckets", "restrictPublicBuckets"),
        )
    }
    params = {"Bucket": i["bucket"], "PublicAccessBlockConfiguration": _drop_none(configuration)}
    return [ApiCall("s3", "PutPublicAccessBlock", params)]


def _s3_encryption(r: RecordedResource) -> list[ApiCall]:
    rules = [
        {
            "ApplyServerSideEncryptionByDefault": _drop_none(
                {
                    "SSEAlgorithm": rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"],
                    "KMSMasterKeyID": rule["applyServerSideEncryptionByDefault"].get(
                        "kmsMasterKeyId"
                    ),
                }
            )
        }
        for rule in r.inputs["rules"]
    ]
    params = {"Bucket": r.inputs["bucket"], "ServerSideEncryptionConfiguration": {"Rules": rules}}
    return [ApiCall("s3", "PutBucketEncryption", params)]


def _s3_lifecycle(r: RecordedResource) -> list[ApiCall]:
    rules = [
        _drop_none(
            {
                "ID": rule.get("id"),
                "Status": rule["status"],
                "Filter": {"Prefix": rule["filter"].get("prefix")} if "filter" in rule else None,
                "Expiration": {"Days": rule["expiration"].get("days")}
                if "expiration" in rule
                else None,
            }
        )
        for rule in r.inputs["rules"]
    ]
    params = {"Bucket": r.inputs["bucket"], "LifecycleConfiguration": {"Rules": rules}}
    return [ApiCall("s3", "PutBucketLifecycleConfiguration", params)]


def _s3_policy(r: RecordedResource) -> list[ApiCall]:
    params = {"Bucket": r.inputs["bucket"], "Policy": r.inputs["policy"]}
    return [ApiCall("s3", "PutBucketPolicy", params)]


MAPPINGS: dict[str, Callable[[RecordedResource], list[ApiCall]]] = {
    "awsx:ec2:DefaultVpc": _awsx_default_vpc,
    "awsx:ec2:Vpc": _awsx_vpc,
    "aws:ecs/cluster:Cluster": _ecs_cluster,
    "aws:ecs/clusterCapacityProviders:ClusterCapacityProviders": _ecs_capacity_providers,
    "aws:ecs/taskDefinition:TaskDefinition": _ecs_task_definition,
    "aws:ecs/service:Service": _ecs_service,
    "aws:lb/loadBalancer:LoadBalancer": _elb_load_balancer,
    "aws:lb/targetGroup:TargetGroup": _elb_target_group,
    "aws:lb/listener:Listener": _elb_listener,
    "aws:lb/listenerRule:ListenerRule": _elb_rule,
    "aws:ec2/securityGroup:SecurityGroup": _ec2_security_group,
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _ec2_rule(
        "AuthorizeSecurityGroupIngress"
    ),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": _ec2_rule(
        "AuthorizeSecurityGroupEgress"
    ),
    "aws:iam/role:Role": _iam_role,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": _iam_attachment,
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:cloudwatch/metricAlarm:MetricAlarm": _metric_alarm,
    "aws:cloudwatch/dashboard:Dashboard": _dashboard,
    "aws:sns/topic:Topic": _sns_topic,
    "aws:sns/topicSubscription:TopicSubscription": _sns_subscription,
    "aws:appautoscaling/target:Target": _scalable_target,
    "aws:appautoscaling/policy:Policy": _scaling_policy,
    "aws:ecr/repository:Repository": _ecr_repository,
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": _ecr_lifecycle,
    "docker:index/image:Image": _docker_image,
    "aws:s3/bucket:Bucket": _s3_bucket,
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": _s3_public_access,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        _s3_encryption
    ),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": _s3_lifecycle,
    "aws:s3/bucketPolicy:BucketPolicy": _s3_policy,
}


def api_calls(resource: RecordedResource) -> list[ApiCall]:
    """The requests that create `resource`; [] for the program's own components."""
    if resource.type.startswith(COMPONENT_PREFIX):
        return []
    mapping = MAPPINGS.get(resource.type)
    if mapping is None:
        raise NoRequestMapping(
            f"{resource.type} ({resource.name}) has no AWS request mapping in "
            "tests/infra/aws_requests.py; add one so its API request is validated"
        )
    return mapping(resource)
