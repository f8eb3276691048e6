"""The production settings plus a profiler around a worker's busy time, for the pipeline profile.

The profiler starts when the worker is ready (after imports and Django set-up) and is written to
BENCH_PROFILE_PATH when the worker begins its shutdown. Run the worker with `--pool solo` so tasks
execute in the profiled main thread.
"""

import cProfile
import os

from celery.signals import worker_ready, worker_shutting_down

from config.settings.production import *  # noqa: F403

PROFILE_PATH = os.environ["BENCH_PROFILE_PATH"]
profiler = cProfile.Profile()


@worker_ready.connect
def start_profiling(**_: object) -> None:
    profiler.enable()


@worker_shutting_down.connect
def write_profile(**_: object) -> None:
    profiler.disable()
    profiler.dump_stats(PROFILE_PATH)
