"""The parts of the stack config each preview wiring reads (the full stack config stays with the
program's entry point)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra.data.config import BrokerConfig, DatabaseConfig
from infra.image.config import ImageConfig
from infra.network.config import NetworkConfig
from infra.observability.config import AlarmsConfig, LogsConfig
from infra.preview.config import PreviewConfig
from infra.release.config import ReleaseConfig
from infra.scheduler.config import BeatConfig
from infra.services.config import AppSettings
from infra.web.config import WebConfig
from infra.workers.config import WorkersConfig


@dataclass(frozen=True)
class PreviewBaseSettings:
    preview: PreviewConfig
    network: NetworkConfig
    database: DatabaseConfig
    broker: BrokerConfig
    app: AppSettings  # the tenant task's environment
    image: ImageConfig  # the tenant task's image, the shared repository's lifecycle and pull accounts
    web: WebConfig  # the ALB's idle timeout, the tenant task's size
    logs: LogsConfig
    alarms: AlarmsConfig  # who the alarm topic e-mails
    protect: bool
    project_root: Path  # the image's build paths are relative to it


@dataclass(frozen=True)
class ThinPreviewSettings:
    preview: PreviewConfig
    app: AppSettings
    image: ImageConfig
    web: WebConfig
    workers: WorkersConfig
    beat: BeatConfig
    release: ReleaseConfig
    logs: LogsConfig
    email_url: str
    project_root: Path  # the image's build paths are relative to it
