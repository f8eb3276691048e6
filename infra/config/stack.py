"""The stack configuration: read once, validated completely, then frozen.

`validate()` is a pure function from the raw key/value pairs (as the Pulumi CLI hands them to the
program: strings, JSON for lists) to a `StackConfig`. Each concern reads and checks its own keys
(`infra/<concern>/config.py`); the rules that span concerns are here. Every key is checked before
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

from infra.autoscaling.config import ScalingConfig
from infra.config.reader import ConfigReader, StackConfigError
from infra.data.config import BrokerConfig, DatabaseConfig
from infra.encryption.config import KeyConfig
from infra.image.config import ImageConfig
from infra.naming import StackNames
from infra.network.config import NetworkConfig
from infra.observability.config import AlarmsConfig, LogsConfig
from infra.release.config import ReleaseConfig
from infra.services.config import AppConfig, BeatConfig, CeleryLimits, SignupsConfig, WorkersConfig
from infra.storage.config import MediaConfig
from infra.web.config import WebConfig

PROJECT_ROOT = Path(__file__).resolve().parents[2]
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
    scaling: ScalingConfig
    logs: LogsConfig
    alarms: AlarmsConfig
    encryption: KeyConfig
    media: MediaConfig

    @classmethod
    def read(
        cls, read: ConfigReader, project_root: Path | None, stack_database: str | None = None
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
            scaling=ScalingConfig.read(read),
            logs=LogsConfig.read(read),
            alarms=AlarmsConfig.read(read),
            encryption=KeyConfig.read(read),
            media=MediaConfig.read(read),
        )
        config.scaling.check_pools(read, config.workers)
        config._check_teardown(read)
        config._check_email_timeout(read)
        return config

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
    raw: Mapping[str, object], project_root: Path | None = None, stack_database: str | None = None
) -> StackConfig:
    """Builds the stack config from raw values (bare keys), or raises listing every problem.

    With `project_root`, the image build paths (relative to it) must also exist; with
    `stack_database` (the stack's own RDS identifier), a restored database must be a restore of it.
    """
    read = ConfigReader(raw, SECRET_KEYS)
    config = StackConfig.read(read, project_root, stack_database)
    read.report_unknown_keys()
    if read.problems:
        raise StackConfigError(read.problems)
    return config


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
    return validate(raw, PROJECT_ROOT, StackNames(pulumi.get_project(), pulumi.get_stack()).database)
