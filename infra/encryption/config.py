"""Whether the stack encrypts its data with its own KMS key."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.reader import ConfigReader


@dataclass(frozen=True)
class KeyConfig:
    # One customer-managed key for the database, the broker, the secrets, the log groups, the alarm
    # topic, the buckets and the image repository; off: each service's AWS-managed encryption.
    customer_managed_key: bool

    @classmethod
    def read(cls, read: ConfigReader) -> KeyConfig:
        return cls(customer_managed_key=read.boolean("customerManagedKey"))
