"""The stubbed ECS client the ops tests script call by call (moto's tasks never stop or exit)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from tests.infra.ops.test_ops import REGION


@pytest.fixture
def ecs() -> Iterator[tuple[Any, Stubber]]:
    client = botocore.session.get_session().create_client(
        "ecs", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()
