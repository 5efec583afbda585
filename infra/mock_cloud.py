"""Run the Pulumi program offline against Pulumi's mocks and record what it declares.

No cloud account, Pulumi CLI, provider plugin or Docker engine is involved: FakeAws answers
each resource registration with plausible outputs (ARNs, DNS names, an image digest) and the
two provider functions the program calls. Mocks run with preview off, so every input is
resolved before it is recorded; the recorded inputs are camelCase, as the engine sees them.
Shared by `python -m infra.synth` and the tests in tests/infra.
"""

import asyncio
import gc
import hashlib
import json
import runpy
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import pulumi
import yaml  # type: ignore[import-untyped]
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks

from infra.settings import PROJECT_ROOT, ConfigError

PROJECT = "ecs-fargate-app"
PROGRAM = PROJECT_ROOT / "__main__.py"
ACCOUNT_ID = "123456789012"
SECRET = "[secret]"
FAKE_ECR_PASSWORD = "mock-ecr-password"

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(frozen=True)
class RecordedResource:
    type: str
    name: str
    parent: str | None
    """Logical name of the parent resource; None for children of the stack."""
    inputs: dict[str, Any]
    """Resolved inputs, camelCase; secret values replaced by "[secret]"."""
    custom: bool
    ignore_changes: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    """Logical names of every resource this one waits for (explicit and through its inputs):
    the engine creates those first and deletes them after this one."""
    explicit_depends_on: tuple[str, ...] = ()
    """The part of `depends_on` no input implies: the program's `depends_on` option."""
    delete_before_replace: bool = False
    protect: bool = False
    retain_on_delete: bool = False
    path: tuple[str, ...] = field(default=(), compare=False)
    """Logical names from the top-level ancestor down to this resource."""
    outputs: dict[str, Any] = field(default_factory=dict, compare=False)
    """What FakeAws answered (id, ARNs, DNS names...), for tests that follow references."""
    secret_inputs: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The inputs shown as "[secret]" in `inputs`, revealed (never printed by the synth)."""


@dataclass(frozen=True)
class Evaluation:
    stack: str
    resources: list[RecordedResource]
    outputs: dict[str, Any]
    component_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """What each component passed to `register_outputs` (resolved), by logical name: the
    outputs the engine shows for it."""
    invokes: list["Invoke"] = field(default_factory=list)
    """Each provider function the program called."""


@dataclass(frozen=True)
class Invoke:
    token: str
    args: dict[str, Any]
    """camelCase, as the provider receives them."""
    provider: str
    """The provider reference it ran with ("" for the default provider)."""


def _digits(seed: str, count: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:count]


class FakeAws(Mocks):
    """Plausible, deterministic AWS answers (derived from logical names, not inputs)."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.invokes: list[Invoke] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        name = str(inputs.get("name") or f"{args.name}-{_digits(args.name, 7)}")
        region, account, token = self.region, ACCOUNT_ID, args.typ
        arn = f"arn:aws:mock:{region}:{account}:{token.split(':')[-1].lower()}/{name}"
        state: dict[str, Any] = {**inputs, "name": name, "arn": arn}
        resource_id = name
        if token == "awsx:ec2:DefaultVpc":
            return "vpc-default", {
                "vpcId": "vpc-0default",
                "publicSubnetIds": [f"subnet-0public{zone}" for zone in "abc"],
                "privateSubnetIds": [],
            }
        if token == "awsx:ec2:Vpc":
            zones = "abcdef"[: int(inputs.get("numberOfAvailabilityZones", 2))]
            return "vpc-dedicated", {
                "vpcId": "vpc-0dedicated",
                "publicSubnetIds": [f"subnet-0public{zone}" for zone in zones],
                "privateSubnetIds": [f"subnet-0private{zone}" for zone in zones],
                "isolatedSubnetIds": [],
            }
        if token == "aws:ecr/repository:Repository":
            state["repositoryUrl"] = f"{account}.dkr.ecr.{region}.amazonaws.com/{name}"
            state["registryId"] = account
        elif token == "aws:lb/loadBalancer:LoadBalancer":
            suffix = f"app/{name}/{_digits(args.name, 16)}"
            state["arnSuffix"] = suffix
            state["arn"] = f"arn:aws:elasticloadbalancing:{region}:{account}:loadbalancer/{suffix}"
            state["dnsName"] = f"{name}-{int(_digits(args.name, 8), 16)}.{region}.elb.amazonaws.com"
        elif token == "aws:lb/targetGroup:TargetGroup":
            suffix = f"targetgroup/{name}/{_digits(args.name, 16)}"
            state["arnSuffix"] = suffix
            state["arn"] = f"arn:aws:elasticloadbalancing:{region}:{account}:{suffix}"
        elif token == "aws:ecs/cluster:Cluster":
            state["arn"] = f"arn:aws:ecs:{region}:{account}:cluster/{name}"
        elif token == "aws:ecs/taskDefinition:TaskDefinition":
            family = inputs["family"]
            state["arn"] = f"arn:aws:ecs:{region}:{account}:task-definition/{family}:1"
            state["revision"] = 1
        elif token == "aws:iam/role:Role":
            state["arn"] = f"arn:aws:iam::{account}:role/{name}"
        elif token == "aws:cloudwatch/metricAlarm:MetricAlarm":
            state["arn"] = f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"
        elif token == "aws:sns/topic:Topic":
            state["arn"] = f"arn:aws:sns:{region}:{account}:{name}"
        elif token == "aws:s3/bucket:Bucket":
            state["bucket"] = name
            state["arn"] = f"arn:aws:s3:::{name}"
        elif token == "aws:ec2/securityGroup:SecurityGroup":
            resource_id = f"sg-{_digits(args.name, 17)}"
        elif token == "docker:index/image:Image":
            repository = str(inputs["imageName"]).rsplit(":", 1)[0]
            state["repoDigest"] = f"{repository}@sha256:{_digits(args.name, 64)}"
        return resource_id, state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        account, region = ACCOUNT_ID, self.region
        self.invokes.append(Invoke(args.token, _plain(dict(args.args)), args.provider or ""))
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": account,
                "arn": f"arn:aws:iam::{account}:user/mock",
                "userId": "AIDAMOCKUSER",
                "id": account,
            }, []
        if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {
                "authorizationToken": "QVdTOm1vY2s=",
                "userName": "AWS",
                "password": FAKE_ECR_PASSWORD,
                "proxyEndpoint": f"https://{account}.dkr.ecr.{region}.amazonaws.com",
                "expiresAt": "2030-01-01T00:00:00Z",
                "id": region,
            }, []
        raise NotImplementedError(f"FakeAws has no answer for provider function {args.token}")


class RecordingMonitor(MockMonitor):
    """A mock monitor that also records each registration's parent, options and inputs."""

    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []
        self.component_outputs: dict[str, dict[str, Any]] = {}
        self._paths: dict[str, tuple[str, ...]] = {}

    def RegisterResourceOutputs(self, request: Any) -> Any:
        if request.urn.split("::")[-2].split("$")[-1] != "pulumi:pulumi:Stack":
            outputs = rpc.deserialize_properties(request.outputs)
            self.component_outputs[_name_of(request.urn)] = _plain(outputs)
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            urn = self.make_urn(request.parent, request.type, request.name)
            path = (*self._paths.get(request.parent, ()), request.name)
            self._paths[urn] = path
            registration = self.resources[urn]
            raw_inputs = rpc.deserialize_properties(request.object)
            inputs = _plain(raw_inputs)
            dependencies = {_name_of(urn) for urn in request.dependencies}
            implied = {
                _name_of(urn)
                for property_dependencies in request.propertyDependencies.values()
                for urn in property_dependencies.urns
            }
            self.recorded.append(
                RecordedResource(
                    type=request.type,
                    name=request.name,
                    parent=path[-2] if len(path) > 1 else None,
                    inputs=inputs,
                    custom=bool(request.custom),
                    ignore_changes=tuple(request.ignoreChanges),
                    depends_on=tuple(sorted(dependencies)),
                    explicit_depends_on=tuple(sorted(dependencies - implied)),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    protect=bool(request.protect),
                    retain_on_delete=bool(request.retainOnDelete),
                    path=path,
                    outputs={"id": registration.id, **_plain(registration.state)},
                    secret_inputs={
                        key: _revealed(raw_inputs[key])
                        for key, value in inputs.items()
                        if value == SECRET
                    },
                )
            )
        return response


def _name_of(urn: str) -> str:
    return urn.split("::")[-1]


def _plain(value: Any) -> Any:
    """Secrets become "[secret]"; whole numbers (protobuf sends doubles) become ints."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return SECRET
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _revealed(value: Any) -> Any:
    """`_plain` with each secret replaced by its value."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return _revealed(value["value"])
        return {key: _revealed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_revealed(item) for item in value]
    return _plain(value)


def stack_config(stack: str) -> dict[str, str]:
    """`Pulumi.<stack>.yaml`'s config as the CLI passes it: namespaced keys, text values."""
    path = PROJECT_ROOT / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name.split(".")[1] for p in PROJECT_ROOT.glob("Pulumi.*.yaml"))
        raise ConfigError(f"No stack file Pulumi.{stack}.yaml; stacks here: {', '.join(known)}")
    document = yaml.load(path.read_text(), yaml.CSafeLoader) or {}  # libyaml: 7x faster
    config = document.get("config") or {}
    return {
        (key if ":" in key else f"{PROJECT}:{key}"): config_text(key, value)
        for key, value in config.items()
    }


def config_text(key: str, value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"secure"}:
        raise ConfigError(f"{key}: is encrypted (secure); the offline synth cannot decrypt it")
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


class _InlineExecutor(ThreadPoolExecutor):
    """Answers each call at once, on the event loop's thread. Pulumi's runtime hands every call
    to the resource monitor to a thread pool, as a real monitor is a blocking gRPC client; the
    mocks answer in-process, and the hand-off to a thread and back (GIL included) cost 15-20 %
    of an evaluation on 2 cores. A ThreadPoolExecutor subclass: asyncio takes nothing else as
    a loop's default executor."""

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # to the awaiting coroutine, as a pool worker does
            future.set_exception(error)
        return future


def evaluate(
    stack: str,
    config: Mapping[str, str],
    monitor: RecordingMonitor | None = None,
    program: Callable[[], object] | None = None,
) -> Evaluation:
    """Run __main__.py under fresh mocks with `config`; raise what the program raises.

    Pass `monitor` to inspect what was registered even when the program fails, and `program`
    to run another program than __main__.py (a test that builds the components itself).

    Each evaluation runs on a thread of its own, with an event loop of its own: Pulumi's
    settings and config (context variables) start empty there and are dropped with it, so
    nothing of one evaluation reaches the next or the caller, and a loop the caller runs (a
    browser test's, say) is neither used nor changed.
    """
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mock-evaluation") as thread:
            return thread.submit(_evaluate_here, stack, config, monitor, program).result()
    finally:
        # The run leaves ~15 000 objects in reference cycles (tasks, outputs, closures).
        # Collected now they cost ~5 ms; two runs' worth took 15-27 ms, three runs' 50 ms.
        gc.collect(1)


def _evaluate_here(
    stack: str,
    config: Mapping[str, str],
    monitor: RecordingMonitor | None,
    program: Callable[[], object] | None,
) -> Evaluation:
    if monitor is None:
        monitor = RecordingMonitor(FakeAws(region=config.get("aws:region") or "us-east-1"))
    mocks = monitor.mocks
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run_program() -> pulumi.Output[None]:
        if program is None:
            runpy.run_path(str(PROGRAM), run_name="__pulumi_program__")
        else:
            program()
        stack_resource = pulumi.runtime.get_root_resource()
        exports = getattr(stack_resource, "outputs", {})
        return pulumi.Output.from_input(exports).apply(outputs.update)

    loop = asyncio.new_event_loop()
    loop.set_default_executor(_InlineExecutor())
    asyncio.set_event_loop(loop)
    try:
        pulumi.runtime.set_all_config(dict(config))
        pulumi.runtime.set_mocks(
            mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor
        )
        run_program()
    finally:
        leftovers = asyncio.all_tasks(loop)  # none when the program ran to the end
        for task in leftovers:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        asyncio.set_event_loop(None)
        loop.close()
    resources = sorted(monitor.recorded, key=lambda resource: resource.path)
    return Evaluation(
        stack=stack,
        resources=resources,
        outputs=outputs,
        component_outputs=dict(monitor.component_outputs),
        invokes=list(mocks.invokes) if isinstance(mocks, FakeAws) else [],
    )
