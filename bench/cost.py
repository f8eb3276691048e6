"""Monthly cost model: what the dev and prod stacks declare, priced with a dated us-east-1 table.

Beside them, the marginal cost of an idle open pull request preview on a shared base (the resources
bench/preview.py lists), next to the full-copy `pr-N` stack it replaces.

The Pulumi program runs in-process under mocks (testkit/program.py, the same run the program
tests make), and every billable resource it declares is priced from bench/prices_us_east_1.json.
Worker services are priced at their declared desired count, i.e. idle (autoscaling moves them
between min and max); a busy worker's price per hour is shown beside them.

    .venv/bin/python -m bench.cost [--stack dev --stack prod]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import preview
from bench.report import REPO_ROOT, argument_parser, describe_machine, machine_facts, table, write_results
from infra import app_contract
from infra import connection_budget as budget
from infra.data.connections import BROKER_MAX_CLIENTS, app_connection_limit
from infra.stack import validate
from queuemetrics import schema
from testkit.program import ProgramRun, RecordedResource, run_program

PRICES_FILE = REPO_ROOT / "bench" / "prices_us_east_1.json"
DEV_TARGET_USD = 60.0
# Issue 26: an idle open preview costs at most this much a month on top of its base.
PREVIEW_TARGET_USD = 5.0


class CostModelError(Exception):
    """The program declares something the model or the price table cannot price."""


@dataclass(frozen=True)
class UsageAssumptions:
    """Usage the resources do not declare; stated so a reader can replace them with their own."""

    log_gb_per_month: float  # CloudWatch Logs ingestion, all services together
    nat_gb_per_month: float  # traffic through NAT gateways (image pulls, outbound email, AWS APIs)
    alb_average_lcu: float  # load balancer capacity units in use, averaged over the month
    web_requests_millions: float  # requests to the load balancer a month (WAF inspects each one)
    media_gb: float = 1.0  # media files kept in the bucket (all versions)
    media_puts_per_month: float = 1_000  # uploads (and multipart parts)
    media_gets_per_month: float = 10_000  # downloads through presigned links
    kms_requests_per_month: float = 50_000  # with the stack's key: task starts, secrets, uploads, logs
    exec_session_log_gb_per_month: float = 0.01  # ECS Exec session transcripts
    # Enhanced Monitoring writes one RDSOSMetrics event per interval to CloudWatch Logs; its size
    # grows with the process list (an assumption, not a measurement).
    enhanced_monitoring_kb_per_sample: float = 4.0


ASSUMPTIONS = {
    "dev": UsageAssumptions(
        log_gb_per_month=2, nat_gb_per_month=5, alb_average_lcu=0.1, web_requests_millions=0.5
    ),
    "prod": UsageAssumptions(
        log_gb_per_month=20,
        nat_gb_per_month=50,
        alb_average_lcu=1.0,
        web_requests_millions=10,
        media_gb=50,
        media_puts_per_month=100_000,
        media_gets_per_month=1_000_000,
        kms_requests_per_month=500_000,
        exec_session_log_gb_per_month=0.1,
    ),
    # The full-copy PR stack: the defaults plus `ephemeral: true`, used like dev.
    "pr-1": UsageAssumptions(
        log_gb_per_month=2, nat_gb_per_month=5, alb_average_lcu=0.1, web_requests_millions=0.5
    ),
}
# An idle preview: nobody requests it, it logs its start-up and little else.
PREVIEW_USAGE = UsageAssumptions(
    log_gb_per_month=0.1, nat_gb_per_month=0, alb_average_lcu=0, web_requests_millions=0
)
# The same stack with config values it already accepts, to show what each choice saves.
VARIANTS = {
    "dev + arm64 + valkey": (
        "dev",
        {"imagePlatform": "linux/arm64", "redisEngine": "valkey", "redisEngineVersion": "8.0"},
    ),
}
NOT_MODELLED = (
    "data transfer out to the internet and between AZs",
    "Container Insights metrics (prod turns them on)",
    "ECR image storage (about $0.10 per GB-month of kept images)",
    "RDS backup storage beyond the free allowance (the size of the database)",
    "ElastiCache snapshot storage",
    "ALB access logs in S3, SNS notifications, noncurrent versions of media files beyond the assumed size",
    "one-off migration tasks (a minute or two of Fargate per deploy)",
    "Secrets Manager and CloudWatch API calls other than PutMetricData",
    "the Route 53 hosted zone of your domain (it exists before the stack) and queries to the "
    "certificate's validation record",
    "web tasks beyond webMinCount while autoscaling has added them (their task-hour price is shown)",
)


@dataclass(frozen=True)
class LineItem:
    category: str
    item: str
    quantity: str
    monthly_usd: float


class PriceTable:
    """bench/prices_us_east_1.json, with lookups that name the missing entry when there is none."""

    def __init__(self, path: Path = PRICES_FILE) -> None:
        self.path = path
        self.data = json.loads(path.read_text())
        self.prices = self.data["prices"]
        self.hours_per_month: float = self.data["hours_per_month"]

    def usd(self, key: str) -> float:
        return float(self.prices[key]["usd"])

    def _lookup(self, key: str, *path: str) -> Any:
        entry = self.prices[key]
        for part in path:
            if part not in entry:
                known = sorted(name for name in entry if name not in ("unit", "verification"))
                raise CostModelError(
                    f"{self.path.name} has no price for {part!r} under {key!r} (known: {', '.join(known)}); "
                    "add it with its source"
                )
            entry = entry[part]
        return entry

    def fargate_task_hour(self, vcpu: float, memory_gb: float, architecture: str, spot_share: float) -> float:
        vcpu_hour = float(self._lookup("fargate_vcpu_hour", architecture)["usd"])
        gb_hour = float(self._lookup("fargate_gb_hour", architecture)["usd"])
        on_demand = vcpu * vcpu_hour + memory_gb * gb_hour
        discount = float(self.prices["fargate_spot_discount"]["fraction"])
        return on_demand * (1 - spot_share * discount)

    def rds_instance_hour(self, instance_class: str, multi_az: bool) -> float:
        single_az = float(self._lookup("rds_postgres_instance_hour_single_az", instance_class))
        return single_az * (2 if multi_az else 1)

    def elasticache_node_hour(self, engine: str, node_type: str) -> float:
        return float(self._lookup("elasticache_node_hour", engine, node_type))

    def alarm_metric_month(self, high_resolution: bool) -> float:
        return float(
            self.prices["cloudwatch_alarm_metric_month"]["high_resolution" if high_resolution else "standard"]
        )


# --- the walk over declared resources ---------------------------------------------------------------


def estimate(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> list[LineItem]:
    """Every priced line of one stack; raises CostModelError for anything it cannot price."""
    items: list[LineItem] = []
    for estimator in ESTIMATORS:
        items.extend(estimator(run, prices, usage))
    return items


def _month(prices: PriceTable, hourly: float) -> float:
    return hourly * prices.hours_per_month


def load_balancers(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    for lb in run.of_type("aws:lb/loadBalancer:LoadBalancer"):
        yield LineItem("Load balancer", f"ALB {lb.name}", "1 ALB", _month(prices, prices.usd("alb_hour")))
        yield LineItem(
            "Load balancer",
            f"ALB {lb.name} capacity units (assumed)",
            f"{usage.alb_average_lcu:g} LCU average",
            _month(prices, usage.alb_average_lcu * prices.usd("alb_lcu_hour")),
        )


@dataclass(frozen=True)
class FargateServiceShape:
    name: str
    tasks: int
    vcpu: float
    memory_gb: float
    architecture: str
    spot_share: float
    public_ip: bool

    @property
    def capacity(self) -> str:
        spot = "" if not self.spot_share else f", {self.spot_share:.0%} Spot"
        return f"{self.vcpu:g} vCPU / {self.memory_gb:g} GB, {self.architecture}{spot}"


def fargate_services(run: ProgramRun) -> list[FargateServiceShape]:
    task_definitions = {td.state["arn"]: td for td in run.of_type("aws:ecs/taskDefinition:TaskDefinition")}
    shapes = []
    for service in run.of_type("aws:ecs/service:Service"):
        task_definition = task_definitions[service.inputs["taskDefinition"]]
        strategies = service.inputs.get("capacityProviderStrategies") or [
            {"capacityProvider": service.inputs.get("launchType", "FARGATE"), "weight": 1}
        ]
        total_weight = sum(strategy.get("weight", 1) for strategy in strategies) or 1
        spot_weight = sum(
            strategy.get("weight", 1)
            for strategy in strategies
            if strategy["capacityProvider"] == "FARGATE_SPOT"
        )
        platform = task_definition.inputs.get("runtimePlatform") or {}
        shapes.append(
            FargateServiceShape(
                name=service.name.removesuffix("-service"),
                tasks=int(service.inputs.get("desiredCount", 0)),
                vcpu=int(task_definition.inputs["cpu"]) / 1024,
                memory_gb=int(task_definition.inputs["memory"]) / 1024,
                architecture=platform.get("cpuArchitecture", "X86_64"),
                spot_share=spot_weight / total_weight,
                public_ip=bool((service.inputs.get("networkConfiguration") or {}).get("assignPublicIp")),
            )
        )
    return shapes


def routes(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    kinds = ("aws:lb/targetGroup:TargetGroup", "aws:lb/listenerRule:ListenerRule")
    count = sum(len(run.of_type(kind)) for kind in kinds)
    if count:
        yield LineItem(
            "Load balancer",
            "target groups and listener rules",
            f"{count}",
            count * prices.usd("elb_target_group_or_rule_month"),
        )


def fargate(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    ranges = _scaling_ranges(run)
    for shape in fargate_services(run):
        task_hour = prices.fargate_task_hour(
            shape.vcpu, shape.memory_gb, shape.architecture, shape.spot_share
        )
        quantity = f"{shape.tasks} x ({shape.capacity})"
        low, high = ranges.get(shape.name, (shape.tasks, shape.tasks))
        if shape.tasks == 0 or high > low:
            quantity += f"; autoscaled {low}-{high}, ${task_hour:.4f} per task-hour when scaled out"
        yield LineItem("Fargate", f"service {shape.name}", quantity, _month(prices, shape.tasks * task_hour))


def _scaling_ranges(run: ProgramRun) -> dict[str, tuple[int, int]]:
    """Service logical name -> the (min, max) task count of its Application Auto Scaling target."""
    by_physical = {service.inputs["name"]: service.name for service in run.of_type("aws:ecs/service:Service")}
    ranges = {}
    for target in run.of_type("aws:appautoscaling/target:Target"):
        physical = str(target.inputs["resourceId"]).rsplit("/", 1)[-1]
        if physical in by_physical:
            logical = by_physical[physical].removesuffix("-service")
            ranges[logical] = (int(target.inputs["minCapacity"]), int(target.inputs["maxCapacity"]))
    return ranges


def databases(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    for db in run.of_type("aws:rds/instance:Instance"):
        multi_az = bool(db.inputs.get("multiAz"))
        instance_class = db.inputs["instanceClass"]
        layout = "Multi-AZ" if multi_az else "Single-AZ"
        yield LineItem(
            "RDS PostgreSQL",
            f"instance {db.name}",
            f"{instance_class}, {layout}",
            _month(prices, prices.rds_instance_hour(instance_class, multi_az)),
        )
        storage_type = db.inputs.get("storageType", "gp3")
        if storage_type != "gp3":
            raise CostModelError(f"{db.name}: storage type {storage_type!r} is not in the model (gp3 only)")
        gigabytes = int(db.inputs["allocatedStorage"])
        yield LineItem(
            "RDS PostgreSQL",
            f"storage {db.name}",
            f"{gigabytes} GB gp3, {layout}",
            gigabytes * prices.usd("rds_gp3_gb_month_single_az") * (2 if multi_az else 1),
        )


def caches(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    for group in run.of_type("aws:elasticache/replicationGroup:ReplicationGroup"):
        if "numCacheClusters" in group.inputs:
            nodes = int(group.inputs["numCacheClusters"])
        else:
            nodes = int(group.inputs.get("numNodeGroups", 1)) * (
                1 + int(group.inputs.get("replicasPerNodeGroup", 0))
            )
        engine, node_type = group.inputs.get("engine", "redis"), group.inputs["nodeType"]
        yield LineItem(
            "ElastiCache",
            f"{engine} {group.name}",
            f"{nodes} x {node_type}",
            _month(prices, nodes * prices.elasticache_node_hour(engine, node_type)),
        )


def nat_gateways(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    count = len(run.of_type("aws:ec2/natGateway:NatGateway"))
    if count:
        yield LineItem(
            "NAT gateway", "gateways", f"{count}", _month(prices, count * prices.usd("nat_gateway_hour"))
        )
        yield LineItem(
            "NAT gateway",
            "data processed (assumed)",
            f"{usage.nat_gb_per_month:g} GB",
            usage.nat_gb_per_month * prices.usd("nat_gateway_gb"),
        )


def public_ipv4(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    """Every public IPv4 address bills: ALB nodes (one per subnet), Elastic IPs, tasks with public IPs."""
    hourly = prices.usd("public_ipv4_hour")
    for lb in run.of_type("aws:lb/loadBalancer:LoadBalancer"):
        if not lb.inputs.get("internal"):
            nodes = len(lb.inputs.get("subnets") or lb.inputs.get("subnetMappings") or [])
            yield LineItem("Public IPv4", f"ALB {lb.name} nodes", f"{nodes}", _month(prices, nodes * hourly))
    elastic_ips = len(run.of_type("aws:ec2/eip:Eip"))
    if elastic_ips:
        yield LineItem(
            "Public IPv4", "Elastic IPs (NAT)", f"{elastic_ips}", _month(prices, elastic_ips * hourly)
        )
    for shape in fargate_services(run):
        if shape.public_ip and shape.tasks:
            yield LineItem(
                "Public IPv4",
                f"tasks of {shape.name}",
                f"{shape.tasks}",
                _month(prices, shape.tasks * hourly),
            )


def firewall(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    """AWS WAF: the web ACL, each of its rules (a managed rule group counts as one), every request."""
    for acl in run.of_type("aws:wafv2/webAcl:WebAcl"):
        rules = len(acl.inputs.get("rules") or [])
        yield LineItem("WAF", f"web ACL {acl.name}", "1 web ACL", prices.usd("waf_web_acl_month"))
        yield LineItem("WAF", "rules", f"{rules}", rules * prices.usd("waf_rule_month"))
        yield LineItem(
            "WAF",
            "requests inspected (assumed)",
            f"{usage.web_requests_millions:g} million",
            usage.web_requests_millions * prices.usd("waf_requests_million"),
        )


def domain(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    """The custom domain: alias records to the load balancer and an ACM public certificate, both free."""
    aliases = [record for record in run.of_type("aws:route53/record:Record") if record.inputs.get("aliases")]
    if aliases:
        yield LineItem(
            "DNS and TLS",
            "queries to alias records of the load balancer",
            f"{len(aliases)} alias records (A, AAAA)",
            usage.web_requests_millions * prices.usd("route53_alias_queries_million"),
        )
    certificates = run.of_type("aws:acm/certificate:Certificate")
    if certificates:
        yield LineItem(
            "DNS and TLS",
            "ACM public certificate",
            f"{len(certificates)}",
            len(certificates) * prices.usd("acm_public_certificate_month"),
        )


def secrets(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    count = len(run.of_type("aws:secretsmanager/secret:Secret"))
    yield LineItem(
        "Secrets Manager", "secrets", f"{count}", count * prices.usd("secrets_manager_secret_month")
    )


def logs(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    groups = run.of_type("aws:cloudwatch/logGroup:LogGroup")
    longest_retention_days = max((int(group.inputs.get("retentionInDays", 0)) for group in groups), default=0)
    yield LineItem(
        "CloudWatch Logs",
        f"ingestion into {len(groups)} log groups (assumed)",
        f"{usage.log_gb_per_month:g} GB",
        usage.log_gb_per_month * prices.usd("cloudwatch_logs_ingest_gb"),
    )
    # In steady state the group keeps `retention` days of ingestion.
    stored_gb = usage.log_gb_per_month * longest_retention_days / 30
    yield LineItem(
        "CloudWatch Logs",
        f"storage, {longest_retention_days} days retention",
        f"{stored_gb:.1f} GB",
        stored_gb * prices.usd("cloudwatch_logs_storage_gb_month"),
    )


def queue_metrics(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    """The queue-metrics publisher's custom metrics and PutMetricData calls, if the stack runs it."""
    for container in _container_definitions(run):
        if container.get("command") != app_contract.queue_metrics_command():
            continue
        environment = {pair["name"]: pair["value"] for pair in container.get("environment", [])}
        pools = schema.parse_pools(environment[app_contract.QUEUE_METRICS_POOLS])
        interval = int(environment[app_contract.QUEUE_METRICS_INTERVAL_SECONDS])
        # Task metrics exist only in hours a pool ran tasks (billed pro rata); counted as always there.
        per_pool = len(schema.POOL_METRICS) + len(schema.TASK_METRICS)
        metrics = sum(len(pool.queues) * len(schema.QUEUE_METRICS) + per_pool for pool in pools)
        yield LineItem(
            "CloudWatch metrics",
            "queue metrics",
            f"{metrics} metrics",
            metrics * prices.usd("cloudwatch_custom_metric_month"),
        )
        requests = prices.hours_per_month * 3600 / interval
        yield LineItem(
            "CloudWatch metrics",
            f"PutMetricData every {interval} s",
            f"{requests:,.0f} requests",
            requests / 1000 * prices.usd("cloudwatch_put_metric_data_1000_requests"),
        )


def keys(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    count = len(run.of_type("aws:kms/key:Key"))
    if count:
        yield LineItem("KMS", "customer-managed keys", f"{count}", count * prices.usd("kms_key_month"))
        yield LineItem(
            "KMS",
            "requests (assumed)",
            f"{usage.kms_requests_per_month:,.0f}",
            usage.kms_requests_per_month / 10_000 * prices.usd("kms_10000_requests"),
        )


def media(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    """The media buckets the task definitions name (the ALB's log bucket is not modelled)."""
    named = {
        variable["value"]
        for container in _container_definitions(run)
        for variable in container.get("environment", [])
        if variable["name"] == app_contract.MEDIA_BUCKET
    }
    for bucket in run.of_type("aws:s3/bucket:Bucket"):
        if bucket.state.get("bucket") not in named:
            continue
        yield LineItem(
            "S3 media",
            "storage (assumed)",
            f"{usage.media_gb:g} GB",
            usage.media_gb * prices.usd("s3_standard_gb_month"),
        )
        yield LineItem(
            "S3 media",
            "uploads and downloads (assumed)",
            f"{usage.media_puts_per_month:,.0f} PUT, {usage.media_gets_per_month:,.0f} GET",
            usage.media_puts_per_month / 1000 * prices.usd("s3_put_1000_requests")
            + usage.media_gets_per_month / 1000 * prices.usd("s3_get_1000_requests"),
        )


def database_insight(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    for db in run.of_type("aws:rds/instance:Instance"):
        if db.inputs.get("performanceInsightsEnabled"):
            days = db.inputs.get("performanceInsightsRetentionPeriod", 7)
            if days != 7:
                raise CostModelError(
                    f"{db.name}: only the free 7-day Performance Insights history is modelled"
                )
            yield LineItem(
                "RDS insight",
                "Performance Insights, 7 days",
                "free tier",
                prices.usd("performance_insights_7_days"),
            )
        interval = int(db.inputs.get("monitoringInterval") or 0)
        if interval:
            samples = prices.hours_per_month * 3600 / interval
            gigabytes = samples * usage.enhanced_monitoring_kb_per_sample / 1024 / 1024
            yield LineItem(
                "RDS insight",
                f"Enhanced Monitoring every {interval} s (CloudWatch Logs, assumed event size)",
                f"{gigabytes:.2f} GB",
                gigabytes * prices.usd("cloudwatch_logs_ingest_gb"),
            )


def exec_audit(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    for cluster in run.of_type("aws:ecs/cluster:Cluster"):
        settings = (cluster.inputs.get("configuration") or {}).get("executeCommandConfiguration") or {}
        if settings.get("logging") == "OVERRIDE":
            yield LineItem(
                "CloudWatch Logs",
                "ECS Exec session audit (assumed)",
                f"{usage.exec_session_log_gb_per_month:g} GB",
                usage.exec_session_log_gb_per_month * prices.usd("cloudwatch_logs_ingest_gb"),
            )


def alarms(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    declared = run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    if declared:
        total = sum(_alarm_month(alarm, prices) for alarm in declared)
        yield LineItem("CloudWatch alarms", "declared alarms", f"{len(declared)}", total)
    tracking = [
        policy
        for policy in run.of_type("aws:appautoscaling/policy:Policy")
        if policy.inputs.get("policyType") == "TargetTrackingScaling"
    ]
    if tracking:
        # Application Auto Scaling creates (and bills) a high and a low alarm per target-tracking policy.
        count = 2 * len(tracking)
        yield LineItem(
            "CloudWatch alarms",
            "target-tracking alarms (created by AWS)",
            f"{count}",
            count * prices.alarm_metric_month(high_resolution=False),
        )


def dashboards(run: ProgramRun, prices: PriceTable, usage: UsageAssumptions) -> Iterable[LineItem]:
    count = len(run.of_type("aws:cloudwatch/dashboard:Dashboard"))
    if count:
        yield LineItem(
            "CloudWatch dashboards",
            "dashboards",
            f"{count}",
            count * prices.usd("cloudwatch_dashboard_month"),
        )


def _alarm_month(alarm: RecordedResource, prices: PriceTable) -> float:
    queries = alarm.inputs.get("metricQueries") or []
    metrics = [query["metric"] for query in queries if query.get("metric")] or [alarm.inputs]
    return sum(prices.alarm_metric_month(int(metric.get("period", 60)) < 60) for metric in metrics)


def _container_definitions(run: ProgramRun) -> Iterable[dict[str, Any]]:
    for task_definition in run.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        definitions = task_definition.inputs["containerDefinitions"]
        yield from json.loads(definitions) if isinstance(definitions, str) else definitions


ESTIMATORS: Sequence[Callable[[ProgramRun, PriceTable, UsageAssumptions], Iterable[LineItem]]] = (
    load_balancers,
    routes,
    fargate,
    databases,
    caches,
    nat_gateways,
    public_ipv4,
    firewall,
    domain,
    secrets,
    logs,
    queue_metrics,
    alarms,
    dashboards,
    keys,
    media,
    database_insight,
    exec_audit,
)


# --- the report ------------------------------------------------------------------------------------


def idle_workers_at_zero(run: ProgramRun) -> bool:
    workers = [shape for shape in fargate_services(run) if shape.name.startswith("worker-")]
    return bool(workers) and all(shape.tasks == 0 for shape in workers)


def connection_budget_report(run: ProgramRun) -> dict[str, Any]:
    """The stack at its maxima against its database's and broker's connection limits."""
    config = validate(run.config)
    web, workers, beat = config.web, config.workers, config.beat
    demand = budget.database_demand(web, workers, beat)
    limit = app_connection_limit(config.database.instance_class, budget.ADMIN_RESERVE)
    return {
        "database_class": config.database.instance_class,
        "database_demand": demand.total,
        "database_demand_by_holder": demand.describe(),
        "database_app_limit": limit,
        "broker_demand": budget.broker_demand(web, workers, beat),
        "broker_limit": BROKER_MAX_CLIENTS,
    }


def stack_report(
    name: str, stack: str, prices: PriceTable, overrides: Mapping[str, object] | None = None
) -> dict[str, Any]:
    run = run_program(stack, overrides)
    usage = ASSUMPTIONS[stack]
    items = estimate(run, prices, usage)
    by_category: dict[str, float] = {}
    for item in items:
        by_category[item.category] = by_category.get(item.category, 0) + item.monthly_usd
    return {
        "name": name,
        "stack": stack,
        "config_overrides": overrides or {},
        "assumptions": asdict(usage),
        "items": [asdict(item) for item in items],
        "by_category": {name: round(total, 2) for name, total in by_category.items()},
        "total_usd": round(sum(item.monthly_usd for item in items), 2),
        "idle_workers_at_zero": idle_workers_at_zero(run),
        "connection_budget": connection_budget_report(run),
    }


def preview_report(network: preview.PreviewNetwork, prices: PriceTable) -> dict[str, Any]:
    """An idle open preview: what it adds to its base's bill."""
    items = estimate(preview.thin_preview(network), prices, PREVIEW_USAGE)
    return {
        "name": f"idle preview, {network.name}",
        "items": [asdict(item) for item in items],
        "total_usd": round(sum(item.monthly_usd for item in items), 2),
    }


def print_previews(previews: list[dict[str, Any]], full_copy: dict[str, Any]) -> None:
    for report in previews:
        print(f"\n== {report['name']} (marginal, on top of the base) ==")
        rows = [
            (item["category"], item["item"], item["quantity"], round(item["monthly_usd"], 2))
            for item in report["items"]
        ]
        rows.append(("TOTAL", "", "", report["total_usd"]))
        print(table(["category", "item", "quantity", "USD/month"], rows))
    for report in previews:
        verdict = "met" if report["total_usd"] <= PREVIEW_TARGET_USD else "NOT met"
        print(
            f"target idle preview <= ${PREVIEW_TARGET_USD:.0f}/month, {report['name']}: {verdict} "
            f"(${report['total_usd']:.2f}; the full copy: ${full_copy['total_usd']:.2f})"
        )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argument_parser(__doc__)
    parser.add_argument("--stack", action="append", choices=sorted(ASSUMPTIONS), help="default: dev and prod")
    args = parser.parse_args(argv)
    prices = PriceTable()
    facts = machine_facts()
    print(
        f"Monthly cost model | prices: {PRICES_FILE.name} compiled {prices.data['compiled_on']} | "
        f"{describe_machine(facts)}"
    )
    stacks = args.stack or ["dev", "prod"]
    reports = [stack_report(stack, stack, prices) for stack in stacks]
    reports += [
        stack_report(name, stack, prices, overrides)
        for name, (stack, overrides) in VARIANTS.items()
        if stack in stacks
    ]
    for report in reports:
        overrides = ", ".join(f"{key}={value}" for key, value in report["config_overrides"].items())
        print(f"\n== {report['name']} ==" + (f" (config: {overrides})" if overrides else ""))
        rows = [
            (item["category"], item["item"], item["quantity"], round(item["monthly_usd"], 2))
            for item in report["items"]
        ]
        rows.append(("TOTAL", "", "", report["total_usd"]))
        print(table(["category", "item", "quantity", "USD/month"], rows))
        connections = report["connection_budget"]
        print(
            f"connections at the stack's maxima: database {connections['database_demand']} of about "
            f"{connections['database_app_limit']} the {connections['database_class']} leaves the app "
            f"({connections['database_demand_by_holder']}); broker {connections['broker_demand']} of "
            f"{connections['broker_limit']}"
        )
    print("\nnot modelled: " + "; ".join(NOT_MODELLED))
    dev = next((report for report in reports if report["name"] == "dev"), None)
    if dev is not None:
        verdict = "met" if dev["total_usd"] <= DEV_TARGET_USD and dev["idle_workers_at_zero"] else "NOT met"
        print(
            f"target dev <= ${DEV_TARGET_USD:.0f}/month with idle workers at zero: {verdict} "
            f"(total ${dev['total_usd']:.2f}, idle workers at zero: {dev['idle_workers_at_zero']})"
        )
    previews = [preview_report(network, prices) for network in preview.NETWORKS]
    full_copy = stack_report("pr-N full copy", "pr-1", prices, {"ephemeral": True})
    print_previews(previews, full_copy)
    results = {
        "machine": facts,
        "price_table": {"file": PRICES_FILE.name, "compiled_on": prices.data["compiled_on"]},
        "dev_target_usd": DEV_TARGET_USD,
        "preview_target_usd": PREVIEW_TARGET_USD,
        "previews": previews,
        "full_copy": full_copy,
        "stacks": reports,
        "not_modelled": list(NOT_MODELLED),
    }
    write_results("cost", results, args.results_dir)
    return results


if __name__ == "__main__":
    main()
