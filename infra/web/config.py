"""Web settings of a stack: the gunicorn service and the load balancer in front of it."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.reader import ConfigReader
from infra.services.task_sizes import TaskSize, read_task_size

CERTIFICATE_ARN_PATTERN = r"(arn:aws[\w-]*:acm:[\w-]+:\d{12}:certificate/[\w-]+)?"
DOMAIN_NAME_PATTERN = r"(([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,})?"


@dataclass(frozen=True)
class WebConfig:
    size: TaskSize
    desired_count: int
    spot: bool
    certificate_arn: str  # empty: HTTP only
    domain_name: str  # empty: the ALB's DNS name only
    alb_idle_timeout_seconds: int
    alb_deletion_protection: bool
    alb_access_logs: bool
    gunicorn_timeout_seconds: int

    @property
    def https(self) -> bool:
        return bool(self.certificate_arn)

    @classmethod
    def read(cls, read: ConfigReader) -> WebConfig:
        config = cls(
            size=read_task_size(read, "webCpu", "webMemory"),
            desired_count=read.integer("webDesiredCount", 0, 100),
            spot=read.boolean("webSpot"),
            certificate_arn=read.string(
                "certificateArn", CERTIFICATE_ARN_PATTERN, "empty, or an ACM certificate ARN"
            ),
            domain_name=read.string(
                "domainName", DOMAIN_NAME_PATTERN, "empty, or a lower-case host name like app.example.com"
            ),
            alb_idle_timeout_seconds=read.integer("albIdleTimeoutSeconds", 1, 4000),
            alb_deletion_protection=read.boolean("albDeletionProtection"),
            alb_access_logs=read.boolean("albAccessLogs"),
            gunicorn_timeout_seconds=read.integer("gunicornTimeoutSeconds", 1, 3600),
        )
        request, idle = config.gunicorn_timeout_seconds, config.alb_idle_timeout_seconds
        if read.valid("gunicornTimeoutSeconds", "albIdleTimeoutSeconds") and idle <= request:
            read.report("albIdleTimeoutSeconds", idle, f"more than gunicornTimeoutSeconds ({request})")
        if read.valid("certificateArn", "domainName") and config.domain_name and not config.https:
            read.report(
                "domainName",
                config.domain_name,
                "empty unless certificateArn is set (a custom domain is served over HTTPS)",
            )
        return config
