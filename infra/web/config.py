"""Web settings of a stack: the gunicorn service, its autoscaling, and the edge in front of it
(the load balancer, HTTPS for a custom domain, the firewall and who may reach the admin)."""

from __future__ import annotations

import ipaddress
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
    firewall: FirewallConfig
    # Networks that may reach the admin (app_contract.ADMIN_PATH); everyone else gets a 404.
    admin_allowed_cidrs: tuple[str, ...]

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
            firewall=FirewallConfig.read(read),
            admin_allowed_cidrs=read_cidrs(read, "adminAllowedCidrs"),
        )
        request, idle = config.gunicorn_timeout_seconds, config.alb_idle_timeout_seconds
        if read.valid("gunicornTimeoutSeconds", "albIdleTimeoutSeconds") and idle <= request:
            read.report("albIdleTimeoutSeconds", idle, f"more than gunicornTimeoutSeconds ({request})")
        config._check_https(read)
        return config

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
