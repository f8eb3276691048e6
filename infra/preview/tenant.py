"""A thin preview's tenant on its base: its database role, its database and its broker keys.

`PreviewTenant` is a dynamic resource whose provider runs the BASE's one-off `tenant` task
(infra/preview/base.py) through the release runner (start_task, wait_until_stopped), with two
overrides of its container: the command and REDIS_KEY_PREFIX=pr-N:. On create (and when the
connection limit changes) `python manage.py preview_tenant create --connection-limit N
--database-url-secret <the preview's DATABASE_URL secret>`, which creates or alters the role `pr_N`
and creates the database `pr_N` owned by it, closed to every other role; on delete the same with
`drop`, which drops both and unlinks every broker key under `pr-N:`. Both are idempotent, so a
retried update or destroy converges. The task reads the preview's DATABASE_URL with its task role,
which may read only previews' DATABASE_URL secrets; the base's ADMIN_DATABASE_URL and REDIS_URL
are its own secrets.

The base's task runs the base's image, so the tenant waits for the preview's secret and the
capacity check only, and is ready while the preview's image still builds or is promoted.

The engine deletes the resource from the provider and the inputs kept in the state, not from the
program (pulumi/pulumi#6285): everything the drop needs (cluster, task definition, network, log
group, secret, prefix, region) is in its props, and it depends on the secrets the task reads, so a
destroy drops the tenant before them.
"""

from __future__ import annotations

from typing import Any

import pulumi

from infra import app_contract, iam
from infra.data.secrets import secret_name
from infra.dynamic_providers import RunOnChangeProvider
from infra.release.provider import migration_task
from infra.release.runner import log_tail, start_task, wait_until_stopped

TENANT_TASK = "tenant"  # the base's one-off task: family <prefix>-tenant, log group /ecs/<prefix>/tenant
TENANT_TIMEOUT_SECONDS = 10 * 60
LOG_TAIL_LINES = 20
# A new limit alters the role; the tenant's name never changes within a stack (it is its PR number).
TENANT_TRIGGERS = ("connection_limit", "tenant")


class TenantError(Exception):
    """The tenant task failed; the message says what it printed last."""


class PreviewTenantProvider(RunOnChangeProvider):
    TRIGGERS = TENANT_TRIGGERS

    def _run(self, props: dict[str, Any]) -> dict[str, Any]:
        command = tenant_command("create", props)
        return {**props, "task_arn": self._run_task(props, command)}

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        self._run_task(props, tenant_command("drop", props))

    def _run_task(self, props: dict[str, Any], command: list[str]) -> str:
        """Runs `command` in the base's tenant task as this preview; its ARN once it exited with 0,
        else TenantError."""
        clients = self._clients(props["region"])
        task = migration_task(props)
        started_at = self._clock()
        environment = {app_contract.REDIS_KEY_PREFIX: props["key_prefix"]}
        task_arn = start_task(clients.ecs, task, command, environment)
        seen = wait_until_stopped(
            clients.ecs,
            task,
            task_arn,
            started_at + task.timeout_seconds,
            self._poll_interval_seconds,
            self._sleep,
            self._clock,
        )
        if seen.stopped and seen.exit_code == 0:
            return task_arn
        outcome = f"exited with code {seen.exit_code}" if seen.stopped else "did not finish in time"
        raise TenantError(
            f"Preview tenant: `{' '.join(command)}` in task {task_arn} {outcome}."
            f"{log_tail(clients.logs, task, task_arn, LOG_TAIL_LINES)}"
        )


def tenant_command(action: str, props: dict[str, Any]) -> list[str]:
    limit = int(props["connection_limit"]) if action == "create" else None
    return app_contract.preview_tenant_command(action, limit, props["database_url_secret"])


class PreviewTenant(pulumi.dynamic.Resource):
    task_arn: pulumi.Output[str]

    def __init__(
        self, name: str, props: dict[str, pulumi.Input[Any]], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(PreviewTenantProvider(), name, {**props, "task_arn": None}, opts)


def preview_secret_prefix(project: str, number: int) -> str:
    """The name prefix of preview N's secrets (`<project>-pr-N`); its DATABASE_URL secret is
    `<project>-pr-N-database-url`."""
    return f"{project}-pr-{number}"


def preview_database_url_secrets(project: str, region: str, account_id: str, partition: str = "aws") -> str:
    """Every preview's DATABASE_URL secret, and no other secret: Secrets Manager appends a hyphen and
    six random characters to a secret's name in its ARN, which `-??????` matches (Secrets Manager
    user guide, "Permissions reference for AWS Secrets Manager", ARN format and wildcards)."""
    name = f"{project}-pr-*-{secret_name(app_contract.DATABASE_URL)}-??????"
    return f"arn:{partition}:secretsmanager:{region}:{account_id}:secret:{name}"


def tenant_task_policy(project: str, region: str, account_id: str) -> iam.Policy:
    """The base's tenant task role: it reads the DATABASE_URL of the preview it serves, nothing else.
    Previews' secrets use the aws/secretsmanager key, so no kms:Decrypt is needed (a customer key
    would need it, Secrets Manager user guide, "Secret encryption and decryption")."""
    return iam.document(
        iam.statement(
            "ReadPreviewDatabaseUrls",
            "secretsmanager:GetSecretValue",
            preview_database_url_secrets(project, region, account_id),
        )
    )
