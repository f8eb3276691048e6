"""What every role of the app runs with: Django settings, signup handling and Celery limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from infra.config.reader import EMAIL_ADDRESS_PATTERN, ConfigReader

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LOG_LEVELS: tuple[LogLevel, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The schemes of django-environ's EMAIL_URL that deliver mail (or log it, for a stack without SMTP).
EMAIL_URL_PATTERN = r"((smtp|smtps|smtp\+tls|smtp\+ssl)://\S+|consolemail://)?"
# django-ratelimit's rate: a count per period (s, m, h, d), the period optionally a multiple.
RATE_PATTERN = r"\d+/\d*[smhd]"


@dataclass(frozen=True)
class AppConfig:
    """Django settings every role shares."""

    django_settings_module: str
    log_level: LogLevel
    email_url: str  # secret (SMTP credentials); empty: emails go to the log
    default_from_email: str

    @classmethod
    def read(cls, read: ConfigReader) -> AppConfig:
        return cls(
            django_settings_module=read.string(
                "djangoSettingsModule", r"[A-Za-z_][\w.]*", "a dotted Python module path"
            ),
            log_level=read.choice("logLevel", LOG_LEVELS),
            email_url=read.string(
                "emailUrl",
                EMAIL_URL_PATTERN,
                "empty, or an EMAIL_URL like smtp+tls://user:password@smtp.example.com:587 "
                "(smtp, smtps, smtp+tls, smtp+ssl) set with `pulumi config set --secret emailUrl ...`",
            ),
            default_from_email=read.string(
                "defaultFromEmail", EMAIL_ADDRESS_PATTERN, "an email address like no-reply@example.com"
            ),
        )


@dataclass(frozen=True)
class SignupsConfig:
    """How the app delivers welcome emails through mail-server outages, and guards its signup API."""

    email_timeout_seconds: int  # per SMTP operation; below the soft-to-hard time limit gap
    retry_backoff_seconds: int  # the first retry's delay, doubled per attempt
    retry_max_delay_seconds: int  # the cap of that doubling
    retry_window_seconds: int  # after this, a delivery that keeps failing is marked failed
    sweep_seconds: int  # how often Beat's sweep re-drives due retries and unpublished signups
    requeue_after_seconds: int  # a signup never handed to the broker is re-driven after this
    rate_limit: str  # signups per client address, e.g. 10/m

    @classmethod
    def read(cls, read: ConfigReader) -> SignupsConfig:
        config = cls(
            email_timeout_seconds=read.integer("emailTimeoutSeconds", 1, 14),
            retry_backoff_seconds=read.integer("welcomeEmailRetryBackoffSeconds", 1, 3600),
            retry_max_delay_seconds=read.integer("welcomeEmailRetryMaxDelaySeconds", 1, 86400),
            retry_window_seconds=read.integer("welcomeEmailRetryWindowSeconds", 600, 604800),
            sweep_seconds=read.integer("signupSweepSeconds", 5, 300),
            requeue_after_seconds=read.integer("signupRequeueAfterSeconds", 30, 3600),
            rate_limit=read.string(
                "signupRateLimit", RATE_PATTERN, "a count per period, e.g. 10/m, 100/h or 5/10s"
            ),
        )
        backoff, longest = config.retry_backoff_seconds, config.retry_max_delay_seconds
        window = config.retry_window_seconds
        if (
            read.valid("welcomeEmailRetryBackoffSeconds", "welcomeEmailRetryMaxDelaySeconds")
            and longest < backoff
        ):
            read.report(
                "welcomeEmailRetryMaxDelaySeconds",
                longest,
                f"at least welcomeEmailRetryBackoffSeconds ({backoff})",
            )
        if (
            read.valid("welcomeEmailRetryMaxDelaySeconds", "welcomeEmailRetryWindowSeconds")
            and window < longest
        ):
            read.report(
                "welcomeEmailRetryWindowSeconds",
                window,
                f"at least welcomeEmailRetryMaxDelaySeconds ({longest})",
            )
        return config


@dataclass(frozen=True)
class CeleryLimits:
    """soft limit < hard limit < visibility timeout (RELIABILITY.md rules 2 and 11)."""

    soft_time_limit_seconds: int
    time_limit_seconds: int
    visibility_timeout_seconds: int

    @classmethod
    def read(cls, read: ConfigReader) -> CeleryLimits:
        limits = cls(
            soft_time_limit_seconds=read.integer("taskSoftTimeLimitSeconds", 1),
            time_limit_seconds=read.integer("taskTimeLimitSeconds", 1),
            visibility_timeout_seconds=read.integer("visibilityTimeoutSeconds", 1),
        )
        soft, hard = limits.soft_time_limit_seconds, limits.time_limit_seconds
        if read.valid("taskSoftTimeLimitSeconds", "taskTimeLimitSeconds") and soft >= hard:
            read.report("taskSoftTimeLimitSeconds", soft, f"less than taskTimeLimitSeconds ({hard})")
        visibility = limits.visibility_timeout_seconds
        if read.valid("taskTimeLimitSeconds", "visibilityTimeoutSeconds") and visibility <= hard:
            read.report(
                "visibilityTimeoutSeconds",
                visibility,
                f"more than taskTimeLimitSeconds ({hard}), or long tasks are delivered twice",
            )
        return limits


@dataclass(frozen=True)
class AppSettings:
    """The plain settings every role gets through its environment (containers.shared_environment)."""

    app: AppConfig
    signups: SignupsConfig
    celery: CeleryLimits
    https: bool  # the load balancer serves HTTPS: Django redirects to it and trusts its origins
    worker_stop_timeout_seconds: int  # the ECS stop timeout of workers, which they shut down within
    periodic_heartbeat_seconds: int  # the interval of Beat's recorded heartbeat entry
    redis_key_prefix: str = ""  # before every Redis key the app uses: `pr-N:` in a thin preview
