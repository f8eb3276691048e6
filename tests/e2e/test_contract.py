"""Drift between the task definitions and the app: names, commands and the timing invariants.

The fault scenarios start processes from the dev stack's task definitions; these checks make sure
what those definitions carry is what the app reads, for every stack, and that the production
timings keep the guarantees the scenarios prove with short ones.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest

from infra import app_contract
from testkit.processes import APP_DIR
from tests.e2e.stack import APP_SHORT_TIMINGS, AWS_ONLY_VALUES, SHORT_TIMINGS
from tests.e2e.task_definitions import ContainerSpec, stack_containers

PRODUCTION_SETTINGS_FILES = [APP_DIR / "config/settings/base.py", APP_DIR / "config/settings/production.py"]
# The roles that run Django (the publisher reads the broker only).
APP_ROLES = tuple(role.value for role in app_contract.Role if role is not app_contract.Role.QUEUE_METRICS)
QUEUE_METRICS_VARIABLES = (
    app_contract.QUEUE_METRICS_NAMESPACE,
    app_contract.QUEUE_METRICS_POOLS,
    app_contract.ECS_CLUSTER,
    app_contract.AWS_REGION,
    app_contract.REDIS_URL,
)


def variables_read(settings_file: Path) -> dict[str, bool]:
    """Environment variables a settings module reads through django-environ: name -> has a default."""
    read: dict[str, bool] = {}
    for node in ast.walk(ast.parse(settings_file.read_text())):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        function = node.func
        reader = function.value if isinstance(function, ast.Attribute) else function
        name = node.args[0]
        if isinstance(reader, ast.Name) and reader.id == "env" and isinstance(name, ast.Constant):
            read[name.value] = any(keyword.arg == "default" for keyword in node.keywords)
    return read


def production_variables() -> dict[str, bool]:
    read: dict[str, bool] = {}
    for settings_file in PRODUCTION_SETTINGS_FILES:
        read.update(variables_read(settings_file))
    assert read, "found no env(...) reads in the production settings; has the way settings are read changed?"
    return read


def missing(container: ContainerSpec, names) -> list[str]:
    return sorted(set(names) - container.variable_names)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_role_runs_from_the_image_workdir(stack: str) -> None:
    containers = stack_containers(stack)
    for role in (*APP_ROLES, "queue-metrics"):
        assert containers.by_role(role), f"stack {stack} has no {role} container"
    for container in containers.containers:
        assert container.working_directory == app_contract.APP_WORKDIR, (
            f"{container.family}/{container.name} runs from {container.working_directory!r}; the role "
            f"commands are relative to {app_contract.APP_WORKDIR}"
        )


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_task_definitions_provide_every_variable_production_requires(stack: str) -> None:
    required = [name for name, has_default in production_variables().items() if not has_default]
    gaps = {
        f"{container.family}/{container.name}": missing(container, required)
        for role in APP_ROLES
        for container in stack_containers(stack).by_role(role)
    }
    gaps = {container: names for container, names in gaps.items() if names}
    assert not gaps, f"stack {stack}: containers lack variables the app needs in production: {gaps}"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_queue_metrics_publisher_gets_its_variables(stack: str) -> None:
    publisher = stack_containers(stack).one("queue-metrics")
    assert not missing(publisher, QUEUE_METRICS_VARIABLES), (
        f"stack {stack}: the queue-metrics publisher lacks {missing(publisher, QUEUE_METRICS_VARIABLES)}"
    )


def test_test_overrides_only_replace_values_the_task_definitions_set() -> None:
    set_somewhere = set().union(*(spec.environment for spec in stack_containers("dev").containers))
    invented = sorted((set(AWS_ONLY_VALUES) | set(SHORT_TIMINGS)) - set_somewhere)
    assert not invented, f"the e2e overrides name variables no dev container has: {invented}"


def test_app_timings_the_harness_shortens_are_app_defaults_no_task_definition_sets() -> None:
    set_somewhere = set().union(*(spec.environment for spec in stack_containers("dev").containers))
    defaults = {name for name, has_default in production_variables().items() if has_default}
    assert not set(APP_SHORT_TIMINGS) & set_somewhere, "set by a task definition: belongs in SHORT_TIMINGS"
    assert set(APP_SHORT_TIMINGS) <= defaults, "the app must read these, with a default"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_timing_invariants_behind_the_fault_scenarios(stack: str) -> None:
    for worker in stack_containers(stack).by_role("worker"):
        env = worker.environment
        soft = int(env[app_contract.CELERY_TASK_SOFT_TIME_LIMIT])
        hard = int(env[app_contract.CELERY_TASK_TIME_LIMIT])
        visibility = int(env[app_contract.CELERY_VISIBILITY_TIMEOUT])
        assert soft < hard < visibility, (
            f"{stack} {worker.family}: need soft ({soft}) < hard ({hard}) < visibility timeout "
            f"({visibility}), or a task still running is delivered a second time"
        )
        assert int(env[app_contract.CELERY_WORKER_STOP_TIMEOUT]) == worker.stop_timeout, (
            f"{stack} {worker.family}: the worker is told its stop timeout is "
            f"{env[app_contract.CELERY_WORKER_STOP_TIMEOUT]} s but ECS uses {worker.stop_timeout} s"
        )


# How long a fetched message may wait in a loaded worker before its task starts and claims an attempt.
FETCH_TO_START_SLACK_SECONDS = 5


def redelivery_margin(env: Mapping[str, str]) -> int:
    """Seconds between the latest end of a killed attempt's lease and its message's redelivery."""
    first_retry_delay = min(
        int(env[app_contract.WELCOME_EMAIL_RETRY_BACKOFF_SECONDS]),
        int(env[app_contract.WELCOME_EMAIL_RETRY_MAX_DELAY_SECONDS]),
    )
    longest_lease = int(env[app_contract.CELERY_TASK_TIME_LIMIT]) + first_retry_delay
    return int(env[app_contract.CELERY_VISIBILITY_TIMEOUT]) - longest_lease


@pytest.mark.parametrize("timings", ["dev", "prod", "e2e harness"])
def test_a_killed_workers_redelivered_message_finds_its_attempt_due(timings: str) -> None:
    """Otherwise the redelivery is dropped as `scheduled` and only Beat's sweep sends the email."""
    stack = "dev" if timings == "e2e harness" else timings
    for worker in stack_containers(stack).by_role("worker"):
        env = dict(worker.environment)
        if timings == "e2e harness":
            env.update({name: value for name, value in SHORT_TIMINGS.items() if name in env})
        assert redelivery_margin(env) >= FETCH_TO_START_SLACK_SECONDS, (
            f"{timings} {worker.family}: the visibility timeout is only {redelivery_margin(env)} s longer "
            f"than a killed attempt's lease (hard time limit + first retry delay); need at least "
            f"{FETCH_TO_START_SLACK_SECONDS} s"
        )
