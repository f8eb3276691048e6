"""Task sizes that Fargate accepts (Linux, platform 1.4.0).

Source: the "Task CPU and memory" table of the Amazon ECS developer guide. A task whose CPU and
memory are not one of these pairs fails at `RegisterTaskDefinition`, after the rest of the stack
has been created, so the stack config is checked against this table before anything is declared.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.reader import ConfigReader

GIB = 1024


def _memory_range(low_gib: int, high_gib: int, step_gib: int) -> tuple[int, ...]:
    return tuple(gib * GIB for gib in range(low_gib, high_gib + 1, step_gib))


# CPU units -> memory sizes in MiB.
FARGATE_TASK_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: _memory_range(1, 4, 1),
    1024: _memory_range(2, 8, 1),
    2048: _memory_range(4, 16, 1),
    4096: _memory_range(8, 30, 1),
    8192: _memory_range(16, 60, 4),
    16384: _memory_range(32, 120, 8),
}


def is_valid_task_size(cpu: int, memory: int) -> bool:
    return memory in FARGATE_TASK_SIZES.get(cpu, ())


def describe_task_sizes() -> str:
    """The allowed pairs in a form that fits an error message."""
    parts = []
    for cpu, memories in FARGATE_TASK_SIZES.items():
        if len(memories) <= 3:
            choices = ", ".join(str(memory) for memory in memories)
        else:
            step = memories[1] - memories[0]
            choices = f"{memories[0]}-{memories[-1]} in steps of {step}"
        parts.append(f"cpu {cpu}: memory {choices}")
    return "; ".join(parts)


@dataclass(frozen=True)
class TaskSize:
    cpu: int  # CPU units
    memory: int  # MiB


def read_task_size(read: ConfigReader, cpu_key: str, memory_key: str) -> TaskSize:
    """A CPU/memory pair from two keys; a pair Fargate refuses is reported as `cpuKey/memoryKey`."""
    size = TaskSize(read.integer(cpu_key, 256, 16384), read.integer(memory_key, 512, 122880))
    check_task_size(read, f"{cpu_key}/{memory_key}", size, cpu_key, memory_key)
    return size


def check_task_size(read: ConfigReader, key: str, size: TaskSize, *inputs: str) -> None:
    """Reports `key` when the `inputs` it was read from are valid but Fargate has no such pair."""
    if read.valid(*inputs) and not is_valid_task_size(size.cpu, size.memory):
        read.report(key, [size.cpu, size.memory], f"a Fargate task size ({describe_task_sizes()})")
