"""The web role as a real gunicorn process with production settings, behind a pretend ALB.

Redis here is a throwaway redis-server, so the tests can stop it and start it again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from django.conf import settings

from infra import app_contract
from signups.models import Signup
from testkit.processes import APP_DIR, AppProcess, RedisServer, container_env, free_port, start_web, wait_for

APP_HOST = "app.example.com"
ALB_HEALTH_CHECK_HOST = "10.0.12.34:8000"  # the ALB sends the target's IP address as Host
# A signup must be answered within this, whatever state the broker is in.
POST_DEADLINE_SECONDS = 3
HEADERS = {"Host": APP_HOST, "X-Forwarded-Proto": "https"}


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
    accepted_again_after_cool_down(base_url)


def accepted_again_after_cool_down(base_url: str) -> None:
    """After a refused publish the web skips publishing for a few seconds, then accepts again."""
    wait_for(
        lambda: post_signup(base_url, f"after-{uuid.uuid4().hex[:8]}@example.com")[0] == 202,
        timeout=settings.BROKER_PUBLISH_COOL_DOWN_SECONDS + 10,
        message="signups were not accepted again once the broker was back",
        interval=1,
    )


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


def post_signup(base_url: str, email: str) -> tuple[int, float, dict]:
    started = time.monotonic()
    response = requests.post(f"{base_url}/api/signups", json={"email": email}, headers=HEADERS, timeout=30)
    return response.status_code, time.monotonic() - started, response.json()


def healthz_seconds(base_url: str) -> float:
    started = time.monotonic()
    response = get(base_url, app_contract.LIVENESS_PATH, host=ALB_HEALTH_CHECK_HOST, https=False)
    assert response.status_code == 200, response.text
    return time.monotonic() - started


Answer = tuple[int, float, dict]  # status, seconds, body


def signups_under_broker_fault(base_url: str, prefix: str) -> tuple[list[Answer], list[float]]:
    """Four clients (the web's threads) post 12 signups while a fifth polls /healthz."""
    emails = [f"{prefix}-{n}@example.com" for n in range(12)]
    with ThreadPoolExecutor(5) as pool:
        health = pool.submit(lambda: [healthz_seconds(base_url) for _ in range(6)])
        with ThreadPoolExecutor(4) as clients:
            answers = list(clients.map(lambda email: post_signup(base_url, email), emails))
        return answers, health.result()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fault", ["refused", "half-open", "slow"])
def test_signups_are_answered_within_3_s_and_healthz_stays_up_whatever_the_broker_does(
    web, redis_server, fault: str
) -> None:
    _, base_url = web
    with broker_fault(redis_server, fault):
        answers, health = signups_under_broker_fault(base_url, fault)
    wait_for(lambda: get(base_url, "/readyz").status_code == 200, timeout=15, message="Redis did not recover")

    slowest = max(seconds for _, seconds, _ in answers)
    assert slowest < POST_DEADLINE_SECONDS, f"{fault}: a signup took {slowest:.1f} s; {web[0].describe()}"
    assert max(health) < POST_DEADLINE_SECONDS, f"{fault}: /healthz took {max(health):.1f} s"
    # A slow broker still takes signups (a publish that outlasts the bound on a loaded machine is a
    # 503 whose signup the sweep sends); a refusing or silent one gets the bounded 503.
    expected = {202} if fault == "slow" else {503}
    assert {status for status, _, _ in answers} <= {202, 503}, answers
    assert expected <= {status for status, _, _ in answers}, answers
    kept = Signup.objects.filter(pk__in=[body["id"] for _, _, body in answers]).count()
    assert kept == len(answers), "every answered signup, 503 included, is kept"
    accepted_again_after_cool_down(base_url)


class broker_fault:
    """Redis refusing connections (stopped), half-open (SIGSTOP: the kernel still accepts
    connections, nothing answers), or slow (every write paused for 200 ms, as in a failover)."""

    def __init__(self, server: RedisServer, fault: str) -> None:
        self.server, self.fault = server, fault
        self.stop_pausing = threading.Event()
        self.pauser: threading.Thread | None = None

    def __enter__(self) -> None:
        if self.fault == "refused":
            self.server.stop()
        elif self.fault == "half-open":
            self.server.process.send_signal(signal.SIGSTOP)
        else:
            self.pauser = threading.Thread(target=self.keep_pausing, daemon=True)
            self.pauser.start()

    def keep_pausing(self) -> None:
        client = redis.Redis(port=self.server.port)
        while not self.stop_pausing.is_set():
            client.execute_command("CLIENT", "PAUSE", "200", "WRITE")
            self.stop_pausing.wait(0.25)

    def __exit__(self, *exc_info: object) -> None:
        if self.fault == "refused":
            self.server.start()
        elif self.fault == "half-open":
            self.server.process.send_signal(signal.SIGCONT)
        else:
            self.stop_pausing.set()
            self.pauser.join(5)


@pytest.fixture(scope="module")
def web_without_database(redis_server: RedisServer) -> Iterator[str]:
    """A web process whose database is unreachable (nothing listens on its port)."""
    env = container_env(f"postgres://postgres@127.0.0.1:{free_port()}/gone", redis_server.url)
    port = free_port()
    process = start_web(env, port)
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.mark.parametrize(
    "request_api",
    [
        lambda base: requests.post(f"{base}/api/signups", json={"email": "ada@example.com"}, headers=HEADERS,
                                   timeout=30),
        lambda base: requests.get(f"{base}/api/signups/{uuid.uuid4()}", headers=HEADERS, timeout=30),
    ],
    ids=["post", "get"],
)
def test_the_api_answers_503_json_with_retry_after_while_the_database_is_down(
    web_without_database: str, request_api: Callable[[str], requests.Response]
) -> None:
    response = request_api(web_without_database)

    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert "unavailable" in response.json()["error"]
    assert int(response.headers["Retry-After"]) > 0
    liveness = get(web_without_database, app_contract.LIVENESS_PATH, host=ALB_HEALTH_CHECK_HOST)
    assert liveness.status_code == 200, "the ALB health check must not depend on the database"
