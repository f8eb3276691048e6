"""The app's secrets in Secrets Manager: DATABASE_URL, REDIS_URL, DJANGO_SECRET_KEY (and EMAIL_URL
when the stack configures SMTP).

Tasks receive them through the task definition's `secrets` (valueFrom these ARNs); their values
never appear in a task definition, an environment variable list or a stack output.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra import app_contract

# Secrets Manager keeps a deleted secret for 7-30 days unless told 0; a re-created ephemeral stack
# would then collide with its own deleted secrets.
RECOVERY_WINDOW_DAYS = 7


@dataclass(frozen=True)
class AppSecretsArgs:
    database_url: pulumi.Input[str]
    redis_url: pulumi.Input[str]
    email_url: str  # empty: no SMTP configured, the app logs its emails
    ephemeral: bool
    key_arn: pulumi.Input[str] | None = None  # the stack's KMS key; None: the aws/secretsmanager key


class AppSecrets(pulumi.ComponentResource):
    arns: dict[str, pulumi.Output[str]]  # environment variable name -> secret ARN

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
        for variable, value in values.items():
            logical_name = f"{name}-{variable.lower().replace('_', '-')}"
            secret = aws.secretsmanager.Secret(
                logical_name,
                description=f"{variable} for the app's tasks",
                recovery_window_in_days=0 if args.ephemeral else RECOVERY_WINDOW_DAYS,
                kms_key_id=args.key_arn,
                opts=child,
            )
            aws.secretsmanager.SecretVersion(
                logical_name, secret_id=secret.id, secret_string=pulumi.Output.secret(value), opts=child
            )
            self.arns[variable] = secret.arn
        self.register_outputs({"arns": self.arns})
