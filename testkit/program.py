"""Runs the Pulumi program in-process, under Pulumi mocks, and records what it declares.

`run_program("dev")` does what `pulumi preview/up --stack dev` does up to the provider: it loads
Pulumi.yaml defaults and Pulumi.dev.yaml the way the CLI does (a stack without a file gets the
defaults only), hands them to the program as the CLI would (strings; JSON for lists and objects),
runs the program as `__main__` from its own directory, and answers every resource registration and
data-source call with realistic fabricated values. No CLI, provider plugin, AWS or Docker is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pulumi
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks
from pulumi.runtime.stack import Stack

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILE = ROOT / "Pulumi.yaml"
ACCOUNT_ID = "123456789012"
LIST_IMAGES = "aws:ecr/getImages:getImages"
DYNAMIC_RESOURCE = "pulumi-python:dynamic:Resource"
STACK_REFERENCE = "pulumi:pulumi:StackReference"
REGION = "us-east-1"
AVAILABILITY_ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
# What the owner of a stack sets with `pulumi config set` before its first deploy, because no stack
# file in the repository can know it: Pulumi.prod.yaml requires HTTPS and leaves the domain to its
# owner, so a fresh clone gets the configuration error instead of deploying a made-up domain. Runs
# of a stack get these example values the way its owner's stack file would have them; pass
# `owner_config=False` for the stack file as the repository ships it.
OWNER_CONFIG: dict[str, dict[str, object]] = {
    "prod": {"domainName": "app.example.com", "hostedZoneId": "Z0EXAMPLE1234567890AB"},
    "preview-base": {"previewDomain": "preview.example.com", "previewHostedZoneId": "Z0EXAMPLE1234567890AB"},
}


@dataclass(frozen=True)
class RecordedResource:
    type: str  # e.g. "aws:rds/instance:Instance"
    name: str  # logical name
    urn: str
    inputs: dict[str, Any]  # engine (camelCase) inputs, secrets unwrapped
    parent: str | None  # parent URN, None for resources parented to the stack
    dependencies: tuple[str, ...]  # URNs the resource depends on (depends_on and inputs)
    # Resource options the engine acts on: protect, retainOnDelete, deleteBeforeReplace,
    # ignoreChanges, importId, customTimeouts (engine property names) and provider (its reference,
    # "" for the default).
    options: dict[str, Any] = field(default_factory=dict)
    id: str = ""  # the (fabricated) physical id
    state: dict[str, Any] = field(default_factory=dict)  # the (fabricated) outputs: inputs plus computed
    explicit_dependencies: tuple[str, ...] = ()  # `depends_on`, as the SDK sent it
    property_dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)  # input -> URNs
    # The `aliases` option as the SDK sent it: {"urn": ...} or a spec (name, type, stack, project,
    # parentUrn, noParent); the engine resolves them (testkit/engine/aliases.py).
    alias_specs: tuple[dict[str, Any], ...] = ()


@dataclass
class ProgramRun:
    stack: str
    resources: list[RecordedResource]
    outputs: dict[str, Any]  # stack exports, plain values
    # The stack's config with bare keys, as `infra.config.validate()` takes it.
    config: dict[str, str] = field(default_factory=dict)
    # Outputs exported as secrets: `pulumi stack output` shows them as [secret].
    secret_outputs: frozenset[str] = frozenset()

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
    return str(yaml.safe_load(PROJECT_FILE.read_text())["name"])


def stack_config(
    stack: str, overrides: Mapping[str, object] | None = None, owner_config: bool = True
) -> dict[str, str]:
    """Namespaced config for `stack`: Pulumi.yaml defaults, then Pulumi.<stack>.yaml, then what its
    owner sets (OWNER_CONFIG, unless `owner_config` is false), then overrides."""
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
    owners = OWNER_CONFIG.get(stack, {}) if owner_config else {}
    for key, value in {**owners, **(overrides or {})}.items():
        config[namespaced(key)] = _encode(value)
    return config


def bare_config(
    stack: str, overrides: Mapping[str, object] | None = None, owner_config: bool = True
) -> dict[str, str]:
    """This project's keys of `stack_config`, without their namespace (what `validate()` takes)."""
    prefix = f"{project_name()}:"
    return {
        key[len(prefix) :]: value
        for key, value in stack_config(stack, overrides, owner_config).items()
        if key.startswith(prefix)
    }


# --- fabricated provider answers --------------------------------------------------------------------


def unwrap_secrets(value: Any) -> Any:
    """Replaces the SDK's secret envelopes ({<sig>: <secret sig>, "value": v}) by their values."""
    if isinstance(value, dict):
        if _is_secret(value):
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
    """Answers like the AWS, Docker and Random providers would, with deterministic fake values.

    `ecr_images` is what the stack's image repository already holds (tag -> digest), as ECR's
    ListImages would answer: empty, as for a new stack, unless a test says otherwise. `released` is
    what the release's provider reports once the image ran (tasks, routes, `beat_schedule`, ...):
    nothing unless a test says what the image holds.
    """

    def __init__(
        self,
        ecr_images: Mapping[str, str] | None = None,
        released: Mapping[str, Any] | None = None,
        stacks: Mapping[str, ProgramRun] | None = None,
    ) -> None:
        super().__init__()
        self.ecr_images = dict(ecr_images or {})
        self.released = dict(released or {})
        self.stacks = dict(stacks or {})  # stack name (org/project/stack) -> its run, for StackReference

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = unwrap_secrets(args.inputs)
        if args.custom is False:  # a component; reads (a StackReference) leave `custom` unset
            return None, {}
        suffix = _digest(args.typ, args.name)[:8]
        state = dict(inputs)
        # Auto-naming happens in the engine; fabricate the physical name it would choose.
        # A read (`Resource.get`) names an existing resource by its id.
        physical_name = inputs.get("name") or args.resource_id or f"{args.name}-{suffix}"
        state.setdefault("name", physical_name)
        state.update(self._computed(args.typ, args.name, physical_name, suffix, inputs))
        if args.typ == DYNAMIC_RESOURCE and "consumed_queues" in inputs:  # the release (MigrationRun)
            state.update(self.released)
        referenced = self.stacks.get(str(inputs.get("name"))) if args.typ == STACK_REFERENCE else None
        if referenced is not None:
            state["outputs"] = dict(referenced.outputs)
            state["secretOutputNames"] = sorted(referenced.secret_outputs)
        resource_id = state.pop("id", None) or f"{args.name}-{suffix}"
        return resource_id, state

    def _computed(
        self, typ: str, name: str, physical_name: str, suffix: str, inputs: dict[str, Any]
    ) -> dict[str, Any]:
        computed: dict[str, Any] = {}
        if typ.startswith("aws:"):
            module = typ.split(":")[1].split("/")[0]
            computed["arn"] = _arn(module, f"{typ.split(':')[-1].lower()}/{physical_name}")
            computed["tagsAll"] = inputs.get("tags") or {}
        fabricate = _FABRICATED.get(typ)
        if fabricate is not None:
            computed.update(fabricate(_Fabrication(name, physical_name, suffix, inputs)))
        return computed

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        if args.token == LIST_IMAGES:
            return self._repository_images(args.args.get("repositoryName")), []
        return self._data_source(args), []

    def _repository_images(self, repository: str | None) -> dict[str, Any]:
        return {
            "imageIds": [{"imageTag": tag, "imageDigest": digest} for tag, digest in self.ecr_images.items()],
            "repositoryName": repository,
            "registryId": ACCOUNT_ID,
            "region": REGION,
            "id": repository,
        }

    def _data_source(self, args: MockCallArgs) -> dict[str, Any]:
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


@dataclass(frozen=True)
class _Fabrication:
    name: str  # logical name
    physical: str  # the physical name the engine or the provider would choose
    suffix: str  # a short deterministic digest of type and name
    inputs: dict[str, Any]


def _rds_instance(made: _Fabrication) -> dict[str, Any]:
    address = f"{made.physical}.{made.suffix}.{REGION}.rds.amazonaws.com"
    return {
        "address": address,
        "endpoint": f"{address}:5432",
        "identifier": made.inputs.get("identifier") or made.physical,
        "port": made.inputs.get("port", 5432),
        "arn": _arn("rds", f"db:{made.inputs.get('identifier') or made.physical}"),
        "resourceId": f"db-{made.suffix.upper()}",
    }


def _replication_group(made: _Fabrication) -> dict[str, Any]:
    host = f"{made.physical}.{made.suffix}.use1.cache.amazonaws.com"
    return {
        "primaryEndpointAddress": f"master.{host}",
        "readerEndpointAddress": f"replica.{host}",
        "port": made.inputs.get("port", 6379),
        "arn": _arn("elasticache", f"replicationgroup:{made.physical}"),
        "memberClusters": [f"{made.physical}-001"],
    }


def _image(made: _Fabrication) -> dict[str, Any]:
    repository = str(made.inputs.get("imageName", made.name)).rsplit(":", 1)[0]
    return {"repoDigest": f"{repository}@sha256:{_digest(json.dumps(made.inputs, sort_keys=True))}"}


def _task_definition(made: _Fabrication) -> dict[str, Any]:
    family = made.inputs.get("family", made.physical)
    return {
        "arn": _arn("ecs", f"task-definition/{family}:1"),
        "revision": 1,
        "arnWithoutRevision": _arn("ecs", f"task-definition/{family}"),
    }


def _secret(made: _Fabrication) -> dict[str, Any]:
    arn = _arn("secretsmanager", f"secret:{made.physical}-{made.suffix[:6]}")
    return {"arn": arn, "id": arn}


def _certificate(made: _Fabrication) -> dict[str, Any]:
    """ACM names one CNAME record per domain to prove control of it."""
    domain = str(made.inputs.get("domainName"))
    token = _digest("acm", domain)
    return {
        "arn": _arn("acm", f"certificate/{made.suffix}-{token[:4]}"),
        "status": "PENDING_VALIDATION",
        "domainValidationOptions": [
            {
                "domainName": domain,
                "resourceRecordName": f"_{token[:32]}.{domain}.",
                "resourceRecordType": "CNAME",
                "resourceRecordValue": f"_{token[32:64]}.xlfgrmvvlj.acm-validations.aws.",
            }
        ],
    }


def _bucket(made: _Fabrication) -> dict[str, Any]:
    """S3 names a bucket from its `bucket`, or its `bucketPrefix` plus a generated suffix."""
    name = made.inputs.get("bucket") or (
        f"{made.inputs['bucketPrefix']}{made.suffix}" if made.inputs.get("bucketPrefix") else made.physical
    )
    return {"id": name, "bucket": name, "arn": f"arn:aws:s3:::{name}"}


def _password(made: _Fabrication) -> dict[str, Any]:
    return {"result": (_digest("secret", made.name) * 4)[: int(made.inputs.get("length", 32))]}


def _stack_reference(made: _Fabrication) -> dict[str, Any]:
    """Another stack's outputs, as `pulumi.StackReference` reads them (a built image by digest);
    a stack the run was given (`stacks`) answers with its own recorded outputs instead."""
    stack = str(made.inputs.get("name", made.name)).rsplit("/", 1)[-1]
    repository = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/{project_name()}-{stack}-repository"
    image_ref = f"{repository}@sha256:{_digest('image', stack)}"
    return {"outputs": {"imageRef": image_ref}, "secretOutputNames": []}


# What each provider computes on create, per resource type (ids, ARNs, endpoints, ...).
_FABRICATED: dict[str, Callable[[_Fabrication], dict[str, Any]]] = {
    "aws:ec2/vpc:Vpc": lambda made: {
        "id": f"vpc-{made.suffix}",
        "defaultSecurityGroupId": f"sg-d{made.suffix}",
        # Amazon assigns a /56 when assignGeneratedIpv6CidrBlock is set.
        "ipv6CidrBlock": "2600:1f18:4a3:6e00::/56" if made.inputs.get("assignGeneratedIpv6CidrBlock") else "",
    },
    "aws:ec2/subnet:Subnet": lambda made: {"id": f"subnet-{made.suffix}"},
    "aws:ec2/securityGroup:SecurityGroup": lambda made: {"id": f"sg-{made.suffix}"},
    "aws:ec2/internetGateway:InternetGateway": lambda made: {"id": f"igw-{made.suffix}"},
    "aws:ec2/natGateway:NatGateway": lambda made: {"id": f"nat-{made.suffix}"},
    "aws:ec2/eip:Eip": lambda made: {
        "id": f"eipalloc-{made.suffix}",
        "allocationId": f"eipalloc-{made.suffix}",
        "publicIp": "203.0.113.10",
    },
    "aws:ec2/routeTable:RouteTable": lambda made: {"id": f"rtb-{made.suffix}"},
    "aws:rds/instance:Instance": _rds_instance,
    "aws:elasticache/replicationGroup:ReplicationGroup": _replication_group,
    "aws:ecr/repository:Repository": lambda made: {
        "repositoryUrl": f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/{made.physical}",
        "registryId": ACCOUNT_ID,
        "arn": _arn("ecr", f"repository/{made.physical}"),
    },
    "docker:index/image:Image": _image,
    "aws:lb/loadBalancer:LoadBalancer": lambda made: {
        "dnsName": f"{made.physical}-1234567890.{REGION}.elb.amazonaws.com",
        "zoneId": "Z35SXDOTRQ7X7K",
        "arnSuffix": f"app/{made.physical}/{made.suffix}",
        "arn": _arn("elasticloadbalancing", f"loadbalancer/app/{made.physical}/{made.suffix}"),
    },
    "aws:lb/targetGroup:TargetGroup": lambda made: {
        "arnSuffix": f"targetgroup/{made.physical}/{made.suffix}",
        "arn": _arn("elasticloadbalancing", f"targetgroup/{made.physical}/{made.suffix}"),
    },
    "aws:lb/listener:Listener": lambda made: {
        "arn": _arn("elasticloadbalancing", f"listener/app/{made.physical}/{made.suffix}")
    },
    "aws:lb/listenerRule:ListenerRule": lambda made: {
        "arn": _arn("elasticloadbalancing", f"listener-rule/app/{made.physical}/{made.suffix}")
    },
    "aws:acm/certificate:Certificate": _certificate,
    "aws:acm/certificateValidation:CertificateValidation": lambda made: {
        "id": str(made.inputs.get("certificateArn"))
    },
    "aws:route53/record:Record": lambda made: {
        "id": f"{made.inputs.get('zoneId')}_{made.inputs.get('name')}_{made.inputs.get('type')}",
        "fqdn": str(made.inputs.get("name", "")).rstrip("."),
    },
    "aws:wafv2/webAcl:WebAcl": lambda made: {
        "id": f"{made.suffix}-web-acl",
        "arn": _arn("wafv2", f"regional/webacl/{made.physical}/{made.suffix}"),
        "capacity": 927,
    },
    "aws:s3/bucket:Bucket": _bucket,
    "aws:kms/key:Key": lambda made: {
        "keyId": f"{made.suffix}-0000-4000-8000-{made.suffix}{made.suffix[:4]}",
        "arn": _arn("kms", f"key/{made.suffix}-0000-4000-8000-{made.suffix}{made.suffix[:4]}"),
    },
    "aws:ecs/cluster:Cluster": lambda made: {"arn": _arn("ecs", f"cluster/{made.physical}")},
    "aws:ecs/service:Service": lambda made: {
        "id": _arn(
            "ecs", f"service/{str(made.inputs.get('cluster', 'cluster')).rsplit('/', 1)[-1]}/{made.physical}"
        )
    },
    "aws:ecs/taskDefinition:TaskDefinition": _task_definition,
    "aws:cloudwatch/logGroup:LogGroup": lambda made: {"arn": _arn("logs", f"log-group:{made.physical}")},
    "aws:iam/role:Role": lambda made: {
        "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{made.physical}",
        "uniqueId": f"AROA{made.suffix}",
    },
    "aws:secretsmanager/secret:Secret": _secret,
    # Secrets Manager gives every new value a new VersionId (PutSecretValue, ClientRequestToken).
    "aws:secretsmanager/secretVersion:SecretVersion": lambda made: {
        "versionId": f"version-{_digest(made.name, made.inputs.get('secretString'))[:32]}"
    },
    "random:index/randomId:RandomId": lambda made: {
        "hex": made.suffix,
        "dec": str(int(made.suffix, 16)),
        "b64Url": made.suffix,
        "b64Std": made.suffix,
    },
    "random:index/randomPassword:RandomPassword": _password,
    "random:index/randomString:RandomString": _password,
    STACK_REFERENCE: _stack_reference,
}


async def _secret_names(exports: Mapping[str, Any]) -> list[str]:
    """The names of the outputs the program exported as secrets."""
    return [name for name, value in exports.items() if await pulumi.Output.from_input(value).is_secret()]


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig


def _alias_spec(alias: Any) -> dict[str, Any]:
    if alias.urn:
        return {"urn": alias.urn}
    spec = alias.spec
    return {
        "name": spec.name,
        "type": spec.type,
        "stack": spec.stack,
        "project": spec.project,
        "parentUrn": spec.parentUrn,
        "noParent": spec.noParent,
    }


class RecordingMonitor(MockMonitor):
    """A mock monitor that also keeps each registration's parent and dependencies."""

    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            inputs = unwrap_secrets(rpc.deserialize_properties(request.object))
            property_dependencies = {
                name: tuple(sorted(urns.urns)) for name, urns in request.propertyDependencies.items()
            }
            dependencies = set(request.dependencies).union(*property_dependencies.values())
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
                        explicit_dependencies=tuple(sorted(request.dependencies)),
                        property_dependencies=property_dependencies,
                        alias_specs=tuple(_alias_spec(alias) for alias in request.aliases),
                        id=response.id,
                        state=unwrap_secrets(self.resources[response.urn].state),
                        options={
                            "protect": request.protect,
                            "retainOnDelete": request.retainOnDelete,
                            "deleteBeforeReplace": request.deleteBeforeReplace,
                            "ignoreChanges": tuple(request.ignoreChanges),
                            "provider": request.provider,  # "<provider URN>::<id>", "" for the default
                            "importId": request.importId,  # "" unless the resource is imported
                            "customTimeouts": {
                                operation: getattr(request.customTimeouts, operation)
                                for operation in ("create", "update", "delete")
                                if getattr(request.customTimeouts, operation)
                            },
                        },
                    )
                )
        return response


def run_program(
    stack: str,
    overrides: Mapping[str, object] | None = None,
    preview: bool = False,
    owner_config: bool = True,
    ecr_images: Mapping[str, str] | None = None,
    released: Mapping[str, Any] | None = None,
    stacks: Mapping[str, ProgramRun] | None = None,
) -> ProgramRun:
    """Runs infra/ for `stack`; raises ProgramFailed (with what was declared so far) if it raises.
    `ecr_images`: the tags (-> digests) the stack's repository already holds; `released`: what
    the release reports of the image; `stacks`: runs of other stacks a StackReference reads, by
    their full name (FabricatingMocks)."""
    project = project_name()
    config = stack_config(stack, overrides, owner_config)
    mocks = FabricatingMocks(ecr_images, released, stacks)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.reset_options(project=project, stack=stack, preview=preview)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(config, [])
    program_dir = ROOT / (yaml.safe_load(PROJECT_FILE.read_text()).get("main") or ".")
    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> pulumi.Output[None]:
        # The language host runs the program from its own directory, as run_path of that directory.
        previous_cwd = os.getcwd()
        os.chdir(program_dir)
        try:
            runpy.run_path(str(program_dir), run_name="__main__")
        finally:
            os.chdir(previous_cwd)
        root = pulumi.runtime.get_root_resource()
        assert isinstance(root, Stack), "the program runs under a root stack resource"
        names: pulumi.Output[list[str]] = pulumi.Output.from_input(
            cast(Awaitable[list[str]], _secret_names(root.outputs))
        )
        secrets = names.apply(secret_outputs.update)
        exported = pulumi.Output.from_input(root.outputs).apply(outputs.update)
        return pulumi.Output.all(exported, secrets).apply(lambda _: None)

    try:
        run()
    except Exception as error:
        raise ProgramFailed(stack, error, list(monitor.recorded)) from error
    return ProgramRun(
        stack=stack,
        resources=list(monitor.recorded),
        outputs=unwrap_secrets(outputs),
        config=bare_config(stack, overrides, owner_config),
        secret_outputs=frozenset(secret_outputs),
    )
