"""The Pulumi program: Django web, Celery workers and Celery Beat on ECS Fargate.

One program, three kinds of stack, chosen by config (infra/preview/config.py):

- a full stack (infra/full_stack.py): network, data stores and secrets, image, cluster and load
  balancer, release, observability and services, all of its own;
- a preview base (`previewBase`, infra/preview/base.py): what pull request previews share, and the
  outputs they read;
- a thin preview (`previewOf`, infra/preview/thin.py): one pull request's database, role, broker key
  prefix, secrets, target group, listener rule, release and services on a base.

Every resource is created through the stack's own AWS provider, which tags everything.
"""

import pulumi
import pulumi_aws as aws

from infra.full_stack import wire_full_stack
from infra.naming import Cloud, StackContext, StackNames
from infra.preview.base import wire_preview_base
from infra.preview.config import StackKind
from infra.preview.thin import wire_preview
from infra.stack import load_stack_config

config = load_stack_config()
names = StackNames(pulumi.get_project(), pulumi.get_stack(), config.preview.base_stack)
provider = aws.Provider(
    "aws", region=aws.config.region, default_tags=aws.ProviderDefaultTagsArgs(tags=names.tags)
)
invoke = pulumi.InvokeOutputOptions(provider=provider)
stack = StackContext(
    names,
    Cloud(aws.get_region_output(opts=invoke).region, aws.get_caller_identity_output(opts=invoke).account_id),
    pulumi.ResourceOptions(providers={"aws": provider}),
)

match config.preview.kind:
    case StackKind.BASE:
        wire_preview_base(config.preview_base, stack)
    case StackKind.PREVIEW:
        wire_preview(config.thin_preview, stack)
    case StackKind.FULL:
        wire_full_stack(config, stack)
