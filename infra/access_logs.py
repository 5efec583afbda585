"""The S3 bucket the ALB writes its access logs to (on by default in production).

AWS's requirements (Elastic Load Balancing guide, "Enable access logs for your Application Load
Balancer"): the bucket is in the load balancer's region, encrypted with SSE-S3 (the only
encryption log delivery supports), and its policy lets Elastic Load Balancing put objects under
`<prefix>/AWSLogs/<account>/`: the region's ELB account for regions available before August
2022, the `logdelivery.elasticloadbalancing.amazonaws.com` service principal in the others.
Public access is blocked and log objects expire after `expiryDays`.
"""

import json
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from infra.settings import AccessLogSettings

# Elastic Load Balancing's account per region (regions available before August 2022).
ELB_ACCOUNT_BY_REGION: Final[dict[str, str]] = {
    "us-east-1": "127311923021",
    "us-east-2": "033677994240",
    "us-west-1": "027434742980",
    "us-west-2": "797873946194",
    "af-south-1": "098369216593",
    "ap-east-1": "754344448648",
    "ap-southeast-3": "589379963580",
    "ap-south-1": "718504428378",
    "ap-northeast-3": "383597477331",
    "ap-northeast-2": "600734575887",
    "ap-southeast-1": "114774131450",
    "ap-southeast-2": "783225319266",
    "ap-northeast-1": "582318560864",
    "ca-central-1": "985666609251",
    "eu-central-1": "054676820928",
    "eu-west-1": "156460612806",
    "eu-west-2": "652711504416",
    "eu-south-1": "635631232127",
    "eu-west-3": "009996457667",
    "eu-north-1": "897822967062",
    "me-south-1": "076674570225",
    "sa-east-1": "507241528517",
}
LOG_DELIVERY_PRINCIPAL: Final = "logdelivery.elasticloadbalancing.amazonaws.com"


def log_delivery_policy(bucket: str, prefix: str, account: str, region: str) -> str:
    """The bucket policy AWS documents for ELB access-log delivery into `bucket`."""
    elb_account = ELB_ACCOUNT_BY_REGION.get(region)
    principal: dict[str, Any] = (
        {"AWS": f"arn:aws:iam::{elb_account}:root"}
        if elb_account is not None
        else {"Service": LOG_DELIVERY_PRINCIPAL}
    )
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ElbAccessLogDelivery",
                    "Effect": "Allow",
                    "Principal": principal,
                    "Action": "s3:PutObject",
                    "Resource": f"arn:aws:s3:::{bucket}/{prefix}/AWSLogs/{account}/*",
                }
            ],
        }
    )


class AccessLogBucket(pulumi.ComponentResource):
    """`bucket` and `prefix` go into the ALB's access_logs; `ready` is what the ALB waits for
    (ELB checks that it may write when access logs are turned on)."""

    bucket: pulumi.Output[str]
    prefix: str
    ready: list[pulumi.Resource]

    def __init__(
        self,
        name: str,
        settings: AccessLogSettings,
        region: str,
        *,
        force_destroy: bool,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ecs-fargate-app:infra:AccessLogBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(name, force_destroy=force_destroy, opts=child)
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"
                    )
                )
            ],
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-expiry",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-access-logs",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(
                        prefix=f"{settings.prefix}/"
                    ),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                        days=settings.expiry_days
                    ),
                )
            ],
            opts=child,
        )
        account = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id
        policy = aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket.id,
            policy=pulumi.Output.all(bucket.bucket, account).apply(
                lambda parts: log_delivery_policy(parts[0], settings.prefix, parts[1], region)
            ),
            # S3 refuses a policy while a public-access change is still being applied.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]),
        )
        self.bucket = bucket.bucket
        self.prefix = settings.prefix
        self.ready = [policy, encryption]
        self.register_outputs({"bucket": self.bucket})
