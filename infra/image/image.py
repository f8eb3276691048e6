"""The app image: an ECR repository and the image built from the configured context and pushed there.

Tasks use `image_ref` (repository@sha256:digest), so every new build is a new task definition
revision and rolls out; tags are immutable and named after the digest pulumi-docker itself keeps of
the build inputs (build_context.py). The build paths stay relative to the project root, which is
the working directory of the program and of the Docker provider: an absolute path would differ
between two checkouts and make the provider rebuild and push an existing tag.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from infra.image.build_context import context_digest
from infra.image.config import ImageConfig


@dataclass(frozen=True)
class AppImageArgs:
    config: ImageConfig
    project_root: Path  # the build paths of `config` are relative to it
    protect: bool  # Pulumi `protect` on the repository; unprotected, destroy deletes it with its images
    # The stack's KMS key for the images; None: AES256. ECR cannot change it: a change replaces the
    # repository.
    key_arn: pulumi.Input[str] | None = None


def lifecycle_policy(keep_images: int) -> str:
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"Keep the {keep_images} most recent images",
                    "selection": {
                        "tagStatus": "any",
                        "countType": "imageCountMoreThan",
                        "countNumber": keep_images,
                    },
                    "action": {"type": "expire"},
                }
            ]
        }
    )


class AppImage(pulumi.ComponentResource):
    repository_url: pulumi.Output[str]
    repository_arn: pulumi.Output[str]
    image_ref: pulumi.Output[str]

    def __init__(self, name: str, args: AppImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:AppImage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        repository = aws.ecr.Repository(
            f"{name}-repository",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            force_delete=not args.protect,
            encryption_configurations=[
                aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS", kms_key=args.key_arn)
            ]
            if args.key_arn is not None
            else None,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=repository.name,
            policy=lifecycle_policy(config.keep_images),
            opts=child,
        )
        tag = context_digest(
            args.project_root / config.context, args.project_root / config.dockerfile, config.platform
        )
        registry = aws.ecr.get_authorization_token_output(
            registry_id=repository.registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        image = docker.Image(
            f"{name}-build",
            build=docker.DockerBuildArgs(
                context=config.context, dockerfile=config.dockerfile, platform=config.platform
            ),
            image_name=repository.repository_url.apply(lambda url: f"{url}:{tag}"),
            registry=docker.RegistryArgs(
                server=repository.repository_url,
                username=registry.user_name,
                password=pulumi.Output.secret(registry.password),
            ),
            opts=child,
        )
        self.repository_url = repository.repository_url
        self.repository_arn = repository.arn
        self.image_ref = image.repo_digest
        self.register_outputs({"repository_url": self.repository_url, "image_ref": self.image_ref})
