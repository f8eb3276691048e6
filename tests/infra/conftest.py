"""Session fixtures: the whole program run once per stack, shared by every test that reads it."""

import pytest

from testkit.previews import run_preview, run_preview_base
from testkit.program import ProgramRun, run_program


@pytest.fixture(scope="session")
def dev_run() -> ProgramRun:
    return run_program("dev")


@pytest.fixture(scope="session")
def prod_run() -> ProgramRun:
    return run_program("prod")


@pytest.fixture(scope="session")
def ephemeral_run() -> ProgramRun:
    """A fresh per-pull-request stack: no stack file, Pulumi.yaml defaults plus `ephemeral: true`."""
    return run_program("pr-123", {"ephemeral": True})


# A user's own project: the image is built from it instead of app/.
OWN_PROJECT = "tests/infra/fixtures/own_project"
CERTIFICATE_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f"
CUSTOM_POOLS = [
    {
        "name": "fast",
        "queues": ["default"],
        "concurrency": 8,
        "cpu": 1024,
        "memory": 2048,
        "minCount": 1,
        "maxCount": 6,
        "spot": False,
        "targetLatencySeconds": 10,
        "taskSeconds": 0.5,
        # A pool of short tasks: reserving a few messages ahead trades redelivery delay for throughput.
        "prefetchMultiplier": 4,
    },
    {
        "name": "bulk",
        "queues": ["email", "reports"],
        "concurrency": 2,
        "cpu": 512,
        "memory": 1024,
        "minCount": 0,
        "maxCount": 3,
        "spot": True,
        "targetLatencySeconds": 300,
        "taskSeconds": 20,
        # Report tasks that leak memory: a process past 768 MiB is replaced after its task.
        "maxMemoryPerChildMiB": 768,
    },
]


@pytest.fixture(scope="session")
def custom_run() -> ProgramRun:
    """A new ephemeral stack that turns on the optional features: HTTPS with a domain, ALB access logs,
    one NAT gateway, Graviton, Valkey, two worker pools, no Beat, the image built from the user's
    own project, the stack's own KMS key, versioned media and database insight."""
    return run_program(
        "pr-456",
        {
            "ephemeral": True,
            "albAccessLogs": True,
            "certificateArn": CERTIFICATE_ARN,
            "domainName": "app.example.com",
            "natMode": "single",
            "imagePlatform": "linux/arm64",
            "redisEngine": "valkey",
            "redisEngineVersion": "8.0",
            "workerPools": CUSTOM_POOLS,
            "beatEnabled": False,
            "imageContext": OWN_PROJECT,
            "imageDockerfile": f"{OWN_PROJECT}/Dockerfile",
            "customerManagedKey": True,
            "mediaVersioning": True,
            "dbPerformanceInsights": True,
            "dbMonitoringIntervalSeconds": 30,
            # Two pools of up to 6 x 9 and 3 x 3 worker processes hold more connections than a
            # db.t4g.micro accepts (tests/infra/data/test_connection_budget.py).
            "dbInstanceClass": "db.t4g.small",
        },
    )


@pytest.fixture(scope="session")
def preview_base_run() -> ProgramRun:
    """Pulumi.preview-base.yaml with the domain its owner sets."""
    return run_preview_base()


@pytest.fixture(scope="session")
def preview_run(preview_base_run: ProgramRun) -> ProgramRun:
    """Pull request 42's thin preview, reading the base's outputs through its StackReference."""
    return run_preview(preview_base_run)
