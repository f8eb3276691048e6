"""A worker pool's numbers have one home and one name each, from the stack file to AWS.

`maxCount` in the stack file is `max_count` on the pool (infra/workers/config.py), on its scaling
and policy set (infra/workers/policies.py), in its autoscaling component (infra/workers/autoscaling.py)
and in the one scalable-target builder (infra/services/scaling.py), which alone passes it to AWS
under AWS's own name (`RegisterScalableTarget` MaxCapacity, `max_capacity` in pulumi-aws).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# Names a maximum (or minimum) of tasks had before it had one: none of them may come back.
OTHER_NAMES = re.compile(
    r"\b(max_workers|min_workers|max_tasks|min_tasks|max_capacity|min_capacity|maxWorkers)\b"
)
PATH = [
    "Pulumi.yaml",
    "infra/workers/config.py",
    "infra/workers/policies.py",
    "infra/workers/autoscaling.py",
    "infra/services/scaling.py",
]


def program_files() -> list[Path]:
    return sorted((ROOT / "infra").rglob("*.py"))


def test_a_task_count_limit_has_one_name_in_the_program() -> None:
    found = {
        str(path.relative_to(ROOT)): sorted(set(OTHER_NAMES.findall(path.read_text())))
        for path in program_files()
        if OTHER_NAMES.search(path.read_text())
    }
    assert found == {"infra/services/scaling.py": ["max_capacity", "min_capacity"]}, (
        f"only the scalable-target builder speaks AWS's names; elsewhere it is min_count/max_count: {found}"
    )


def test_max_count_goes_from_the_stack_file_to_the_scalable_target_through_five_files() -> None:
    texts = {name: (ROOT / name).read_text() for name in PATH}
    assert "maxCount" in texts["Pulumi.yaml"]
    assert (
        '"maxCount"' in texts["infra/workers/config.py"] and "max_count=" in texts["infra/workers/config.py"]
    )
    assert "max_count: int" in texts["infra/workers/policies.py"]
    assert "self.policies.max_count" in texts["infra/workers/autoscaling.py"]
    assert "max_capacity=max_count" in texts["infra/services/scaling.py"]
