"""A monthly cost estimate for a stack's settings, at the minimum and maximum task counts.

Prices are AWS's published on-demand rates for us-east-1 (USD, checked 2026-03: Fargate
Linux/ARM $0.03238 per vCPU-hour and $0.00356 per GB-hour, Linux/x86 $0.04048 and $0.004445;
ALB $0.0225 per hour; NAT gateway $0.045 per hour; public IPv4 address $0.005 per hour).
Other regions are typically 10-30 % higher. Usage-driven charges are left out and listed in
`notes`.
"""

from typing import Any, Final

from infra.settings import StackSettings

HOURS_PER_MONTH: Final = 730
PRICES_REGION: Final = "us-east-1"
PRICES_USD: Final[dict[str, float]] = {
    "fargateArm64VcpuHour": 0.03238,
    "fargateArm64GbHour": 0.00356,
    "fargateX86VcpuHour": 0.04048,
    "fargateX86GbHour": 0.004445,
    "loadBalancerHour": 0.0225,
    "natGatewayHour": 0.045,
    "publicIpv4Hour": 0.005,
}


def estimate_monthly_cost(settings: StackSettings) -> dict[str, Any]:
    """Cost per service and in total at min and max tasks (JSON-ready, camelCase keys)."""
    services: list[dict[str, Any]] = []
    public_ips = settings.network.mode == "default"  # tasks get a public IPv4 each
    totals = {"min": 0.0, "max": 0.0}
    for service in settings.services:
        arch = "Arm64" if service.cpu_architecture == "ARM64" else "X86"
        vcpu, memory_gb = service.cpu / 1024, service.memory / 1024
        per_task_hour = (
            vcpu * PRICES_USD[f"fargate{arch}VcpuHour"]
            + memory_gb * PRICES_USD[f"fargate{arch}GbHour"]
            + (PRICES_USD["publicIpv4Hour"] if public_ips else 0.0)
        )
        entry: dict[str, Any] = {
            "name": service.name,
            "vcpu": vcpu,
            "memoryGb": memory_gb,
            "cpuArchitecture": service.cpu_architecture,
            "minTasks": service.min_count,
            "maxTasks": service.max_count,
        }
        for bound, tasks in (("min", service.min_count), ("max", service.max_count)):
            hours = tasks * HOURS_PER_MONTH
            entry[f"vcpuHoursAt{bound.title()}"] = round(vcpu * hours, 1)
            entry[f"gbHoursAt{bound.title()}"] = round(memory_gb * hours, 1)
            entry[f"monthlyAt{bound.title()}"] = round(per_task_hour * hours, 2)
            totals[bound] += per_task_hour * hours
        services.append(entry)

    load_balancer = PRICES_USD["loadBalancerHour"] * HOURS_PER_MONTH
    nat_count = 0
    if settings.network.mode == "dedicated":
        nat_count = (
            1 if settings.network.nat_gateways == "single" else settings.network.availability_zones
        )
    nat_gateways = nat_count * PRICES_USD["natGatewayHour"] * HOURS_PER_MONTH
    fixed = load_balancer + nat_gateways

    notes = [
        "Excluded (usage-driven): ALB LCUs, data transfer, NAT data processing, CloudWatch "
        "logs/metrics/alarms/dashboard, Container Insights, ECR storage, the ALB's own IPv4s.",
    ]
    if public_ips:
        notes.append("Default-VPC mode: each task's public IPv4 is included per task.")
    if any(service.spot for service in settings.services):
        notes.append("Fargate Spot is priced here at on-demand rates (an upper bound).")
    if settings.region != PRICES_REGION:
        notes.append(f"Prices are {PRICES_REGION}'s; the stack deploys to {settings.region}.")
    return {
        "currency": "USD",
        "pricesRegion": PRICES_REGION,
        "hoursPerMonth": HOURS_PER_MONTH,
        "prices": dict(PRICES_USD),
        "services": services,
        "loadBalancerMonthly": round(load_balancer, 2),
        "natGateways": nat_count,
        "natGatewaysMonthly": round(nat_gateways, 2),
        "totalAtMin": round(totals["min"] + fixed, 2),
        "totalAtMax": round(totals["max"] + fixed, 2),
        "notes": notes,
    }
