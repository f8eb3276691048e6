"""The production settings, with workers keeping their PostgreSQL connection between tasks.

Celery's Django fixup closes every database connection before and after each task unless
CELERY_DB_REUSE_MAX is set, so by default a worker opens a new connection (TCP, authentication,
TLS on RDS) for every task and CONN_MAX_AGE never applies. Here Celery leaves connections open
and, before each task, Django's own `close_old_connections` applies CONN_MAX_AGE and
CONN_HEALTH_CHECKS, as it does around every web request. A candidate for the product's settings.
"""

from celery.signals import task_prerun

from config.settings.production import *  # noqa: F403

# Celery closes connections only after this many tasks (counted twice: before and after each).
CELERY_DB_REUSE_MAX = 1000


@task_prerun.connect
def reuse_healthy_connections(**_: object) -> None:
    from django.db import close_old_connections

    close_old_connections()
