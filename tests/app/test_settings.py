"""Settings read from the environment: Redis TLS, Celery time limits, production checks."""

from __future__ import annotations

import runpy
import ssl
import subprocess
import sys
from types import SimpleNamespace

import pytest
from celery import Celery
from django.core.exceptions import ImproperlyConfigured

from infra import app_contract
from testkit.processes import APP_DIR, container_env

TLS_REDIS_URL = "rediss://:token@cache.example.com:6379/0?ssl_cert_reqs=required"
SHORT_LIMITS = {
    app_contract.CELERY_TASK_SOFT_TIME_LIMIT: "12",
    app_contract.CELERY_TASK_TIME_LIMIT: "18",
    app_contract.EMAIL_TIMEOUT: "3",
}


def load_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict:
    """Evaluate config/settings/base.py afresh with these environment variables."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(APP_DIR / "config" / "settings" / "base.py"))


def celery_app(settings: dict) -> Celery:
    app = Celery("settings-under-test", set_as_current=False)
    app.config_from_object(SimpleNamespace(**settings), namespace="CELERY")
    return app


def test_rediss_url_verifies_certificates_for_broker_backend_and_beat(monkeypatch) -> None:
    settings = load_settings(monkeypatch, REDIS_URL=TLS_REDIS_URL)
    app = celery_app(settings)

    broker = app.connection_for_write()
    assert broker.ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}, "the broker must verify the certificate"
    backend = app.backend
    assert backend.connparams["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert backend.connparams["connection_class"].__name__ == "SSLConnection"
    assert settings["CELERY_REDBEAT_REDIS_USE_SSL"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def test_rediss_url_without_ssl_cert_reqs_still_verifies(monkeypatch) -> None:
    settings = load_settings(monkeypatch, REDIS_URL="rediss://:token@cache.example.com:6379/0")

    assert celery_app(settings).connection_for_write().ssl["ssl_cert_reqs"] == ssl.CERT_REQUIRED


@pytest.mark.parametrize("weak", ["none", "optional", "CERT_NONE"])
def test_rediss_url_asking_for_less_than_verification_is_refused(monkeypatch, weak: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=f"ssl_cert_reqs={weak}"):
        load_settings(monkeypatch, REDIS_URL=f"rediss://cache.example.com:6379/0?ssl_cert_reqs={weak}")


def test_plain_redis_url_uses_no_tls(monkeypatch) -> None:
    settings = load_settings(monkeypatch, REDIS_URL="redis://127.0.0.1:6379/0")

    assert settings["CELERY_BROKER_USE_SSL"] is None


def test_default_time_limits_are_below_the_visibility_timeout(monkeypatch) -> None:
    settings = load_settings(monkeypatch)

    soft, hard = settings["CELERY_TASK_SOFT_TIME_LIMIT"], settings["CELERY_TASK_TIME_LIMIT"]
    visibility = settings["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"]
    assert (soft, hard) == (270, 300)
    assert soft < hard < visibility
    assert hard - soft > settings["EMAIL_TIMEOUT"]
    assert settings["WELCOME_EMAIL_DATABASE_RETRY_DELAY"] < visibility
    assert settings["CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS"]["visibility_timeout"] == visibility


@pytest.mark.parametrize(
    "env",
    [
        {app_contract.CELERY_TASK_TIME_LIMIT: "3600", app_contract.CELERY_VISIBILITY_TIMEOUT: "3600"},
        {app_contract.CELERY_TASK_SOFT_TIME_LIMIT: "300", app_contract.CELERY_TASK_TIME_LIMIT: "300"},
        {app_contract.CELERY_VISIBILITY_TIMEOUT: "200"},
    ],
)
def test_time_limits_not_below_the_visibility_timeout_are_refused(monkeypatch, env: dict) -> None:
    with pytest.raises(ImproperlyConfigured, match="VISIBILITY_TIMEOUT"):
        load_settings(monkeypatch, **env)


def test_short_timings_that_keep_every_rule_are_accepted(monkeypatch) -> None:
    settings = load_settings(monkeypatch, **SHORT_LIMITS, **{app_contract.CELERY_VISIBILITY_TIMEOUT: "20"})

    assert settings["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"] == 20


def test_a_visibility_timeout_not_above_the_database_retry_delay_is_refused(monkeypatch) -> None:
    limits = {
        app_contract.CELERY_TASK_SOFT_TIME_LIMIT: "1",
        app_contract.CELERY_TASK_TIME_LIMIT: "4",
        app_contract.CELERY_VISIBILITY_TIMEOUT: "5",
        app_contract.EMAIL_TIMEOUT: "2",
    }
    with pytest.raises(ImproperlyConfigured, match=r"database retry delay \(5\)"):
        load_settings(monkeypatch, **limits)


def test_a_soft_to_hard_gap_not_above_the_smtp_timeout_is_refused(monkeypatch) -> None:
    # The e2e suite's former timings: a delivery stopped at 16 s still says QUIT for up to 10 s.
    limits = {app_contract.CELERY_TASK_SOFT_TIME_LIMIT: "16", app_contract.CELERY_TASK_TIME_LIMIT: "18"}
    with pytest.raises(ImproperlyConfigured, match=r"\(2\) must exceed EMAIL_TIMEOUT \(10\)"):
        load_settings(monkeypatch, **limits, **{app_contract.CELERY_VISIBILITY_TIMEOUT: "20"})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({app_contract.WELCOME_EMAIL_RETRY_BACKOFF_SECONDS: "0"}, "WELCOME_EMAIL_RETRY_BACKOFF_SECONDS"),
        ({app_contract.WELCOME_EMAIL_RETRY_MAX_DELAY_SECONDS: "10"}, "WELCOME_EMAIL_RETRY_MAX_DELAY_SECONDS"),
        ({app_contract.WELCOME_EMAIL_RETRY_WINDOW_SECONDS: "600"}, "WELCOME_EMAIL_RETRY_WINDOW_SECONDS"),
        ({app_contract.SIGNUP_SWEEP_SECONDS: "0"}, "SIGNUP_SWEEP_SECONDS"),
        ({app_contract.SIGNUP_RATE_LIMIT: "ten per minute"}, "SIGNUP_RATE_LIMIT"),
        ({app_contract.SIGNUP_PREFIX_RATE_LIMIT: "60"}, "SIGNUP_PREFIX_RATE_LIMIT"),
        ({app_contract.SIGNUP_PROCESS_RATE_LIMIT: "0"}, "SIGNUP_PROCESS_RATE_LIMIT"),
    ],
)
def test_retry_and_abuse_settings_out_of_range_are_refused(monkeypatch, env: dict, named: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=named):
        load_settings(monkeypatch, **env)


def test_every_broken_rule_is_reported_at_once(monkeypatch) -> None:
    with pytest.raises(ImproperlyConfigured) as raised:
        load_settings(monkeypatch, SIGNUP_SWEEP_SECONDS="0", EMAIL_TIMEOUT="40")

    assert "SIGNUP_SWEEP_SECONDS" in str(raised.value) and "EMAIL_TIMEOUT (40)" in str(raised.value)


def test_reliability_settings_of_the_celery_app(monkeypatch) -> None:
    conf = celery_app(load_settings(monkeypatch)).conf

    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_connection_retry_on_startup and conf.broker_channel_error_retry
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.broker_transport_options["socket_timeout"] and conf.redis_socket_timeout
    assert conf.task_routes["signups.tasks.send_welcome_email"]["queue"] == app_contract.EMAIL_QUEUE
    assert conf.task_default_queue == app_contract.DEFAULT_QUEUE
    assert conf.beat_scheduler == "core.beat:HeartbeatRedBeatScheduler"
    assert conf.redbeat_lock_timeout <= 30 and conf.beat_max_loop_interval <= 10


def test_heartbeat_files_default_to_the_contract_paths(monkeypatch) -> None:
    monkeypatch.delenv("WORKER_HEARTBEAT_FILE", raising=False)
    monkeypatch.delenv("BEAT_HEARTBEAT_FILE", raising=False)
    settings = load_settings(monkeypatch)

    assert settings["WORKER_HEARTBEAT_FILE"] == app_contract.WORKER_HEARTBEAT_FILE
    assert settings["BEAT_HEARTBEAT_FILE"] == app_contract.BEAT_HEARTBEAT_FILE


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=APP_DIR, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("ssl_redirect", ["true", "false"])
def test_production_settings_pass_check_deploy_with_zero_warnings(ssl_redirect: str) -> None:
    env = container_env(
        "postgres://app@db.example.com:5432/app?sslmode=require",
        TLS_REDIS_URL,
        **{app_contract.DJANGO_SECURE_SSL_REDIRECT: ssl_redirect},
    )

    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("missing", app_contract.SECRET_VARIABLES)
def test_production_settings_name_a_missing_required_variable(missing: str) -> None:
    env = container_env("postgres://app@db.example.com:5432/app", TLS_REDIS_URL)
    del env[missing]

    result = manage(env, "check")

    assert result.returncode != 0
    assert f"Set the {missing} environment variable" in result.stderr
