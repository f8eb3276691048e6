"""The app's secrets in Secrets Manager: DATABASE_URL, REDIS_URL, DJANGO_SECRET_KEY (and EMAIL_URL
when the stack configures SMTP).

Tasks receive them through the task definition's `secrets` (valueFrom these ARNs); their values
never appear in a task definition, an environment variable list or a stack output.

ECS reads secrets only when a container starts ("If the secret is subsequently updated or rotated,
the container will not receive the updated value automatically", ECS developer guide, passing
Secrets Manager secrets through environment variables), and the task definitions name only the
ARNs, which a new value does not change. So `fingerprint` digests the versions Secrets Manager
gave the values (a new value is a new VersionId): every task definition carries it, and a new
value of any secret (`pulumi config set --secret emailUrl ...`, a replaced broker's REDIS_URL) is a
new revision of every task definition, which rolls every service and runs the release.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra import app_contract

# Secrets Manager keeps a deleted secret for 7-30 days unless told 0; a re-created ephemeral stack
# would then collide with its own deleted secrets.
RECOVERY_WINDOW_DAYS = 7
FINGERPRINT_LENGTH = 16


def secret_name(variable: str) -> str:
    """The part of a secret's name that says which variable it holds: DATABASE_URL -> database-url."""
    return variable.lower().replace("_", "-")


def fingerprint(version_ids: dict[str, str]) -> str:
    """A short digest of the secrets' version ids (not secret: it tells nothing of the values)."""
    text = "\n".join(f"{variable}={version}" for variable, version in sorted(version_ids.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_LENGTH]


@dataclass(frozen=True)
class AppSecretsArgs:
    database_url: pulumi.Input[str]
    redis_url: pulumi.Input[str]
    email_url: str  # empty: no SMTP configured, the app logs its emails
    ephemeral: bool
    key_arn: pulumi.Input[str] | None = None  # the stack's KMS key; None: the aws/secretsmanager key
    # A fixed name `<name_prefix>-<variable>` for each secret (a thin preview's, which its base's
    # tenant task may read by that prefix); None: Pulumi's auto-name.
    name_prefix: str | None = None


class AppSecrets(pulumi.ComponentResource):
    arns: dict[str, pulumi.Output[str]]  # environment variable name -> secret ARN
    fingerprint: pulumi.Output[str]  # changes with any secret's value (the versions' digest)

    def __init__(self, name: str, args: AppSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:AppSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        secret_key = random.RandomPassword(
            f"{name}-django-secret-key", length=64, special=True, override_special="!@#%^&*(-_=+)", opts=child
        )
        values = {
            app_contract.DATABASE_URL: args.database_url,
            app_contract.REDIS_URL: args.redis_url,
            app_contract.DJANGO_SECRET_KEY: secret_key.result,
        }
        if args.email_url:
            values[app_contract.EMAIL_URL] = args.email_url
        self.arns = {}
        versions: dict[str, pulumi.Output[str]] = {}
        for variable, value in values.items():
            logical_name = f"{name}-{secret_name(variable)}"
            secret = aws.secretsmanager.Secret(
                logical_name,
                name=f"{args.name_prefix}-{secret_name(variable)}" if args.name_prefix else None,
                description=f"{variable} for the app's tasks",
                recovery_window_in_days=0 if args.ephemeral else RECOVERY_WINDOW_DAYS,
                kms_key_id=args.key_arn,
                opts=child,
            )
            version = aws.secretsmanager.SecretVersion(
                logical_name, secret_id=secret.id, secret_string=pulumi.Output.secret(value), opts=child
            )
            self.arns[variable] = secret.arn
            versions[variable] = version.version_id
        self.fingerprint = pulumi.Output.all(**versions).apply(fingerprint)
        self.register_outputs({"arns": self.arns, "fingerprint": self.fingerprint})
