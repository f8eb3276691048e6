"""Media bucket settings of a stack."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.reader import ConfigReader


@dataclass(frozen=True)
class MediaConfig:
    versioning: bool  # keep overwritten and deleted files as noncurrent versions for a while
    noncurrent_version_days: int  # how long a noncurrent version is kept (versioned buckets)

    @classmethod
    def read(cls, read: ConfigReader) -> MediaConfig:
        return cls(
            versioning=read.boolean("mediaVersioning"),
            noncurrent_version_days=read.integer("mediaNoncurrentVersionDays", 1, 3650),
        )
