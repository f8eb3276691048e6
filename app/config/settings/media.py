"""Media files (user uploads): S3 in a deployed stack, the local file system elsewhere.

The containers' root file system is read-only and a task's /tmp dies with it, so a deployed stack
stores uploads in its private media bucket (MEDIA_BUCKET, in AWS_REGION) through django-storages,
with the task role's credentials. The bucket is private: the app hands out presigned URLs that
expire after MEDIA_URL_EXPIRE_SECONDS. MEDIA_S3_ENDPOINT_URL points at another S3-compatible
server (tests run against a local one). Without MEDIA_BUCKET, files go under MEDIA_ROOT.
"""

from pathlib import Path
from typing import Any

import environ
from botocore.config import Config

S3_STORAGE = "storages.backends.s3.S3Storage"
FILE_SYSTEM_STORAGE = "django.core.files.storage.FileSystemStorage"
# An S3 that accepts connections and never answers held an upload thread for boto3's default
# 60 s read timeout x its attempts (180 s), past the load balancer's idle timeout (60 s,
# albIdleTimeoutSeconds), which then answered the client itself. Bounded here: at most
# S3_ATTEMPTS x (connect + read) = 26 s, below gunicorn's 30 s request timeout; the admin then
# says the store did not answer (attachments.admin).
S3_CONNECT_TIMEOUT_SECONDS = 3
S3_READ_TIMEOUT_SECONDS = 10
S3_ATTEMPTS = 2


def s3_client_config(
    addressing_style: str | None = None,
    connect_timeout: float = S3_CONNECT_TIMEOUT_SECONDS,
    read_timeout: float = S3_READ_TIMEOUT_SECONDS,
) -> Config:
    """botocore's client settings for the media bucket (they replace django-storages' own)."""
    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": S3_ATTEMPTS},
        signature_version="s3v4",
        s3={"addressing_style": addressing_style},
    )


def media_root(env: environ.Env) -> Path:
    # /tmp is the only writable path in the containers; uploads there are lost with the task.
    return Path(env.str("MEDIA_ROOT", default="/tmp/media"))  # noqa: S108


def default_storage(env: environ.Env) -> dict[str, Any]:
    """The `default` entry of STORAGES."""
    bucket = env.str("MEDIA_BUCKET", default="")
    if not bucket:
        return {"BACKEND": FILE_SYSTEM_STORAGE, "OPTIONS": {"location": str(media_root(env))}}
    options: dict[str, Any] = {
        "bucket_name": bucket,
        "region_name": env.str("AWS_REGION", default="") or None,
        # The bucket enforces object ownership: ACLs are off, so none is sent.
        "default_acl": None,
        "querystring_auth": True,
        "querystring_expire": env.int("MEDIA_URL_EXPIRE_SECONDS", default=300),
        # A second upload of "report.pdf" gets its own key instead of replacing the first.
        "file_overwrite": False,
        "signature_version": "s3v4",
        "client_config": s3_client_config(),
    }
    endpoint = env.str("MEDIA_S3_ENDPOINT_URL", default="")
    if endpoint:
        options.update(endpoint_url=endpoint, addressing_style="path", client_config=s3_client_config("path"))
    return {"BACKEND": S3_STORAGE, "OPTIONS": options}
