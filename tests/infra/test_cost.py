"""Monthly cost estimate at documented us-east-1 prices, at min and max task counts."""

import json

import pytest

from infra.cost import estimate_monthly_cost
from infra.mock_cloud import PROJECT
from infra.settings import StackSettings, parse_settings


def settings(stack: str = "prod", region: str = "us-east-1", **raw: object) -> StackSettings:
    text = {key: json.dumps(value) for key, value in raw.items()}
    return parse_settings(text, region=region, stack=stack, namespace=PROJECT)


def test_seed_stack_costs_at_two_and_ten_tasks() -> None:
    cost = estimate_monthly_cost(settings())
    (api,) = cost["services"]
    # 1 vCPU x $0.03238 + 3 GB x $0.00356 + one public IPv4 x $0.005 = $0.04806 per task-hour.
    assert api == {
        "name": "api",
        "vcpu": 1.0,
        "memoryGb": 3.0,
        "cpuArchitecture": "ARM64",
        "minTasks": 2,
        "maxTasks": 10,
        "vcpuHoursAtMin": 1460.0,
        "gbHoursAtMin": 4380.0,
        "monthlyAtMin": 70.17,
        "vcpuHoursAtMax": 7300.0,
        "gbHoursAtMax": 21900.0,
        "monthlyAtMax": 350.84,
    }
    assert cost["loadBalancerMonthly"] == 16.43  # $0.0225 x 730 h
    assert cost["natGatewaysMonthly"] == 0
    assert cost["totalAtMin"] == 86.59
    assert cost["totalAtMax"] == 367.26
    assert cost["hoursPerMonth"] == 730 and cost["pricesRegion"] == "us-east-1"


def test_dedicated_vpc_adds_nat_and_drops_task_public_ips() -> None:
    network = {"mode": "dedicated", "natGateways": "one_per_az", "availabilityZones": 2}
    cost = estimate_monthly_cost(settings(network=network))
    assert cost["natGateways"] == 2
    assert cost["natGatewaysMonthly"] == 65.7  # 2 x $0.045 x 730 h
    assert cost["services"][0]["monthlyAtMin"] == 62.87  # 2 x $0.04306 x 730 h
    assert cost["totalAtMin"] == pytest.approx(62.87 + 16.43 + 65.7, abs=0.011)


def test_notes_say_what_is_not_priced_exactly() -> None:
    service = {"cpu": 512, "memory": 1024, "cpuArchitecture": "X86_64", "spot": True}
    cost = estimate_monthly_cost(settings(region="eu-west-1", services=[service]))
    notes = " ".join(cost["notes"])
    assert "ALB LCUs" in notes
    assert "Fargate Spot is priced here at on-demand rates" in notes
    assert "the stack deploys to eu-west-1" in notes
    # x86 rates: 0.5 x $0.04048 + 1 x $0.004445 + $0.005 = $0.029685 per task-hour
    assert cost["services"][0]["monthlyAtMin"] == pytest.approx(2 * 0.029685 * 730, abs=0.005)
