"""Media files for real: gunicorn with production settings and the stack's environment contract
stores an upload in an S3 bucket served by a local S3-compatible server (moto's server mode), and
the download link it hands out serves the file from there.

A staff member signs in to the admin and uploads a file, as a browser behind the ALB would (HTTPS
as seen by the app through X-Forwarded-Proto, CSRF token and Origin checked).
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Iterator

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from infra import app_contract
from testkit.processes import APP_DIR, AppProcess, container_env, django_database_url, free_port, start_web

APP_HOST = "app.example.com"
BUCKET = "djcelery-e2e-media-5f3a9c"
REGION = "us-east-1"
PASSWORD = "correct-horse-battery-staple-42"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def web(transactional_db, s3_server: str) -> Iterator[tuple[AppProcess, str]]:
    from django.db import connection

    # The test database, committed to: gunicorn and manage.py are other processes.
    env = container_env(
        django_database_url(connection.settings_dict),
        "redis://127.0.0.1:6379/8",
        **{
            app_contract.MEDIA_BUCKET: BUCKET,
            app_contract.MEDIA_S3_ENDPOINT_URL: s3_server,
            app_contract.AWS_REGION: REGION,
            # What the task role's credentials are to the app: any pair works with the local server.
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
        },
    )
    for command in (
        ["collectstatic", "--noinput"],
        ["createsuperuser", "--noinput", "--username", "media-admin"],
    ):
        done = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=APP_DIR,
            env={**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD, "DJANGO_SUPERUSER_EMAIL": "admin@example.com"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0 or "already taken" in done.stderr, done.stderr
    port = free_port()
    process = start_web(env, port)
    yield process, f"http://127.0.0.1:{port}"
    process.stop()


class Browser:
    """A browser behind the ALB: the ALB terminates TLS, so the app marks its cookies Secure
    while this client speaks plain HTTP to gunicorn; it sends them anyway, as a browser would
    over HTTPS (requests drops Secure cookies on http:// URLs)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {
            "Host": APP_HOST,
            "X-Forwarded-Proto": "https",
            "Origin": f"https://{APP_HOST}",
            "Cookie": "; ".join(f"{name}={value}" for name, value in self.cookies.items()),
        }
        response = requests.request(
            method, self.base_url + path, headers=headers, allow_redirects=False, timeout=15, **kwargs
        )
        self.cookies.update(response.cookies.get_dict())
        return response


def csrf_token(page: requests.Response) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match, page.text[:2000]
    return match.group(1)


def test_an_upload_is_stored_in_the_bucket_and_its_link_serves_it(web, s3_server: str) -> None:
    process, base_url = web
    browser = Browser(base_url)
    login = browser.request("GET", "/admin/login/")
    signed_in = browser.request(
        "POST",
        "/admin/login/?next=/admin/",
        data={"username": "media-admin", "password": PASSWORD, "csrfmiddlewaretoken": csrf_token(login)},
    )
    assert signed_in.status_code == 302, process.describe()
    form = browser.request("GET", "/admin/attachments/attachment/add/")
    content = b"quarterly numbers\n" * 100
    uploaded = browser.request(
        "POST",
        "/admin/attachments/attachment/add/",
        data={"name": "Q4 report", "csrfmiddlewaretoken": csrf_token(form)},
        files={"file": ("q4 report.csv", content, "text/csv")},
    )
    assert uploaded.status_code == 302, uploaded.text[:3000] + process.describe()

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    [stored] = [
        item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"] if "q4_report" in item["Key"]
    ]
    attachment_id = stored.split("/")[1]
    assert stored == f"attachments/{attachment_id}/q4_report.csv"
    assert s3.get_object(Bucket=BUCKET, Key=stored)["Body"].read() == content

    link = requests.get(
        f"{base_url}/files/{attachment_id}",
        headers={"Host": APP_HOST, "X-Forwarded-Proto": "https"},
        allow_redirects=False,
        timeout=15,
    )
    assert link.status_code == 302, process.describe()
    assert link.headers["Location"].startswith(f"{s3_server}/{BUCKET}/{stored}?")
    served = requests.get(link.headers["Location"], timeout=15)
    assert (served.status_code, served.content) == (200, content)
