"""Time to a new environment: the critical path of a fresh `pulumi up`, per stack.

The program runs under mocks (testkit.program); the engine creates each resource as soon as its
dependencies exist, so the stack is up when the longest chain of typical create times is done
(testkit/engine/timeline.py names the source of each time). Not a measurement of AWS: a model of
the order the program imposes, so a change that lengthens the first deploy shows here.

Beside the stacks, the preview base and a fresh thin preview on an existing base (the program's
own preview kinds, bench/preview.py) with the same create times, against the target for a preview.

    .venv/bin/python -m bench.timeline [--stack dev --stack prod --stack pr-1]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench import preview
from bench.report import argument_parser, describe_machine, machine_facts, table, write_results
from testkit.engine.timeline import MINUTE, create_time, critical_path
from testkit.program import ProgramRun, run_program

# A per-pull-request stack has no stack file: the defaults plus `ephemeral: true` (the full copy).
STACKS: dict[str, dict[str, object]] = {"dev": {}, "prod": {}, "pr-1": {"ephemeral": True}}
# Issue 26: a fresh preview on an existing base is ready within this many minutes.
PREVIEW_TARGET_MINUTES = 5.0


@dataclass(frozen=True)
class Step:
    resource: str
    type: str
    seconds: int
    done_at: int


def stack_timeline(stack: str) -> dict[str, Any]:
    return timeline(stack, run_program(stack, STACKS.get(stack, {"ephemeral": True})))


def timeline(name: str, run: ProgramRun) -> dict[str, Any]:
    path = critical_path(run)
    steps: list[Step] = []
    for resource in path.chain:
        seconds = create_time(resource, run).seconds
        steps.append(
            Step(resource.name, resource.type, seconds, (steps[-1].done_at if steps else 0) + seconds)
        )
    return {
        "stack": name,
        "minutes": path.minutes,
        "chain": [asdict(step) for step in steps],
        # The steps of a minute or more: what sets the time.
        "set_by": [step.resource for step in steps if step.seconds >= MINUTE],
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argument_parser(__doc__)
    parser.add_argument("--stack", action="append", help=f"default: {', '.join(STACKS)}")
    args = parser.parse_args(argv)
    facts = machine_facts()
    print(f"Fresh `pulumi up`: critical path from typical create times | {describe_machine(facts)}")
    timelines = [stack_timeline(stack) for stack in args.stack or STACKS]
    base = timeline("preview-base (once)", preview.preview_base())
    fresh_preview = timeline("pr-N thin preview on the base", preview.thin_preview())
    print(
        table(
            ["stack", "minutes", "set by (resources of a minute or more, in order)"],
            [(t["stack"], t["minutes"], " -> ".join(t["set_by"])) for t in [*timelines, base, fresh_preview]],
        )
    )
    met = fresh_preview["minutes"] <= PREVIEW_TARGET_MINUTES
    print(
        f"target: a fresh preview on an existing base in <= {PREVIEW_TARGET_MINUTES:g} min: "
        f"{'met' if met else 'NOT met'} ({fresh_preview['minutes']} min)"
    )
    results: dict[str, object] = {
        "machine": facts,
        "timelines": timelines,
        "preview_base": base,
        "preview": fresh_preview,
        "preview_target_minutes": PREVIEW_TARGET_MINUTES,
        "preview_target_met": met,
    }
    write_results("timeline", results, args.results_dir)
    return results


if __name__ == "__main__":
    main()
