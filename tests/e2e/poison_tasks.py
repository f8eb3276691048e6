"""Tasks that poison the worker that runs them, imported by a worker with `--include` (stack.py)."""

import os
import signal

from celery import shared_task

RAISE_MEMORY_ERROR = "poison.raise_memory_error"
KILL_OWN_PROCESS = "poison.kill_own_process"


@shared_task(name=RAISE_MEMORY_ERROR)
def raise_memory_error() -> None:
    raise MemoryError("a task that needs more memory than the worker has")


@shared_task(name=KILL_OWN_PROCESS)
def kill_own_process() -> None:
    """What the kernel's OOM killer does to a pool process that grows past the container's memory."""
    os.kill(os.getpid(), signal.SIGKILL)
