"""Fargate task sizes: the pairs AWS accepts, and nothing else."""

import pytest

from infra.services.task_sizes import FARGATE_TASK_SIZES, describe_task_sizes, is_valid_task_size


@pytest.mark.parametrize(
    ("cpu", "memory"),
    [
        (256, 512),
        (256, 2048),
        (512, 1024),
        (512, 4096),
        (1024, 8192),
        (2048, 16384),
        (4096, 30720),
        (8192, 16384),
        (8192, 61440),
        (16384, 32768),
        (16384, 122880),
    ],
)
def test_documented_sizes_are_valid(cpu: int, memory: int) -> None:
    assert is_valid_task_size(cpu, memory)


@pytest.mark.parametrize(
    ("cpu", "memory"),
    [
        (256, 4096),
        (256, 256),
        (512, 512),
        (512, 5120),
        (1024, 1024),
        (2048, 17408),
        (4096, 31744),
        (8192, 18432),
        (16384, 36864),
        (300, 1024),
        (128, 512),
        (32768, 131072),
    ],
)
def test_sizes_fargate_refuses_are_invalid(cpu: int, memory: int) -> None:
    assert not is_valid_task_size(cpu, memory)


def test_memory_steps_match_the_fargate_table() -> None:
    assert FARGATE_TASK_SIZES[512] == (1024, 2048, 3072, 4096)
    assert len(FARGATE_TASK_SIZES[4096]) == 23  # 8 to 30 GiB in 1 GiB steps
    assert FARGATE_TASK_SIZES[8192][1] - FARGATE_TASK_SIZES[8192][0] == 4096
    assert FARGATE_TASK_SIZES[16384][1] - FARGATE_TASK_SIZES[16384][0] == 8192


def test_description_names_every_cpu_size() -> None:
    description = describe_task_sizes()
    assert "cpu 256: memory 512, 1024, 2048" in description
    for cpu in FARGATE_TASK_SIZES:
        assert f"cpu {cpu}:" in description
