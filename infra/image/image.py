"""The app image: an ECR repository, and the image the stack runs in it, built or promoted.

Tasks use `image_ref` (repository@sha256:digest), so every new image is a new task definition
revision and rolls out.

- **Build** (the default): the image is built from the configured context and pushed; tags are
  immutable and named after the digest pulumi-docker itself keeps of the build inputs
  (build_context.py). The build paths stay relative to the project root, which is the working
  directory of the program and of the Docker provider: an absolute path would differ between two
  checkouts and make the provider rebuild and push an existing tag.
- **Promote** (`imageRef`, or `imageFromStack`: the `imageRef` output of another stack): nothing is
  built. The image, by digest, is copied into this stack's own repository unless it is there
  already (copy.py), so the stack's execution role pulls from the repository it may read, and the
  image stays as long as this stack keeps it, whatever happens to the source stack. A rollback is
  a promotion of a digest the repository still keeps.
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
from infra.image.provider import ImagePromotionProvider
from infra.image.reference import ImageRef, digest_of, ecr_region

SOURCE_OUTPUT = "imageRef"  # the output of a source stack that names its image


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


class ImagePromotion(pulumi.dynamic.Resource):
    """The image `source` (a digest reference) made available in `repository_url`."""

    image_ref: pulumi.Output[str]
    digest: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        source: pulumi.Input[str],
        repository_url: pulumi.Input[str],
        opts: pulumi.ResourceOptions,
    ) -> None:
        target = pulumi.Output.all(source, repository_url).apply(
            lambda values: str(ImageRef.resolve(values[0], values[1]).moved_to(values[1]))
        )
        props = {
            "source": source,
            "repository_url": repository_url,
            "region": pulumi.Output.from_input(repository_url).apply(_region_of_repository),
            # What the provider answers; known before it runs, so a preview shows the digest.
            "image_ref": target,
            "digest": target.apply(digest_of),
            "copied_blobs": None,
        }
        super().__init__(ImagePromotionProvider(), name, props, opts)


def _region_of_repository(repository_url: str) -> str:
    region = ecr_region(repository_url.partition("/")[0])
    if region is None:
        raise ValueError(f"{repository_url} is not an ECR repository URL")
    return region


def stack_image_ref(stack: str, output: object) -> str:
    """The source stack's `imageRef` output, checked: promotion needs a deployed source."""
    if not isinstance(output, str) or not output:
        raise ValueError(
            f"imageFromStack: stack {stack!r} has no {SOURCE_OUTPUT} output; deploy it first "
            "(or give the image itself with imageRef)"
        )
    return output


class AppImage(pulumi.ComponentResource):
    repository_url: pulumi.Output[str]
    repository_arn: pulumi.Output[str]
    image_ref: pulumi.Output[str]
    digest: pulumi.Output[str]
    source: str  # where the image comes from: "build", "imageRef" or "stack <name>"
    tag: str | None  # the build's tag (the digest of its inputs); None when nothing is built

    def __init__(self, name: str, args: AppImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:AppImage", name, None, opts)
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
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.repository_url = repository.repository_url
        self.repository_arn = repository.arn
        self.tag = None
        if config.builds:
            self.source = "build"
            self.tag = context_digest(
                args.project_root / config.context, args.project_root / config.dockerfile, config.platform
            )
            self.image_ref = self._build(name, args, repository, self.tag)
        else:
            self.source, self.image_ref = self._promote(name, config, repository)
        self.digest = self.image_ref.apply(digest_of)
        self.register_outputs(
            {"repository_url": self.repository_url, "image_ref": self.image_ref, "digest": self.digest}
        )

    def _build(
        self, name: str, args: AppImageArgs, repository: aws.ecr.Repository, tag: str
    ) -> pulumi.Output[str]:
        config = args.config
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
            opts=pulumi.ResourceOptions(parent=self),
        )
        return image.repo_digest

    def _promote(
        self, name: str, config: ImageConfig, repository: aws.ecr.Repository
    ) -> tuple[str, pulumi.Output[str]]:
        if config.ref:
            source: pulumi.Input[str] = config.ref
            described = "imageRef"
        else:
            reference = pulumi.StackReference(
                f"{name}-source-stack", stack_name=config.from_stack, opts=pulumi.ResourceOptions(parent=self)
            )
            source = reference.get_output(SOURCE_OUTPUT).apply(
                lambda output: stack_image_ref(config.from_stack, output)
            )
            described = f"stack {config.from_stack}"
        promotion = ImagePromotion(
            f"{name}-promotion", source, repository.repository_url, pulumi.ResourceOptions(parent=self)
        )
        return described, promotion.image_ref
