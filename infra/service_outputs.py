"""The outputs that name a stack's services and tasks, the same in a full stack and a thin preview:
`python -m infra.ops`, the workflows and the tests find the services through them.

A full stack runs each role in a service of its own; a thin preview runs them all in one
(infra/preview/app_service.py), which the outputs then name for every role."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from infra.app_contract import Role
from infra.outputs import StackOutput
from infra.scheduler.scheduler import Scheduler
from infra.services.fargate import FargateService, FargateTask
from infra.web.service import WebService
from infra.workers.pool import WorkerPool


@dataclass(frozen=True)
class RoleServices:
    """Which ECS service runs each role."""

    web: FargateService  # its task definition's main container is the web container
    workers: Mapping[str, FargateService]  # pool name -> the service running its workers
    beat: FargateService | None  # None without Beat
    log_groups: Mapping[str, str]  # role or service key -> log group
    # The value of the header that reaches a web deployment's new revision; None: rolling.
    test_header_value: pulumi.Output[str] | None = None


def separate_services(
    web: WebService, workers: Mapping[str, WorkerPool], scheduler: Scheduler, *, beat_enabled: bool
) -> RoleServices:
    """A full stack's services: web, one per pool, the scheduler (Beat, or the publisher alone)."""
    services = [web.service, *(worker.service for worker in workers.values()), scheduler.service]
    return RoleServices(
        web=web.service,
        workers={pool: worker.service for pool, worker in workers.items()},
        beat=scheduler.service if beat_enabled else None,
        log_groups={service.key: service.task.log_group_name for service in services},
        test_header_value=web.traffic.test_header_value if web.traffic else None,
    )


def export_services(services: RoleServices, migrate: FargateTask) -> None:
    web, header = services.web, services.test_header_value
    pulumi.export(StackOutput.WEB_SERVICE_NAME, web.service_name)
    pulumi.export(StackOutput.WEB_TEST_HEADER_VALUE, pulumi.Output.secret(header) if header else None)
    pulumi.export(
        StackOutput.WORKER_SERVICE_NAMES,
        {pool: service.service_name for pool, service in services.workers.items()},
    )
    pulumi.export(StackOutput.BEAT_SERVICE_NAME, services.beat.service_name if services.beat else None)
    pulumi.export(
        StackOutput.LOG_GROUP_NAMES, {Role.MIGRATE: migrate.log_group_name, **services.log_groups}
    )
    pulumi.export(StackOutput.WEB_TASK_DEFINITION_ARN, web.task.task_definition_arn)
    pulumi.export(StackOutput.MIGRATE_TASK_DEFINITION_ARN, migrate.task_definition_arn)
    pulumi.export(StackOutput.WEB_CONTAINER_NAME, web.task.container_name)
