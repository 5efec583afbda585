"""The ALB log bucket policy names the principal AWS documents for the region ("Enable access
logs for your Application Load Balancer", step 2: bucket policy)."""

import json

from infra.access_logs import log_delivery_policy


def statement(region: str) -> dict[str, object]:
    policy = json.loads(log_delivery_policy("logs-bucket", "alb", "123456789012", region))
    (only,) = policy["Statement"]
    assert isinstance(only, dict)
    return only


def test_an_older_region_trusts_its_elb_account() -> None:
    assert statement("us-east-1")["Principal"] == {"AWS": "arn:aws:iam::127311923021:root"}


def test_a_region_opened_since_august_2022_trusts_the_log_delivery_service() -> None:
    only = statement("ap-southeast-4")  # Melbourne, opened January 2023
    assert only["Principal"] == {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}
    assert only["Action"] == "s3:PutObject"
    assert only["Resource"] == "arn:aws:s3:::logs-bucket/alb/AWSLogs/123456789012/*"
