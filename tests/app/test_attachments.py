"""Attachments: staff upload a file in the admin, it lands in the media storage (S3 here: moto
in-process), and /files/<id> hands out a short-lived link to it. The settings module picks S3 or
the file system from the environment contract."""

from __future__ import annotations

import contextlib
import importlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import boto3
import environ
import pytest
from django.contrib.messages import get_messages
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import migrations
from django.test import Client
from moto import mock_aws

from attachments.content import detected_type
from attachments.models import Attachment
from config.settings import media
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


# --- What the browser is told: the type from the content, attachment unless safe inline ---------

PAGE_WITH_SCRIPT = b"<html><body><script>document.cookie</script></body></html>"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def presigned_overrides(attachment: Attachment) -> tuple[dict[str, list[str]], object]:
    """The response overrides signed into the download link (S3 GetObject's response-content-type
    and response-content-disposition query parameters, botocore shape GetObjectRequest
    ResponseContentType / ResponseContentDisposition), and the download response."""
    download = Client().get(f"/files/{attachment.pk}")
    assert download.status_code == 302
    return parse_qs(urlsplit(download["Location"]).query), download


def test_a_page_uploaded_as_html_is_stored_as_text_and_always_downloaded(s3_media, staff: Client) -> None:
    assert upload(staff, "offer.html", PAGE_WITH_SCRIPT, "text/html").status_code == 302
    attachment = Attachment.objects.get()

    assert attachment.content_type == "text/plain; charset=utf-8", "the uploader's claim is ignored"
    stored = s3_media.head_object(Bucket=BUCKET, Key=attachment.file.name)
    assert stored["ContentType"] == "text/plain; charset=utf-8"
    query, download = presigned_overrides(attachment)
    assert query["response-content-type"] == ["text/plain; charset=utf-8"]
    assert query["response-content-disposition"] == ['attachment; filename="offer.html"']
    assert download["X-Content-Type-Options"] == "nosniff"


def test_an_image_is_shown_inline_whatever_type_the_uploader_claimed(s3_media, staff: Client) -> None:
    assert upload(staff, "logo.png", PNG, "text/html").status_code == 302
    attachment = Attachment.objects.get()

    query, _ = presigned_overrides(attachment)
    assert query["response-content-type"] == ["image/png"]
    assert query["response-content-disposition"] == ['inline; filename="logo.png"']


def test_a_row_stored_with_the_uploaders_type_is_downloaded_as_bytes(s3_media, db) -> None:
    """Rows written before types were detected hold the uploader's claim (here text/html)."""
    attachment = Attachment(content_type="text/html", name="old.html")
    attachment.file.save("old.html", ContentFile(PAGE_WITH_SCRIPT))

    query, _ = presigned_overrides(attachment)
    assert query["response-content-type"] == ["application/octet-stream"]
    assert query["response-content-disposition"] == ['attachment; filename="old.html"']


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"%PDF-1.7", "application/pdf"),
        (b"GIF89a..", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"PK\x03\x04", "application/zip"),
        ("caf\u00e9".encode()[:4], "text/plain; charset=utf-8"),  # a character cut by the sample
        (b"MZ\x90\x00\x03", "application/octet-stream"),
        (b"", "application/octet-stream"),
    ],
)
def test_the_type_is_read_from_the_first_bytes(head: bytes, expected: str) -> None:
    assert detected_type(head) == expected


# --- An S3 that accepts connections and never answers --------------------------------------------


@pytest.fixture
def silent_s3() -> Iterator[str]:
    """A TCP server that accepts every connection and never sends a byte."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for connection in [*held, listener]:
        connection.close()


def test_the_media_store_timeouts_end_before_gunicorn_and_the_load_balancer_give_up() -> None:
    """Worst case of one S3 call: every attempt waits the connect and the read timeout. It must end
    before gunicorn's request timeout (GUNICORN_TIMEOUT, 30 s), itself below the ALB's idle timeout
    (60 s by default: Application Load Balancers user guide, "Connection idle timeout")."""
    worst = media.S3_ATTEMPTS * (media.S3_CONNECT_TIMEOUT_SECONDS + media.S3_READ_TIMEOUT_SECONDS)
    config = storage_for(**{app_contract.MEDIA_BUCKET: BUCKET})["OPTIONS"]["client_config"]
    assert (config.connect_timeout, config.read_timeout) == (3, 10)
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}
    assert worst < 30 < 60


def test_an_upload_to_a_store_that_never_answers_is_an_admin_message_in_bounded_time(
    silent_s3: str, staff: Client, settings, monkeypatch
) -> None:
    for variable, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(variable, value)
    endpoint = {app_contract.MEDIA_S3_ENDPOINT_URL: silent_s3}
    options = storage_for(**{app_contract.MEDIA_BUCKET: BUCKET, **endpoint})
    # The production client settings with short timeouts, so the test takes about a second.
    short = media.s3_client_config("path", connect_timeout=0.3, read_timeout=0.3)
    options["OPTIONS"]["client_config"] = short
    settings.STORAGES = {**settings.STORAGES, "default": options}

    started = time.monotonic()
    response = upload(staff, "terms.pdf", b"%PDF-1.7 terms")
    elapsed = time.monotonic() - started

    assert response.status_code == 302 and response["Location"] == "/admin/attachments/attachment/add/"
    assert response["Retry-After"] == "30"
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert shown == ["The file store did not answer in time; nothing was saved. Please try again shortly."]
    assert Attachment.objects.count() == 0
    assert elapsed < 5, f"{elapsed:.1f} s"
