"""The names of a stack's outputs: what the program exports, and what `python -m infra.ops`, the
workflows, other stacks (`imageFromStack`) and the tests read back, spelled in one place."""

from __future__ import annotations

from enum import StrEnum


class StackOutput(StrEnum):
    WEB_URL = "webUrl"
    ALB_DNS_NAME = "albDnsName"
    CLUSTER_NAME = "clusterName"
    CLUSTER_ARN = "clusterArn"
    WEB_SERVICE_NAME = "webServiceName"
    # The value of the header (infra/web/traffic.py TEST_HEADER) that reaches the revision being
    # deployed before users do; a secret. None with a rolling web deployment.
    WEB_TEST_HEADER_VALUE = "webTestHeaderValue"
    WORKER_SERVICE_NAMES = "workerServiceNames"  # pool name -> service name
    BEAT_SERVICE_NAME = "beatServiceName"  # None without Beat
    ECR_REPOSITORY_URL = "ecrRepositoryUrl"
    IMAGE_REF = "imageRef"  # repository@sha256:digest of the image the stack runs
    RELEASE = "release"  # the release record (infra/release/record.py)
    LOG_GROUP_NAMES = "logGroupNames"  # role or service key -> log group
    SECRET_ARNS = "secretArns"  # noqa: S105 - an output name, not a secret
    SERVICE_SUBNET_IDS = "serviceSubnetIds"
    APP_SECURITY_GROUP_ID = "appSecurityGroupId"
    ASSIGN_PUBLIC_IP = "assignPublicIp"
    WEB_TASK_DEFINITION_ARN = "webTaskDefinitionArn"
    MIGRATE_TASK_DEFINITION_ARN = "migrateTaskDefinitionArn"
    WEB_CONTAINER_NAME = "webContainerName"
    QUEUE_METRICS_NAMESPACE = "queueMetricsNamespace"
    ALARM_TOPIC_ARN = "alarmTopicArn"
    DASHBOARD_NAME = "dashboardName"
    DB_INSTANCE_IDENTIFIER = "dbInstanceIdentifier"
    MEDIA_BUCKET_NAME = "mediaBucketName"
    EXEC_AUDIT_LOG_GROUP_NAME = "execAuditLogGroupName"
    DATA_KEY_ARN = "dataKeyArn"
    # A preview base's outputs, which its previews read through a StackReference (infra/preview).
    VPC_ID = "vpcId"
    LOAD_BALANCER_ARN_SUFFIX = "loadBalancerArnSuffix"
    PREVIEW_LISTENER_ARN = "previewListenerArn"  # the HTTPS listener previews add their rules to
    PREVIEW_DOMAIN = "previewDomain"  # preview N is https://pr-N.<previewDomain>
    PREVIEW_CAPACITY = "previewCapacity"
    PREVIEW_CONNECTION_LIMIT = "previewConnectionLimit"
    DB_ADDRESS = "dbAddress"
    DB_PORT = "dbPort"
    ADMIN_DATABASE_URL_SECRET_ARN = "adminDatabaseUrlSecretArn"  # noqa: S105 - an output name
    BROKER_URL_SECRET_ARN = "brokerUrlSecretArn"  # noqa: S105 - an output name
    BROKER_URL = "brokerUrl"  # secret: the base broker's REDIS_URL, which each preview's own secret holds
    ECR_REPOSITORY_NAME = "ecrRepositoryName"
    # The base's one-off task that creates and drops previews' tenants (infra/preview/tenant.py) and
    # lists orphans for the janitor (.github/scripts/preview_base.py).
    TENANT_TASK_DEFINITION_ARN = "tenantTaskDefinitionArn"
    TENANT_CONTAINER_NAME = "tenantContainerName"
    TENANT_LOG_GROUP_NAME = "tenantLogGroupName"
    EXEC_TASK_POLICY = "execTaskPolicy"  # what a task role needs for ECS Exec on the base's cluster
