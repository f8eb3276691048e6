"""Release settings of a stack."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.reader import ConfigReader


@dataclass(frozen=True)
class ReleaseConfig:
    migrate_timeout_seconds: int  # how long `pulumi up` waits for the migrate task
    # Release even when the compatibility gate refuses (the problems are recorded in the release).
    force: bool = False

    @classmethod
    def read(cls, read: ConfigReader) -> ReleaseConfig:
        return cls(
            migrate_timeout_seconds=read.integer("migrateTimeoutSeconds", 60, 3600),
            force=read.boolean("releaseForce"),
        )
