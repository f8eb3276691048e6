"""Web settings of a stack: the gunicorn service, its autoscaling, and the edge in front of it
(the load balancer, HTTPS for a custom domain, the firewall and who may reach the admin)."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from infra.config.reader import ConfigReader
from infra.services.task_sizes import TaskSize, read_task_size

CERTIFICATE_ARN_PATTERN = r"(arn:aws[\w-]*:acm:[\w-]+:\d{12}:certificate/[\w-]+)?"
DOMAIN_NAME_PATTERN = r"(([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,})?"
# Route 53 hosted zone ids: Z followed by upper-case letters and digits (Z1D633PJN98FT9).
HOSTED_ZONE_ID_PATTERN = r"(Z[A-Z0-9]{4,32})?"
EVERYONE = ("0.0.0.0/0", "::/0")
MAX_ADMIN_CIDRS = 20
# Where the app is reached: what to set when HTTPS is required and missing.
HTTPS_KEYS_HELP = (
    "a domain you own and the Route 53 hosted zone that holds it, because requireHttps is true "
    "(the program issues and validates the certificate and points the domain at the load balancer): "
    "`pulumi config set domainName app.yourcompany.com` and `pulumi config set hostedZoneId <zone id>` "
    "(`aws route53 list-hosted-zones`); or bring an ACM certificate with "
    "`pulumi config set certificateArn <arn>`"
)


@dataclass(frozen=True)
class WebScaling:
    """Application Auto Scaling of the web service: target tracking on two metrics, within a range."""

    min_count: int  # also the task count the service is created with
    max_count: int
    requests_per_task: int  # ALB requests per minute per task (ALBRequestCountPerTarget) to aim for
    cpu_percent: int  # average CPU of the service to aim for

    @classmethod
    def read(cls, read: ConfigReader) -> WebScaling:
        scaling = cls(
            min_count=read.integer("webMinCount", 1, 1000),
            max_count=read.integer("webMaxCount", 1, 1000),
            requests_per_task=read.integer("webRequestsPerTask", 10, 100_000),
            cpu_percent=read.integer("webCpuTargetPercent", 10, 90),
        )
        low, high = scaling.min_count, scaling.max_count
        if read.valid("webMinCount", "webMaxCount") and low > high:
            read.report("webMinCount", low, f"at most webMaxCount ({high})")
        # Autoscaling owns the count once the service exists: a count key would act only once.
        read.retired(
            "webDesiredCount", "web autoscaling owns the task count; set webMinCount and webMaxCount"
        )
        return scaling


# `webDeployment` values and the ECS deployment strategy each one is (botocore ECS model,
# DeploymentConfiguration.strategy: ROLLING, BLUE_GREEN, LINEAR, CANARY).
ECS_STRATEGIES = {"rolling": "ROLLING", "canary": "CANARY", "linear": "LINEAR", "blue_green": "BLUE_GREEN"}
# Ranges of the botocore ECS model's documentation: canaryPercent and stepPercent are multiples of 0.1
# (0.1-100 and 3-100), every bake time 0-1440 minutes (pulumi-aws ServiceDeploymentConfigurationArgs
# gives the range of bakeTimeInMinutes, which botocore leaves unsaid).
MAX_BAKE_MINUTES = 1440


@dataclass(frozen=True)
class WebDeployment:
    """How a new web revision replaces the running one, and what rolls it back.

    `rolling` replaces tasks in place (the circuit breaker rolls back tasks that do not start);
    the other strategies start the whole new revision beside the old one behind a second target
    group and move production traffic to it: a share first (`canary`), in equal steps (`linear`) or
    at once (`blue_green`), then keep both for the bake time. Alarms on the load balancer's 5xx rate
    and p99 latency roll it back until the bake ends.
    """

    strategy: str  # a key of ECS_STRATEGIES
    canary_percent: float  # production traffic the new revision gets first (canary)
    canary_minutes: int  # how long it gets only that share (canary)
    linear_step_percent: float  # traffic moved per step (linear)
    linear_step_minutes: int  # wait between two steps (linear)
    bake_minutes: int  # both revisions kept after all traffic moved; rollback is then a weight flip
    rollback_5xx_percent: int  # load-balancer 5xx share of requests that rolls the deployment back
    rollback_p99_milliseconds: int  # load-balancer p99 response time that rolls it back

    @property
    def shifts_traffic(self) -> bool:
        """The new revision runs beside the old one behind the alternate target group."""
        return self.strategy != "rolling"

    @property
    def ecs_strategy(self) -> str:
        return ECS_STRATEGIES[self.strategy]

    @property
    def shift_minutes(self) -> int:
        """Minutes from the first production traffic on the new revision to all of it."""
        if self.strategy == "canary":
            return self.canary_minutes
        if self.strategy == "linear":
            steps = math.ceil(100 / self.linear_step_percent)
            return (steps - 1) * self.linear_step_minutes  # no wait after the last step
        return 0

    @property
    def watched_minutes(self) -> int:
        """Minutes the alarms may still roll a deployment back once the new tasks are healthy."""
        return self.shift_minutes + self.bake_minutes if self.shifts_traffic else 0

    @classmethod
    def read(cls, read: ConfigReader) -> WebDeployment:
        return cls(
            strategy=read.choice("webDeployment", tuple(ECS_STRATEGIES)),
            canary_percent=read.tenths("webCanaryPercent", 0.1, 100),
            canary_minutes=read.integer("webCanaryMinutes", 0, MAX_BAKE_MINUTES),
            linear_step_percent=read.tenths("webLinearStepPercent", 3, 100),
            linear_step_minutes=read.integer("webLinearStepMinutes", 0, MAX_BAKE_MINUTES),
            bake_minutes=read.integer("webBakeMinutes", 0, MAX_BAKE_MINUTES),
            rollback_5xx_percent=read.integer("webRollback5xxPercent", 1, 100),
            rollback_p99_milliseconds=read.integer("webRollbackP99Milliseconds", 10, 600_000),
        )


@dataclass(frozen=True)
class FirewallConfig:
    """AWS WAF on the load balancer: AWS managed rule groups and a per-address rate limit."""

    enabled: bool
    rate_limit: int  # requests per client IP address per 5 minutes before WAF blocks it

    @classmethod
    def read(cls, read: ConfigReader) -> FirewallConfig:
        return cls(
            enabled=read.boolean("wafEnabled"),
            rate_limit=read.integer("wafRateLimit", 10, 2_000_000_000),
        )


@dataclass(frozen=True)
class WebConfig:
    size: TaskSize
    scaling: WebScaling
    spot: bool
    certificate_arn: str  # a certificate the user brings; empty: issued for domain_name, or HTTP only
    domain_name: str  # empty: the ALB's DNS name only
    hosted_zone_id: str  # Route 53 zone of domain_name: certificate validation and alias records
    require_https: bool  # refuse a stack that would serve plain HTTP
    alb_idle_timeout_seconds: int
    alb_deletion_protection: bool
    alb_access_logs: bool
    gunicorn_timeout_seconds: int
    # gunicorn processes per task, and threads per process: each thread may hold a database
    # connection (CONN_MAX_AGE), so together with webMaxCount they set web's share of the database.
    gunicorn_workers: int
    gunicorn_threads: int
    firewall: FirewallConfig
    # Networks that may reach the admin (app_contract.ADMIN_PATH); everyone else gets a 404.
    admin_allowed_cidrs: tuple[str, ...]
    deployment: WebDeployment

    @property
    def issues_certificate(self) -> bool:
        """The program requests an ACM certificate for domain_name and validates it through DNS."""
        return bool(self.hosted_zone_id) and not self.certificate_arn

    @property
    def https(self) -> bool:
        return bool(self.certificate_arn) or self.issues_certificate

    @property
    def admin_open_to_everyone(self) -> bool:
        return set(EVERYONE) <= set(self.admin_allowed_cidrs)

    @property
    def threads_per_task(self) -> int:
        """Requests one web task serves at once, each on a thread that may hold a connection."""
        return self.gunicorn_workers * self.gunicorn_threads

    @property
    def admin_allow_rules(self) -> bool:
        """Some networks, not everyone, reach the admin: listener rules forward them to the app."""
        return bool(self.admin_allowed_cidrs) and not self.admin_open_to_everyone

    @property
    def deregistration_delay_seconds(self) -> int:
        """How long a task leaving the target group (scale-in, deploy) keeps serving the requests it
        has: ECS sends SIGTERM only once the target has drained, so a request that started just
        before has its whole gunicorn timeout to finish."""
        return self.gunicorn_timeout_seconds

    @classmethod
    def read(cls, read: ConfigReader) -> WebConfig:
        config = cls(
            size=read_task_size(read, "webCpu", "webMemory"),
            scaling=WebScaling.read(read),
            spot=read.boolean("webSpot"),
            certificate_arn=read.string(
                "certificateArn", CERTIFICATE_ARN_PATTERN, "empty, or an ACM certificate ARN"
            ),
            domain_name=read.string(
                "domainName", DOMAIN_NAME_PATTERN, "empty, or a lower-case host name like app.example.com"
            ),
            hosted_zone_id=read.string(
                "hostedZoneId",
                HOSTED_ZONE_ID_PATTERN,
                "empty, or a Route 53 hosted zone id like Z0123456789ABC",
            ),
            require_https=read.boolean("requireHttps"),
            alb_idle_timeout_seconds=read.integer("albIdleTimeoutSeconds", 1, 4000),
            alb_deletion_protection=read.boolean("albDeletionProtection"),
            alb_access_logs=read.boolean("albAccessLogs"),
            gunicorn_timeout_seconds=read.integer("gunicornTimeoutSeconds", 1, 3600),
            gunicorn_workers=read.integer("gunicornWorkers", 1, 32),
            gunicorn_threads=read.integer("gunicornThreads", 1, 64),
            firewall=FirewallConfig.read(read),
            admin_allowed_cidrs=read_cidrs(read, "adminAllowedCidrs"),
            deployment=WebDeployment.read(read),
        )
        request, idle = config.gunicorn_timeout_seconds, config.alb_idle_timeout_seconds
        if read.valid("gunicornTimeoutSeconds", "albIdleTimeoutSeconds") and idle <= request:
            read.report("albIdleTimeoutSeconds", idle, f"more than gunicornTimeoutSeconds ({request})")
        config._check_https(read)
        config._check_admin_rules(read)
        return config

    def _check_admin_rules(self, read: ConfigReader) -> None:
        """A listener rule that forwards the allowed networks to the admin names one target group; a
        traffic-shifting deployment moves the app to the other one, leaving that rule forwarding to
        a target group without tasks. ECS moves only the production listener rule."""
        checked = read.valid("webDeployment", "adminAllowedCidrs")
        if checked and self.deployment.shifts_traffic and self.admin_allow_rules:
            read.report(
                "adminAllowedCidrs",
                list(self.admin_allowed_cidrs),
                f"empty or everyone ({', '.join(EVERYONE)}) while webDeployment is "
                f"{self.deployment.strategy}: the rule letting these networks in would forward to "
                "one target group, which every other deployment leaves without tasks (set "
                "webDeployment to rolling to let them in)",
            )

    def _check_https(self, read: ConfigReader) -> None:
        """A custom domain is served over HTTPS, with a certificate brought or issued in its zone."""
        if not read.valid("certificateArn", "domainName", "hostedZoneId", "requireHttps"):
            return
        if self.domain_name and not self.https:
            read.report(
                "domainName",
                self.domain_name,
                "empty unless hostedZoneId or certificateArn is set (a custom domain is served over HTTPS)",
            )
        elif self.hosted_zone_id and not self.domain_name:
            read.report("hostedZoneId", self.hosted_zone_id, "empty unless domainName is set (its zone)")
        elif self.require_https and not self.https:
            read.report("domainName/hostedZoneId", [self.domain_name, self.hosted_zone_id], HTTPS_KEYS_HELP)


def read_cidrs(read: ConfigReader, key: str) -> tuple[str, ...]:
    """A list of distinct IPv4 or IPv6 networks in CIDR notation, normalized (2001:DB8::/32 ->
    2001:db8::/32); an empty list allows no one."""
    value = read.json_value(key)
    if not isinstance(value, list) or len(value) > MAX_ADMIN_CIDRS:
        read.report(key, value, f'a list of at most {MAX_ADMIN_CIDRS} networks, e.g. ["203.0.113.0/24"]')
        return ()
    networks: list[str] = []
    for index, item in enumerate(value):
        try:
            network = str(ipaddress.ip_network(str(item), strict=True)) if isinstance(item, str) else None
        except ValueError:
            network = None
        if network is None:
            read.report(f"{key}[{index}]", item, "a network in CIDR notation, e.g. 203.0.113.0/24 or ::/0")
        elif network in networks:
            read.report(f"{key}[{index}]", item, "each network once")
        else:
            networks.append(network)
    return tuple(networks)
