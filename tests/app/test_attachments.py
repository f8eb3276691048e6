"""Attachments: staff upload a file in the admin, it lands in the media storage (S3 here: moto
in-process), and /files/<id> hands out a short-lived link to it. The settings module picks S3 or
the file system from the environment contract."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import boto3
import environ
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import migrations
from django.test import Client
from moto import mock_aws

from attachments.models import Attachment
from config.settings.media import FILE_SYSTEM_STORAGE, S3_STORAGE, default_storage
from infra import app_contract

BUCKET = "djcelery-test-media-0123456789"
REGION = "eu-west-1"


def storage_for(**variables: str) -> dict:
    env = environ.Env()
    env.ENVIRON = variables  # read these variables instead of the process environment
    return default_storage(env)


# --- Settings from the environment contract ------------------------------------------------------


def test_a_stack_with_a_media_bucket_stores_files_in_it_privately() -> None:
    storage = storage_for(**{app_contract.MEDIA_BUCKET: BUCKET, app_contract.AWS_REGION: REGION})
    assert storage["BACKEND"] == S3_STORAGE
    options = storage["OPTIONS"]
    assert (options["bucket_name"], options["region_name"]) == (BUCKET, REGION)
    assert options["default_acl"] is None, "the bucket enforces object ownership: no ACLs"
    assert (options["querystring_auth"], options["querystring_expire"]) == (True, 300)
    assert options["file_overwrite"] is False
    assert "endpoint_url" not in options


def test_another_s3_endpoint_is_addressed_by_path() -> None:
    storage = storage_for(
        **{app_contract.MEDIA_BUCKET: BUCKET, app_contract.MEDIA_S3_ENDPOINT_URL: "http://127.0.0.1:5000"}
    )
    assert storage["OPTIONS"]["endpoint_url"] == "http://127.0.0.1:5000"
    assert storage["OPTIONS"]["addressing_style"] == "path"


def test_without_a_media_bucket_files_go_to_the_writable_tmp() -> None:
    assert storage_for() == {"BACKEND": FILE_SYSTEM_STORAGE, "OPTIONS": {"location": "/tmp/media"}}


def test_the_migration_only_adds_a_table_so_the_running_release_is_unaffected() -> None:
    """Expand only: the previous release never reads this table (README: expand, deploy, contract)."""
    migration = importlib.import_module("attachments.migrations.0001_initial").Migration
    assert [type(operation) for operation in migration.operations] == [migrations.CreateModel]


# --- Upload in the admin, download by link, against S3 ---------------------------------------------


@pytest.fixture
def s3_media(settings) -> Iterator[object]:
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        settings.STORAGES = {
            **settings.STORAGES,
            "default": storage_for(**{app_contract.MEDIA_BUCKET: BUCKET, app_contract.AWS_REGION: REGION}),
        }
        yield client


@pytest.fixture
def staff(db, django_user_model) -> Client:
    user = django_user_model.objects.create_superuser("ada", "ada@example.com", "not-a-real-password")
    client = Client()
    client.force_login(user)
    return client


def upload(staff: Client, name: str, content: bytes, content_type: str = "application/pdf"):
    return staff.post(
        "/admin/attachments/attachment/add/",
        {"file": SimpleUploadedFile(name, content, content_type=content_type), "name": ""},
    )


def test_staff_upload_lands_in_the_bucket_and_the_link_is_a_presigned_url(s3_media, staff: Client) -> None:
    content = b"%PDF-1.7 terms of service\n"
    response = upload(staff, "Terms of service.pdf", content)

    assert response.status_code == 302, response.content.decode()[:2000]
    attachment = Attachment.objects.get()
    assert attachment.file.name == f"attachments/{attachment.pk}/Terms_of_service.pdf"
    assert (attachment.name, attachment.size, attachment.content_type) == (
        "Terms of service.pdf",
        len(content),
        "application/pdf",
    )
    stored = s3_media.get_object(Bucket=BUCKET, Key=attachment.file.name)["Body"].read()
    assert stored == content

    download = Client().get(f"/files/{attachment.pk}")
    assert download.status_code == 302
    assert "no-cache" in download["Cache-Control"] or "max-age=0" in download["Cache-Control"]
    link = urlsplit(download["Location"])
    assert BUCKET in link.netloc + link.path and link.path.endswith("Terms_of_service.pdf")
    query = parse_qs(link.query)
    assert query["X-Amz-Expires"] == ["300"] and "X-Amz-Signature" in query


def test_two_uploads_of_one_name_are_two_files(s3_media, staff: Client) -> None:
    for content in (b"first", b"second"):
        assert upload(staff, "report.txt", content, "text/plain").status_code == 302
    keys = sorted(item["Key"] for item in s3_media.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert len(keys) == 2 and keys[0] != keys[1]
    assert {s3_media.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys} == {
        b"first",
        b"second",
    }


def test_a_file_over_the_limit_is_refused_and_not_stored(s3_media, staff: Client, settings) -> None:
    settings.ATTACHMENT_MAX_BYTES = 1024
    response = upload(staff, "big.bin", b"x" * 2048, "application/octet-stream")
    assert response.status_code == 200
    assert "larger than" in response.content.decode()
    assert Attachment.objects.count() == 0
    assert "Contents" not in s3_media.list_objects_v2(Bucket=BUCKET)


def test_anonymous_people_cannot_upload(s3_media, db) -> None:
    response = Client().post(
        "/admin/attachments/attachment/add/", {"file": SimpleUploadedFile("x.txt", b"x")}
    )
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert "Contents" not in s3_media.list_objects_v2(Bucket=BUCKET)


def test_an_unknown_attachment_is_not_found(db) -> None:
    assert Client().get(f"/files/{uuid.uuid4()}").status_code == 404
