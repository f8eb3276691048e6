"""The app image: an ECR repository, and the image the stack runs in it, built or promoted.

Tasks use `image_ref` (repository@sha256:digest), so every new image is a new task definition
revision and rolls out.

- **Build** (the default): the image is built from the configured context and pushed; tags are
  immutable and named after the digest pulumi-docker itself keeps of the build inputs
  (build_context.py). The build paths stay relative to the project root, which is the working
  directory of the program and of the Docker provider: an absolute path would differ between two
  checkouts and make the provider rebuild and push an existing tag. When the repository already
  holds the tag (a `git revert`, or any return to a context built before), the stack runs that
  kept image by its digest and builds nothing: pushing the tag again would fail, because ECR
  refuses to overwrite a tag in an IMMUTABLE repository.
- **Promote** (`imageRef`, or `imageFromStack`: the `imageRef` output of another stack): nothing is
  built. The image, by digest, is copied into this stack's own repository unless it is there
  already (copy.py), so the stack's execution role pulls from the repository it may read, and the
  image stays as long as this stack keeps it, whatever happens to the source stack. A rollback is
  a promotion of a digest the repository still keeps. A source in another account lets the target
  account pull through its repository policy (`imagePullAccounts`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from infra import iam
from infra.image.build_context import context_digest
from infra.image.config import ImageConfig
from infra.image.provider import ImagePromotionProvider
from infra.image.reference import ImageRef, digest_of, ecr_region

SOURCE_OUTPUT = "imageRef"  # the output of a source stack that names its image
# What pulling an image needs (ECR user guide, private repository policy examples: "allow another
# account to pull images"); the promotion copy reads manifests and layers with exactly these.
PULL_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")


@dataclass(frozen=True)
class AppImageArgs:
    config: ImageConfig
    project_root: Path  # the build paths of `config` are relative to it
    protect: bool  # Pulumi `protect` on the repository; unprotected, destroy deletes it with its images
    # The stack's KMS key for the images; None: AES256. ECR cannot change it: a change replaces the
    # repository.
    key_arn: pulumi.Input[str] | None = None
    # A repository another stack owns (a thin preview builds into, or promotes to, its base's):
    # read, never created nor deleted by this stack.
    shared_repository: pulumi.Input[str] | None = None
    # An image whose layers a build reuses (its inline cache): a thin preview's base image, which a
    # preview's image differs from in the app's code only, so the dependency layers are not rebuilt.
    cache_from: pulumi.Input[str] | None = None


def pull_policy(accounts: Sequence[str]) -> str:
    """Other accounts (their principals, as their IAM allows) may pull; they may not push or delete."""
    return json.dumps(
        iam.document(
            iam.statement(
                "OtherAccountsPull",
                PULL_ACTIONS,
                None,
                principal={"AWS": [f"arn:aws:iam::{account}:root" for account in accounts]},
            )
        )
    )


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


def kept_image(image_ids: Sequence[Any], repository_url: str, tag: str) -> str | None:
    """`repository@digest` of the image the repository holds under `tag`, if it holds it."""
    for image in image_ids:
        image_tag = image.get("image_tag") if isinstance(image, dict) else image.image_tag
        digest = image.get("image_digest") if isinstance(image, dict) else image.image_digest
        if image_tag == tag and digest:
            return f"{repository_url}@{digest}"
    return None


def stack_image_ref(stack: str, output: object) -> str:
    """The source stack's `imageRef` output, checked: promotion needs a deployed source."""
    if not isinstance(output, str) or not output:
        raise ValueError(
            f"imageFromStack: stack {stack!r} has no {SOURCE_OUTPUT} output; deploy it first "
            "(or give the image itself with imageRef)"
        )
    return output


def image_repository(
    name: str,
    config: ImageConfig,
    protect: bool,
    key_arn: pulumi.Input[str] | None,
    opts: pulumi.ResourceOptions,
) -> aws.ecr.Repository:
    """The stack's image repository: immutable tags, scanned on push, its lifecycle and who else
    may pull (a preview base's repository holds the images of every preview on it)."""
    repository = aws.ecr.Repository(
        f"{name}-repository",
        image_tag_mutability="IMMUTABLE",
        image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
        force_delete=not protect,
        encryption_configurations=[
            aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS", kms_key=key_arn)
        ]
        if key_arn is not None
        else None,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=protect)),
    )
    aws.ecr.LifecyclePolicy(
        f"{name}-lifecycle",
        repository=repository.name,
        policy=lifecycle_policy(config.keep_images),
        opts=opts,
    )
    if config.pull_accounts:
        aws.ecr.RepositoryPolicy(
            f"{name}-pull",
            repository=repository.name,
            policy=pull_policy(config.pull_accounts),
            opts=opts,
        )
    return repository


class AppImage(pulumi.ComponentResource):
    repository_url: pulumi.Output[str]
    repository_name: pulumi.Output[str]
    repository_arn: pulumi.Output[str]
    image_ref: pulumi.Output[str]
    digest: pulumi.Output[str]
    source: str  # where the image comes from: "build", "imageRef" or "stack <name>"
    tag: str | None  # the build's tag (the digest of its inputs); None when nothing is built

    def __init__(self, name: str, args: AppImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("djcelery:index:AppImage", name, None, opts)
        config = args.config
        repository = (
            aws.ecr.Repository.get(
                f"{name}-repository", args.shared_repository, opts=pulumi.ResourceOptions(parent=self)
            )
            if args.shared_repository is not None
            else image_repository(
                name, config, args.protect, args.key_arn, pulumi.ResourceOptions(parent=self)
            )
        )
        self.repository_url = repository.repository_url
        self.repository_name = repository.name
        self.repository_arn = repository.arn
        self.tag = None
        if config.builds:
            self.source = "build"
            self.tag = context_digest(
                args.project_root / config.context, args.project_root / config.dockerfile, config.platform
            )
            self.image_ref = self._build_unless_kept(name, args, repository, self.tag)
        else:
            self.source, self.image_ref = self._promote(name, config, repository)
        self.digest = self.image_ref.apply(digest_of)
        self.register_outputs(
            {"repository_url": self.repository_url, "image_ref": self.image_ref, "digest": self.digest}
        )

    def _build_unless_kept(
        self, name: str, args: AppImageArgs, repository: aws.ecr.Repository, tag: str
    ) -> pulumi.Output[str]:
        """The kept image of `tag` by digest, or a new build. The lookup runs during preview too
        once the repository exists, so a preview shows whether an update builds."""
        held = aws.ecr.get_images_output(
            repository_name=repository.name, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        return pulumi.Output.all(held.image_ids, repository.repository_url).apply(
            lambda values: kept_image(values[0], values[1], tag) or self._build(name, args, repository, tag)
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
                context=config.context,
                dockerfile=config.dockerfile,
                platform=config.platform,
                # Every image carries its layer cache, so a later build can start from it
                # (pulumi-docker's "Docker image build using caching with AWS ECR" example).
                args={"BUILDKIT_INLINE_CACHE": "1"},
                cache_from=docker.CacheFromArgs(images=[args.cache_from]) if args.cache_from else None,
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
