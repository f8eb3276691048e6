"""Celery worker pools: one component per pool owns its service, its autoscaling and its protection."""
