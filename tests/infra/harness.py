"""Runs the Pulumi program in-process, under Pulumi mocks, and records what it declares.

`run_program("dev")` does what `pulumi preview/up --stack dev` does up to the provider: it loads
Pulumi.yaml defaults and Pulumi.dev.yaml the way the CLI does (a stack without a file gets the
defaults only), hands them to the program as the CLI would (strings; JSON for lists and objects),
runs `infra/` as `__main__` from its own directory, and answers every resource registration and
data-source call with realistic fabricated values. No CLI, provider plugin, AWS or Docker is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks

ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILE = ROOT / "Pulumi.yaml"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
AVAILABILITY_ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")


@dataclass(frozen=True)
class RecordedResource:
    type: str  # e.g. "aws:rds/instance:Instance"
    name: str  # logical name
    urn: str
    inputs: dict  # engine (camelCase) inputs, secrets unwrapped
    parent: str | None  # parent URN, None for resources parented to the stack
    dependencies: tuple[str, ...]  # URNs the resource depends on (depends_on and inputs)
    # Resource options the engine acts on: protect, retainOnDelete, deleteBeforeReplace,
    # ignoreChanges (engine property names) and provider (its reference, "" for the default one).
    options: dict = field(default_factory=dict)
    id: str = ""  # the (fabricated) physical id
    state: dict = field(default_factory=dict)  # the (fabricated) outputs: inputs plus computed values


@dataclass
class ProgramRun:
    stack: str
    resources: list[RecordedResource]
    outputs: dict  # stack exports, plain values
    # The stack's config with bare keys, as `infra.config.validate()` takes it.
    config: dict[str, str] = field(default_factory=dict)

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [resource for resource in self.resources if resource.type == type_token]

    def one(self, type_token: str, name_contains: str = "") -> RecordedResource:
        matches = [resource for resource in self.of_type(type_token) if name_contains in resource.name]
        if len(matches) != 1:
            names = [resource.name for resource in self.of_type(type_token)]
            raise AssertionError(
                f"expected exactly one {type_token} whose name contains {name_contains!r} in stack "
                f"{self.stack!r}, found {len(matches)}; all of that type: {names}"
            )
        return matches[0]

    def by_urn(self, urn: str) -> RecordedResource:
        for resource in self.resources:
            if resource.urn == urn:
                return resource
        raise AssertionError(f"no resource with URN {urn} in stack {self.stack!r}")

    def children_of(self, parent: RecordedResource) -> list[RecordedResource]:
        return [resource for resource in self.resources if resource.parent == parent.urn]


class ProgramFailed(Exception):
    """The program raised; `error` is what it raised, `resources` what it had declared by then."""

    def __init__(self, stack: str, error: BaseException, resources: list[RecordedResource]) -> None:
        super().__init__(f"stack {stack!r}: {type(error).__name__}: {error}")
        self.stack = stack
        self.error = error
        self.resources = resources


# --- config, the way the CLI hands it to the program ----------------------------------------------


def _encode(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def project_name() -> str:
    return yaml.safe_load(PROJECT_FILE.read_text())["name"]


def stack_config(stack: str, overrides: Mapping[str, object] | None = None) -> dict[str, str]:
    """Namespaced config for `stack`: Pulumi.yaml defaults, then Pulumi.<stack>.yaml, then overrides."""
    project = yaml.safe_load(PROJECT_FILE.read_text())
    name = project["name"]

    def namespaced(key: str) -> str:
        return key if ":" in key else f"{name}:{key}"

    config: dict[str, str] = {}
    for key, spec in (project.get("config") or {}).items():
        if isinstance(spec, dict):
            if "default" in spec:
                config[namespaced(key)] = _encode(spec["default"])
            elif "value" in spec:
                config[namespaced(key)] = _encode(spec["value"])
        else:
            config[namespaced(key)] = _encode(spec)
    stack_file = ROOT / f"Pulumi.{stack}.yaml"
    if stack_file.exists():
        for key, value in ((yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}).items():
            if isinstance(value, dict) and set(value) == {"secure"}:
                raise ValueError(f"{stack_file.name}: {key} is encrypted; tests need plain config")
            config[namespaced(key)] = _encode(value)
    for key, value in (overrides or {}).items():
        config[namespaced(key)] = _encode(value)
    return config


def bare_config(stack: str, overrides: Mapping[str, object] | None = None) -> dict[str, str]:
    """This project's keys of `stack_config`, without their namespace (what `validate()` takes)."""
    prefix = f"{project_name()}:"
    return {
        key[len(prefix) :]: value
        for key, value in stack_config(stack, overrides).items()
        if key.startswith(prefix)
    }


# --- fabricated provider answers --------------------------------------------------------------------


def unwrap_secrets(value: Any) -> Any:
    """Replaces the SDK's secret envelopes ({<sig>: <secret sig>, "value": v}) by their values."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return unwrap_secrets(value["value"])
        return {key: unwrap_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(item) for item in value]
    return value


def _digest(*parts: object) -> str:
    return hashlib.sha256("/".join(str(part) for part in parts).encode()).hexdigest()


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{resource}"


class FabricatingMocks(Mocks):
    """Answers like the AWS, Docker and Random providers would, with deterministic fake values."""

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict]:
        inputs = unwrap_secrets(args.inputs)
        if not args.custom:
            return None, {}
        suffix = _digest(args.typ, args.name)[:8]
        state = dict(inputs)
        # Auto-naming happens in the engine; fabricate the physical name it would choose.
        physical_name = inputs.get("name") or f"{args.name}-{suffix}"
        state.setdefault("name", physical_name)
        state.update(self._computed(args.typ, args.name, physical_name, suffix, inputs))
        resource_id = state.pop("id", None) or f"{args.name}-{suffix}"
        return resource_id, state

    def _computed(self, typ: str, name: str, physical_name: str, suffix: str, inputs: dict) -> dict:
        module = typ.split(":")[1].split("/")[0] if typ.startswith("aws:") else ""
        computed: dict[str, Any] = {}
        if typ.startswith("aws:"):
            computed["arn"] = _arn(module, f"{typ.split(':')[-1].lower()}/{physical_name}")
            computed["tagsAll"] = inputs.get("tags") or {}
        match typ:
            case "aws:ec2/vpc:Vpc":
                computed["id"] = f"vpc-{suffix}"
                computed["defaultSecurityGroupId"] = f"sg-default{suffix}"
            case "aws:ec2/subnet:Subnet":
                computed["id"] = f"subnet-{suffix}"
            case "aws:ec2/securityGroup:SecurityGroup":
                computed["id"] = f"sg-{suffix}"
            case "aws:ec2/internetGateway:InternetGateway":
                computed["id"] = f"igw-{suffix}"
            case "aws:ec2/natGateway:NatGateway":
                computed["id"] = f"nat-{suffix}"
            case "aws:ec2/eip:Eip":
                computed.update(
                    id=f"eipalloc-{suffix}", allocationId=f"eipalloc-{suffix}", publicIp="203.0.113.10"
                )
            case "aws:ec2/routeTable:RouteTable":
                computed["id"] = f"rtb-{suffix}"
            case "aws:rds/instance:Instance":
                address = f"{physical_name}.{suffix}.{REGION}.rds.amazonaws.com"
                computed.update(
                    address=address,
                    endpoint=f"{address}:5432",
                    identifier=inputs.get("identifier") or physical_name,
                    port=inputs.get("port", 5432),
                    arn=_arn("rds", f"db:{physical_name}"),
                    resourceId=f"db-{suffix.upper()}",
                )
            case "aws:elasticache/replicationGroup:ReplicationGroup":
                computed.update(
                    primaryEndpointAddress=f"master.{physical_name}.{suffix}.use1.cache.amazonaws.com",
                    readerEndpointAddress=f"replica.{physical_name}.{suffix}.use1.cache.amazonaws.com",
                    port=inputs.get("port", 6379),
                    arn=_arn("elasticache", f"replicationgroup:{physical_name}"),
                    memberClusters=[f"{physical_name}-001"],
                )
            case "aws:ecr/repository:Repository":
                computed.update(
                    repositoryUrl=f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/{physical_name}",
                    registryId=ACCOUNT_ID,
                    arn=_arn("ecr", f"repository/{physical_name}"),
                )
            case "docker:index/image:Image":
                repository = str(inputs.get("imageName", name)).rsplit(":", 1)[0]
                computed["repoDigest"] = f"{repository}@sha256:{_digest(json.dumps(inputs, sort_keys=True))}"
            case "aws:lb/loadBalancer:LoadBalancer":
                computed.update(
                    dnsName=f"{physical_name}-1234567890.{REGION}.elb.amazonaws.com",
                    zoneId="Z35SXDOTRQ7X7K",
                    arnSuffix=f"app/{physical_name}/{suffix}",
                    arn=_arn("elasticloadbalancing", f"loadbalancer/app/{physical_name}/{suffix}"),
                )
            case "aws:lb/targetGroup:TargetGroup":
                computed.update(
                    arnSuffix=f"targetgroup/{physical_name}/{suffix}",
                    arn=_arn("elasticloadbalancing", f"targetgroup/{physical_name}/{suffix}"),
                )
            case "aws:lb/listener:Listener":
                computed["arn"] = _arn("elasticloadbalancing", f"listener/app/{physical_name}/{suffix}")
            case "aws:s3/bucket:Bucket":
                computed.update(id=physical_name, bucket=physical_name, arn=f"arn:aws:s3:::{physical_name}")
            case "aws:ecs/cluster:Cluster":
                computed["arn"] = _arn("ecs", f"cluster/{physical_name}")
            case "aws:ecs/service:Service":
                cluster = str(inputs.get("cluster", "cluster")).rsplit("/", 1)[-1]
                computed["id"] = _arn("ecs", f"service/{cluster}/{physical_name}")
            case "aws:ecs/taskDefinition:TaskDefinition":
                family = inputs.get("family", physical_name)
                computed.update(
                    arn=_arn("ecs", f"task-definition/{family}:1"),
                    revision=1,
                    arnWithoutRevision=_arn("ecs", f"task-definition/{family}"),
                )
            case "aws:cloudwatch/logGroup:LogGroup":
                computed["arn"] = _arn("logs", f"log-group:{physical_name}")
            case "aws:iam/role:Role":
                computed.update(
                    arn=f"arn:aws:iam::{ACCOUNT_ID}:role/{physical_name}", uniqueId=f"AROA{suffix}"
                )
            case "aws:secretsmanager/secret:Secret":
                arn = _arn("secretsmanager", f"secret:{physical_name}-{suffix[:6]}")
                computed.update(arn=arn, id=arn)
            case "aws:secretsmanager/secretVersion:SecretVersion":
                computed["versionId"] = f"version-{suffix}"
            case "random:index/randomId:RandomId":
                computed.update(hex=suffix, dec=str(int(suffix, 16)), b64Url=suffix, b64Std=suffix)
            case "random:index/randomPassword:RandomPassword" | "random:index/randomString:RandomString":
                length = int(inputs.get("length", 32))
                computed["result"] = (_digest("secret", name) * 4)[:length]
        return computed

    def call(self, args: MockCallArgs) -> dict:
        match args.token:
            case "aws:index/getAvailabilityZones:getAvailabilityZones":
                return {
                    "names": list(AVAILABILITY_ZONES),
                    "zoneIds": ["use1-az1", "use1-az2", "use1-az4"],
                    "id": REGION,
                }
            case "aws:index/getCallerIdentity:getCallerIdentity":
                return {
                    "accountId": ACCOUNT_ID,
                    "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/deployer",
                    "userId": "AIDAEXAMPLE",
                    "id": ACCOUNT_ID,
                }
            case "aws:index/getRegion:getRegion":
                return {
                    "name": REGION,
                    "region": REGION,
                    "id": REGION,
                    "description": "US East (N. Virginia)",
                    "endpoint": f"ec2.{REGION}.amazonaws.com",
                }
            case "aws:elb/getServiceAccount:getServiceAccount":
                return {"arn": "arn:aws:iam::127311923021:root", "id": "127311923021"}
            case "aws:index/getPartition:getPartition":
                return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
            case "aws:ecr/getAuthorizationToken:getAuthorizationToken":
                return {
                    "userName": "AWS",
                    "password": "ecr-password",
                    "authorizationToken": "QVdTOmVjcg==",
                    "proxyEndpoint": f"https://{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com",
                    "expiresAt": "2030-01-01T00:00:00Z",
                    "id": REGION,
                }
        raise NotImplementedError(f"the test harness has no answer for the data source {args.token}; add one")


class RecordingMonitor(MockMonitor):
    """A mock monitor that also keeps each registration's parent and dependencies."""

    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = unwrap_secrets(rpc.deserialize_properties(request.object))
            dependencies = set(request.dependencies)
            for property_dependencies in request.propertyDependencies.values():
                dependencies.update(property_dependencies.urns)
            # A URN's type part is the parent chain; its last element is the parent's own type.
            parent_type = request.parent.split("::")[2].split("$")[-1] if request.parent else ""
            parented_to_stack = parent_type in ("", "pulumi:pulumi:Stack")
            parent = None if parented_to_stack else request.parent
            with self._lock:
                self.recorded.append(
                    RecordedResource(
                        type=request.type,
                        name=request.name,
                        urn=response.urn,
                        inputs=inputs,
                        parent=parent,
                        dependencies=tuple(sorted(dependencies)),
                        id=response.id,
                        state=unwrap_secrets(self.resources[response.urn].state),
                        options={
                            "protect": request.protect,
                            "retainOnDelete": request.retainOnDelete,
                            "deleteBeforeReplace": request.deleteBeforeReplace,
                            "ignoreChanges": tuple(request.ignoreChanges),
                            "provider": request.provider,  # "<provider URN>::<id>", "" for the default
                        },
                    )
                )
        return response


def run_program(
    stack: str, overrides: Mapping[str, object] | None = None, preview: bool = False
) -> ProgramRun:
    """Runs infra/ for `stack`; raises ProgramFailed (with what was declared so far) if it raises."""
    project = project_name()
    config = stack_config(stack, overrides)
    mocks = FabricatingMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.reset_options(project=project, stack=stack, preview=preview)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(config, [])
    program_dir = ROOT / (yaml.safe_load(PROJECT_FILE.read_text()).get("main") or ".")
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def run() -> pulumi.Output:
        # The CLI runs the program from its own directory with that directory on sys.path.
        previous_cwd = os.getcwd()
        sys.path.insert(0, str(program_dir))
        os.chdir(program_dir)
        try:
            runpy.run_path(str(program_dir), run_name="__main__")
        finally:
            os.chdir(previous_cwd)
            sys.path.remove(str(program_dir))
        exports = pulumi.runtime.get_root_resource().outputs
        return pulumi.Output.from_input(exports).apply(outputs.update)

    try:
        run()
    except Exception as error:
        raise ProgramFailed(stack, error, list(monitor.recorded)) from error
    return ProgramRun(
        stack=stack,
        resources=list(monitor.recorded),
        outputs=unwrap_secrets(outputs),
        config=bare_config(stack, overrides),
    )
