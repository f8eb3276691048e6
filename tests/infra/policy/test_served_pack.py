"""The policy pack served the way `pulumi preview --policy-pack infra/policy` serves it.

The CLI starts `python -m pulumi.policy <engine> infra/policy`, reads the port it prints, and talks
gRPC to it: GetAnalyzerInfo, Configure (from --policy-pack-config), Analyze per resource and
AnalyzeStack once. This test does the same with the dev stack and checks that the pack reports
exactly what the in-process bridge reports, so the bridge-based tests speak for the real pack.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from infra.policy.rules.pack import RULES
from infra.policy.rules.shared import REPLICATION_GROUP
from testkit.program import ProgramRun, RecordedResource
from tests.infra.policy.policy_bridge import POLICY_DIR, evaluate, outputs, tier_config

STARTUP_DEADLINE_SECONDS = 30
LEVEL_NAMES = {analyzer_pb2.ADVISORY: "advisory", analyzer_pb2.MANDATORY: "mandatory"}


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    pack = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(POLICY_DIR)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = _read_port(pack)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=STARTUP_DEADLINE_SECONDS)
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        pack.terminate()
        pack.wait(timeout=10)


def _read_port(pack: subprocess.Popen[str]) -> int:
    """The pack prints its port on the first line of stdout once it serves."""
    assert pack.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(pack.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if selector.select(timeout=deadline - time.monotonic()):
                line = pack.stdout.readline().strip()
                assert line.isdigit(), f"the policy pack did not start (exit code {pack.poll()}): {line!r}"
                return int(line)
    raise AssertionError(f"the policy pack printed no port within {STARTUP_DEADLINE_SECONDS} s")


def _configure_request(config: Mapping[str, Any]) -> analyzer_pb2.ConfigureAnalyzerRequest:
    """What the CLI sends for a --policy-pack-config file."""
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for name, entry in config.items():
        values = {"enforcementLevel": entry} if isinstance(entry, str) else dict(entry)
        policy_config = analyzer_pb2.PolicyConfig(
            enforcementLevel=analyzer_pb2.EnforcementLevel.Value(values.pop("enforcementLevel").upper())
        )
        policy_config.properties.update(values)
        request.policyConfig[name].CopyFrom(policy_config)
    return request


def _struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(json.loads(json.dumps(props)))
    return message


def _analyzer_resource(resource: RecordedResource) -> analyzer_pb2.AnalyzerResource:
    return analyzer_pb2.AnalyzerResource(
        type=resource.type, urn=resource.urn, name=resource.name, properties=_struct(outputs(resource))
    )


def _reported(diagnostic: analyzer_pb2.AnalyzeDiagnostic, analyzed_urn: str) -> tuple[str, str, str, str]:
    # The message is the policy description, a newline, then what the rule reported.
    reported_message = diagnostic.message.split("\n", 1)[1]
    level = LEVEL_NAMES[diagnostic.enforcementLevel]
    return diagnostic.policyName, level, diagnostic.urn or analyzed_urn, reported_message


def test_pack_lists_every_rule_as_mandatory_by_default(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "djcelery-guardrails"
    assert [policy.name for policy in info.policies] == [rule.name for rule in RULES]
    assert {policy.enforcementLevel for policy in info.policies} == {analyzer_pb2.MANDATORY}


def test_pack_reports_what_the_bridge_reports(
    analyzer: analyzer_pb2_grpc.AnalyzerStub, dev_run: ProgramRun
) -> None:
    config = tier_config("dev")
    analyzer.Configure(_configure_request(config))

    served = []
    for resource in dev_run.resources:
        request = analyzer_pb2.AnalyzeRequest(
            type=resource.type, urn=resource.urn, name=resource.name, properties=_struct(resource.inputs)
        )
        # The analyzer leaves the URN empty; the CLI attributes the diagnostic to the analyzed resource.
        served += [_reported(d, resource.urn) for d in analyzer.Analyze(request).diagnostics]
    stack_request = analyzer_pb2.AnalyzeStackRequest(
        resources=[_analyzer_resource(r) for r in dev_run.resources]
    )
    served += [_reported(d, "") for d in analyzer.AnalyzeStack(stack_request).diagnostics]

    bridged = sorted((v.rule, v.level, v.urn, v.message) for v in evaluate(dev_run.resources, config))
    assert bridged, "the dev stack should show the advisory (relaxed) rules, or this comparison proves little"
    assert sorted(served) == bridged


def test_generated_auth_token_does_not_block_a_preview(
    analyzer: analyzer_pb2_grpc.AnalyzerStub, dev_run: ProgramRun
) -> None:
    # In the preview of a new stack the generated token is still unknown; only its presence matters.
    analyzer.Configure(_configure_request(tier_config("dev")))
    redis = dev_run.one(REPLICATION_GROUP)
    request = analyzer_pb2.AnalyzeRequest(
        type=redis.type,
        urn=redis.urn,
        name=redis.name,
        properties=_struct({**redis.inputs, "authToken": UNKNOWN_STRING_VALUE}),
    )
    diagnostics = analyzer.Analyze(request).diagnostics
    assert not [d for d in diagnostics if d.policyName == "elasticache-auth"], [
        d.message for d in diagnostics
    ]
