"""The Pulumi program: Django web, Celery workers and Celery Beat on ECS Fargate."""

import sys
from pathlib import Path

# The CLI runs this directory as a script; the repository root makes `infra` importable as a package,
# so the program and the tests share one set of modules.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.config import load_stack_config

config = load_stack_config()
