"""The stack configuration: read once, validated completely, then frozen; the top of the program.

`validate()` is a pure function from the raw key/value pairs (as the Pulumi CLI hands them to the
program: strings, JSON for lists) to a `StackConfig`. Each concern reads and checks its own keys
(`infra/<concern>/config.py`); the rules that span concerns are here. Only the program's wiring
(`infra/__main__.py`) and the commands that check a stack's files (`infra/ops`) see it: each
component receives the parts it reads. Every key is checked before
the program declares a single resource, and one `StackConfigError` lists every bad key, the value
given and what is allowed, so a user fixes a stack file in one round trip instead of one
half-created stack per mistake. A key of the project's namespace that no part reads is a mistake
too (a typo would otherwise be silently ignored). Defaults live in Pulumi.yaml only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pulumi
import yaml

from infra import connection_budget
from infra.config.reader import ConfigReader, StackConfigError
from infra.data.config import BrokerConfig, DatabaseConfig
from infra.encryption.config import KeyConfig
from infra.image.config import ImageConfig
from infra.naming import StackNames
from infra.network.config import NetworkConfig
from infra.observability.config import AlarmsConfig, LogsConfig
from infra.preview.config import PREVIEW_WORKER_CONCURRENCY, PreviewConfig, StackKind
from infra.preview.settings import PreviewBaseSettings, ThinPreviewSettings
from infra.release.config import ReleaseConfig
from infra.scheduler.config import BeatConfig
from infra.schedules.config import ScheduleAlarmsConfig
from infra.services.config import AppConfig, AppSettings, CeleryLimits, SignupsConfig
from infra.storage.config import MediaConfig
from infra.web.config import WebConfig
from infra.workers.config import WorkersConfig

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILE = PROJECT_ROOT / "Pulumi.yaml"
# Values of these keys are never shown in an error message.
SECRET_KEYS = frozenset({"emailUrl"})
EPHEMERAL_REFUSES = "false in an ephemeral stack (`pulumi destroy` must always succeed)"
PROTECT_FIRST = (
    "AWS refuses the delete only after `pulumi destroy` has deleted everything around it; "
    "`protect` stops the destroy at preview"
)


@dataclass(frozen=True)
class StackConfig:
    ephemeral: bool  # a throw-away stack (e.g. per pull request): nothing may block its destroy
    # Pulumi `protect` on what a destroy must never take by accident (database, broker, load
    # balancer, image repository, log and media buckets, KMS key): `pulumi destroy` stops at
    # preview, deleting nothing.
    protect_resources: bool
    network: NetworkConfig
    database: DatabaseConfig
    broker: BrokerConfig
    image: ImageConfig
    app: AppConfig
    signups: SignupsConfig
    web: WebConfig
    workers: WorkersConfig
    beat: BeatConfig
    celery: CeleryLimits
    release: ReleaseConfig
    logs: LogsConfig
    alarms: AlarmsConfig
    schedule_alarms: ScheduleAlarmsConfig
    encryption: KeyConfig
    media: MediaConfig
    preview: PreviewConfig

    @classmethod
    def read(
        cls,
        read: ConfigReader,
        project_root: Path | None,
        stack_database: str | None = None,
        stack: str | None = None,
    ) -> StackConfig:
        config = cls(
            ephemeral=read.boolean("ephemeral"),
            protect_resources=read.boolean("protectResources"),
            network=NetworkConfig.read(read),
            database=DatabaseConfig.read(read, stack_database),
            broker=BrokerConfig.read(read),
            image=ImageConfig.read(read, project_root),
            app=AppConfig.read(read),
            signups=SignupsConfig.read(read),
            web=WebConfig.read(read),
            workers=WorkersConfig.read(read),
            beat=BeatConfig.read(read),
            celery=CeleryLimits.read(read),
            release=ReleaseConfig.read(read),
            logs=LogsConfig.read(read),
            alarms=AlarmsConfig.read(read),
            schedule_alarms=ScheduleAlarmsConfig.read(read),
            encryption=KeyConfig.read(read),
            media=MediaConfig.read(read),
            preview=PreviewConfig.read(read, stack, project_name()),
        )
        config._check_teardown(read)
        config._check_email_timeout(read)
        config._check_previews(read)
        if config.preview.kind is StackKind.FULL:
            config._check_connection_budget(read)
        return config

    @property
    def app_settings(self) -> AppSettings:
        """The plain settings every role's environment carries."""
        return AppSettings(
            app=self.app,
            signups=self.signups,
            celery=self.celery,
            https=self.web.https,
            worker_stop_timeout_seconds=self.workers.stop_timeout_seconds,
            periodic_heartbeat_seconds=self.beat.periodic_heartbeat_seconds,
            redis_key_prefix=self.preview.redis_key_prefix,
        )

    def _check_connection_budget(self, read: ConfigReader) -> None:
        """The stack at its maxima fits its database's and its broker's connection limits."""
        keys = (
            "dbInstanceClass",
            "workerPools",
            "webMaxCount",
            "gunicornWorkers",
            "gunicornThreads",
            "beatEnabled",
        )
        if not read.valid(*keys):
            return
        database = connection_budget.database_problem(self.database, self.web, self.workers, self.beat)
        if database:
            read.report("dbInstanceClass", self.database.instance_class, database)
        broker = connection_budget.broker_problem(self.web, self.workers, self.beat)
        if broker:
            read.report("workerPools", self.web.scaling.max_count, broker)

    @property
    def preview_base(self) -> PreviewBaseSettings:
        return PreviewBaseSettings(
            self.preview,
            self.network,
            self.database,
            self.broker,
            self.app_settings,
            self.image,
            self.web,
            self.logs,
            self.alarms,
            self.protect_resources,
            PROJECT_ROOT,
        )

    @property
    def thin_preview(self) -> ThinPreviewSettings:
        return ThinPreviewSettings(
            self.preview,
            self.app_settings,
            self.image,
            self.web,
            self.workers,
            self.beat,
            self.release,
            self.logs,
            self.app.email_url,
            PROJECT_ROOT,
        )

    def _check_previews(self, read: ConfigReader) -> None:
        """A base outlives its previews and its database holds every preview role at its connection
        limit; a preview is thrown away, fits its own limit and leaves the edge to its base."""
        kind = self.preview.kind
        if kind is StackKind.BASE:
            if self.ephemeral:
                read.report(
                    "previewBase", True, "false in an ephemeral stack (every preview depends on the base)"
                )
            if read.valid("dbInstanceClass", "previewCapacity", "previewConnectionLimit"):
                problem = connection_budget.preview_base_problem(
                    self.database, self.preview.capacity, self.preview.connection_limit
                )
                if problem:
                    read.report("dbInstanceClass", self.database.instance_class, problem)
        elif kind is StackKind.PREVIEW:
            self._check_thin_preview(read)

    def _check_thin_preview(self, read: ConfigReader) -> None:
        if not self.ephemeral and read.valid("ephemeral"):
            read.report(
                "previewOf", self.preview.of, "empty unless ephemeral is true (a preview is thrown away)"
            )
        if read.valid("previewConnectionLimit", "gunicornWorkers", "gunicornThreads", "beatEnabled"):
            problem = connection_budget.preview_problem(
                self.preview.connection_limit,
                connection_budget.preview_demand(self.web, PREVIEW_WORKER_CONCURRENCY, self.beat),
            )
            if problem:
                read.report("previewConnectionLimit", self.preview.connection_limit, problem)
        if self.web.deployment.shifts_traffic:
            read.report(
                "webDeployment",
                self.web.deployment.strategy,
                "rolling in a preview (one target group per preview on its base's load balancer)",
            )
        # What a preview would silently ignore: its base owns the load balancer, the certificate,
        # the firewall and the encryption of the data stores.
        owned_by_base = {
            "domainName": self.web.domain_name,
            "hostedZoneId": self.web.hosted_zone_id,
            "certificateArn": self.web.certificate_arn,
            "wafEnabled": self.web.firewall.enabled,
            "albAccessLogs": self.web.alb_access_logs,
            "customerManagedKey": self.encryption.customer_managed_key,
        }
        for key, value in owned_by_base.items():
            if value:
                read.report(key, value, "empty or false in a preview: set it on its base (previewOf)")

    def _check_email_timeout(self, read: ConfigReader) -> None:
        """A delivery stuck in SMTP must reach its soft limit and still clean up (its SMTP call times
        out) before the hard limit kills the process (RELIABILITY.md rule 11)."""
        gap = self.celery.time_limit_seconds - self.celery.soft_time_limit_seconds
        timeout = self.signups.email_timeout_seconds
        keys = ("taskSoftTimeLimitSeconds", "taskTimeLimitSeconds", "emailTimeoutSeconds")
        if read.valid(*keys) and gap <= timeout:
            read.report(
                "emailTimeoutSeconds",
                timeout,
                f"less than taskTimeLimitSeconds - taskSoftTimeLimitSeconds ({gap} s), or a delivery "
                "stuck at the soft limit is killed before its SMTP call times out",
            )

    def _check_teardown(self, read: ConfigReader) -> None:
        """Nothing may block an ephemeral stack's destroy; and AWS deletion protection only behind
        Pulumi `protect`, because AWS checks it at the resource's own delete call, after the engine
        has deleted everything that depends on it (services, secrets, broker, repository, logs)."""
        if self.ephemeral and self.protect_resources:
            read.report("protectResources", True, EPHEMERAL_REFUSES)
        for key, protected in (
            ("dbDeletionProtection", self.database.deletion_protection),
            ("albDeletionProtection", self.web.alb_deletion_protection),
        ):
            if protected and self.ephemeral:
                read.report(key, True, EPHEMERAL_REFUSES)
            elif protected and read.valid("protectResources") and not self.protect_resources:
                read.report(key, True, f"false unless protectResources is true ({PROTECT_FIRST})")


def validate(
    raw: Mapping[str, object],
    project_root: Path | None = None,
    stack_database: str | None = None,
    stack: str | None = None,
) -> StackConfig:
    """Builds the stack config from raw values (bare keys), or raises listing every problem.

    With `project_root`, the image build paths (relative to it) must also exist; with
    `stack_database` (the stack's own RDS identifier), a restored database must be a restore of it;
    with `stack` (its name), a thin preview must be a pull request stack `pr-N`.
    """
    read = ConfigReader(raw, SECRET_KEYS)
    config = StackConfig.read(read, project_root, stack_database, stack)
    read.report_unknown_keys()
    if read.problems:
        raise StackConfigError(read.problems)
    return config


def project_name() -> str:
    """The project's name, as Pulumi.yaml declares it."""
    return str(yaml.safe_load(PROJECT_FILE.read_text())["name"])


def declared_config_keys() -> tuple[str, ...]:
    """This project's config keys, as Pulumi.yaml declares them (the single list of keys)."""
    project = yaml.safe_load(PROJECT_FILE.read_text())
    return tuple(key for key in project["config"] if ":" not in key)


def load_stack_config() -> StackConfig:
    """Reads every key of the project's namespace the way the CLI provides it (strings, JSON for
    lists), declared or not, then validates."""
    namespace = f"{pulumi.get_project()}:"
    everything: dict[str, object] = pulumi.runtime.config.CONFIG.get()
    raw = {key[len(namespace) :]: value for key, value in everything.items() if key.startswith(namespace)}
    names = StackNames(pulumi.get_project(), pulumi.get_stack())
    return validate(raw, PROJECT_ROOT, names.database, names.stack)
