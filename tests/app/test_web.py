"""The web role as a real gunicorn process with production settings, behind a pretend ALB.

Redis here is a throwaway redis-server, so the tests can stop it and start it again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
from app_processes import APP_DIR, AppProcess, RedisServer, container_env, free_port, start_web, wait_for

from infra import app_contract
from signups.models import Signup

APP_HOST = "app.example.com"
ALB_HEALTH_CHECK_HOST = "10.0.12.34:8000"  # the ALB sends the target's IP address as Host


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def web(test_database_url: str, redis_server: RedisServer) -> Iterator[tuple[AppProcess, str]]:
    env = container_env(
        test_database_url, redis_server.url, **{app_contract.DJANGO_SECURE_SSL_REDIRECT: "true"}
    )
    # What the image build does: static files are collected before the server starts.
    collect = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=APP_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collect.returncode == 0, collect.stderr
    port = free_port()
    process = start_web(env, port)
    yield process, f"http://127.0.0.1:{port}"
    process.stop()


def get(base_url: str, path: str, host: str = APP_HOST, https: bool = True, **kwargs) -> requests.Response:
    headers = {"Host": host, **({"X-Forwarded-Proto": "https"} if https else {}), **kwargs.pop("headers", {})}
    return requests.get(base_url + path, headers=headers, allow_redirects=False, timeout=15, **kwargs)


def test_healthz_answers_the_alb_health_check_by_ip_over_plain_http(web) -> None:
    _, base_url = web

    response = get(base_url, app_contract.LIVENESS_PATH, host=ALB_HEALTH_CHECK_HOST, https=False)

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}


def test_other_paths_still_validate_the_host_and_redirect_to_https(web) -> None:
    _, base_url = web

    assert get(base_url, "/readyz", host=ALB_HEALTH_CHECK_HOST).status_code == 400
    redirect = get(base_url, "/readyz", https=False)
    assert redirect.status_code == 301
    assert redirect.headers["Location"] == f"https://{APP_HOST}/readyz"
    secure = get(base_url, "/readyz")
    assert secure.status_code == 200
    assert "max-age=31536000" in secure.headers["Strict-Transport-Security"]


def test_static_files_are_served_by_whitenoise_with_long_caching(web) -> None:
    _, base_url = web
    manifest = json.loads((APP_DIR / "staticfiles" / "staticfiles.json").read_text())
    hashed_css = manifest["paths"]["admin/css/base.css"]

    response = get(base_url, f"/static/{hashed_css}")

    assert response.status_code == 200
    assert "text/css" in response.headers["Content-Type"]
    assert "max-age=315360000" in response.headers["Cache-Control"]


def test_requests_get_an_id_that_appears_in_the_json_access_log(web) -> None:
    process, base_url = web

    response = get(base_url, "/readyz", headers={"X-Request-ID": "req-12345"})

    assert response.headers["X-Request-ID"] == "req-12345"
    wait_for(
        lambda: any(
            line.get("logger") == "gunicorn.access" and "request_id=req-12345" in line.get("message", "")
            for line in json_log_lines(process.output())
        ),
        timeout=5,
        message=f"no JSON access log line with the request id; {process.describe()}",
    )


def json_log_lines(output: str) -> list[dict]:
    lines = []
    for line in output.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_readyz_is_503_naming_redis_while_it_is_down_and_200_when_back(web, redis_server) -> None:
    _, base_url = web
    assert get(base_url, "/readyz").status_code == 200

    redis_server.stop()
    try:
        down = get(base_url, "/readyz")
        assert down.status_code == 503, down.text
        assert down.json()["down"] == ["redis"]
        assert down.json()["checks"] == {"database": "up", "redis": "down"}
    finally:
        redis_server.start()

    wait_for(
        lambda: get(base_url, "/readyz").status_code == 200, timeout=15, message="/readyz did not recover"
    )


@pytest.mark.django_db(transaction=True)
def test_signup_while_the_broker_is_down_gets_503_and_is_kept_for_the_sweep(web, redis_server) -> None:
    _, base_url = web
    redis_server.stop()
    try:
        started = time.monotonic()
        response = requests.post(
            f"{base_url}/api/signups",
            json={"email": "ada@example.com"},
            headers={"Host": APP_HOST, "X-Forwarded-Proto": "https"},
            timeout=30,
        )
        elapsed = time.monotonic() - started
    finally:
        redis_server.start()

    assert response.status_code == 503, web[0].describe()
    assert "later" in response.json()["error"]
    assert elapsed < 10, f"the request took {elapsed:.1f} s; publish retries must be bounded"
    signup = Signup.objects.get(pk=response.json()["id"])
    assert (signup.status, signup.enqueued_at) == ("queued", None), "the signup must be kept for the sweep"


@pytest.mark.django_db(transaction=True)
def test_signup_is_accepted_over_http_with_202(web) -> None:
    _, base_url = web

    response = requests.post(
        f"{base_url}/api/signups",
        json={"email": "grace@example.com"},
        headers={"Host": APP_HOST, "X-Forwarded-Proto": "https"},
        timeout=15,
    )

    assert response.status_code == 202, response.text
    assert Signup.objects.get(pk=response.json()["id"]).enqueued_at is not None
