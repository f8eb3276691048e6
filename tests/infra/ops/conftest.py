"""The stubbed ECS client the ops tests script call by call (moto's tasks never stop or exit), the
deployed stack, and moto's CloudWatch Logs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from infra.ops.stack import DeployedStack
from tests.infra.ops.test_ops import LOG_GROUP, OUTPUTS, REGION


@pytest.fixture
def ecs() -> Iterator[tuple[Any, Stubber]]:
    client = botocore.session.get_session().create_client(
        "ecs", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def stack() -> DeployedStack:
    return DeployedStack.from_outputs("dev", REGION, OUTPUTS)


@pytest.fixture
def logs() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("logs", region_name=REGION)
        client.create_log_group(logGroupName=LOG_GROUP)
        yield client
