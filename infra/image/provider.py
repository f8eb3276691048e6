"""The dynamic provider that brings a promoted image into the stack's own repository (copy.py).

Pulumi pickles the provider into the state and rebuilds it in the provider process; it holds only
module-level functions of this installed module, so the state stores references, never bytecode.
A provider-only difference is an update that stores the new provider and copies nothing (see
infra/release/provider.py: destroy rebuilds the provider from the state's copy).
Deleting the resource leaves the image where it is: the repository's lifecycle policy (or its
deletion with the stack) decides when it goes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from infra.dynamic_providers import changed, provider_refreshed
from infra.image.copy import Download, copy_image, download
from infra.image.reference import ImageRef

# A new source image or another target repository is a new promotion; nothing else copies again.
PROMOTION_TRIGGERS = ("source", "repository_url")

EcrClients = Callable[[str], Any]  # region -> ECR client


def ecr_client(region: str) -> Any:
    """An ECR client from the standard AWS credential chain."""
    config = Config(retries={"mode": "standard", "max_attempts": 10})
    return boto3.session.Session(region_name=region).client("ecr", config=config)


class ImagePromotionProvider(ResourceProvider):
    def __init__(self, clients: EcrClients = ecr_client, fetch: Download = download) -> None:
        super().__init__()
        self._clients = clients
        self._fetch = fetch

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=changed(olds, news, PROMOTION_TRIGGERS))

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._promote(props)
        return CreateResult(id_=outs["image_ref"], outs=outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        refreshed = provider_refreshed(olds, news, PROMOTION_TRIGGERS)
        return UpdateResult(outs=self._promote(news) if refreshed is None else refreshed)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        pass

    def _promote(self, props: dict[str, Any]) -> dict[str, Any]:
        target_region = str(props["region"])
        source = ImageRef.resolve(str(props["source"]), str(props["repository_url"]))
        result = copy_image(
            self._clients(source.region or target_region),
            self._clients(target_region),
            source,
            str(props["repository_url"]),
            self._fetch,
        )
        return {
            **props,
            "image_ref": str(result.image),
            "digest": result.image.digest,
            "copied_blobs": result.copied_blobs,
        }
