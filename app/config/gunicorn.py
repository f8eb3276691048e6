"""gunicorn settings for the web role (`gunicorn --config config/gunicorn.py config.wsgi`).

Timeouts are set relative to the AWS ALB (idle timeout 60 s) and the ECS stop timeout (30 s by
default for the web container); each can be changed through its environment variable.
"""

import os

from core.logging import JSON_FORMATTER


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {value!r}") from None


bind = "0.0.0.0:8000"
# gthread with a buffering front: a request reaches a thread once it has arrived whole, so
# clients that trickle headers or bodies cannot hold every thread (core.buffering_worker).
worker_class = "core.buffering_worker.BufferingThreadWorker"
workers = env_int("GUNICORN_WORKERS", 2)
threads = env_int("GUNICORN_THREADS", 4)
# Longer than the ALB idle timeout, so the ALB never reuses a connection gunicorn already closed
# (which shows up as sporadic 502s).
keepalive = env_int("GUNICORN_KEEPALIVE", 75)
# Shorter than the ALB idle timeout: a stuck request is cut here, with a log line, not at the ALB.
timeout = env_int("GUNICORN_TIMEOUT", 30)
# Shorter than the ECS stop timeout: in-flight requests finish before the SIGKILL.
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 25)
# Recycle workers now and then, so a slow memory leak cannot grow forever.
max_requests = 1000
max_requests_jitter = 100
# The worker heartbeat file goes to the writable tmpfs (the root file system is read-only).
worker_tmp_dir = "/tmp"  # noqa: S108
# Only the load balancer's X-Forwarded-Proto is trusted, and only from its subnets (the stack sets
# FORWARDED_ALLOW_IPS; gunicorn's default is this machine). The ALB sets X-Forwarded-Proto itself;
# X-Forwarded-Ssl, X-Forwarded-Protocol, SCRIPT_NAME or PATH_INFO would come from the client.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1,::1"
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
forwarder_headers = ""

accesslog = "-"
logger_class = "core.access_log.BoundedAccessLogger"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s agent="%(a)s"'
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": JSON_FORMATTER},
    "handlers": {
        "stdout": {
            "class": "core.logging.RedactedStreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
        },
    },
    # gunicorn merges this into its defaults, whose root logger names a handler replaced here.
    "root": {"handlers": ["stdout"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": loglevel.upper(), "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}
