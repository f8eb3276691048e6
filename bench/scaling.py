"""Scaling reaction model: the deployed worker-scaling policy against bursts of one-second tasks.

For each worker pool of the dev and prod stacks, the policy set the stack deploys (the pool's
`scaling` through `infra.workers.policies.policy_set`: publish interval, alarm periods and
evaluation periods, cooldowns, wake-up steps) is played by `testkit.scaling_simulator.simulate`
against a burst of 1,000 and of 10,000 one-second tasks landing at once on an idle pool. Fargate
start-up is the stated assumption `infra.workers.policies.FARGATE_STARTUP_SECONDS`. Reported per burst:
time to the first scale-out decision and to the first added worker running, time to drain the
queue, time back to the minimum, and the worker-minutes used against the ideal (the work
divided by the pool's concurrency).

    .venv/bin/python -m bench.scaling
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from bench.report import argument_parser, describe_machine, machine_facts, table, write_results
from infra.stack import StackConfig, validate
from infra.workers.policies import FARGATE_STARTUP_SECONDS, PoolScaling, policy_set, reaction_times
from testkit.program import bare_config
from testkit.scaling_simulator import SimulationSample, simulate

BURST_SIZES = (1_000, 10_000)
BURST_TASK_SECONDS = 1
BURST_AT_SECOND = 30
# Simulated time after the worst-case return to min, so a slower-than-expected run still ends there.
SIMULATION_MARGIN_SECONDS = 600
STACKS = ("dev", "prod")
# A stack with config values it already accepts, to show what a different choice would change.
VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "prod, dev's scale-in": ("prod", {"scaleInQuietMinutes": 5, "scaleInCooldownSeconds": 60}),
}


def stack_config(stack: str, overrides: dict[str, object] | None = None) -> StackConfig:
    """The validated config of `stack` as the program reads it, plus `overrides`."""
    return validate(bare_config(stack, overrides))


@dataclass(frozen=True)
class BurstOutcome:
    stack: str
    pool: str
    tasks: int
    min_count: int
    max_count: int
    concurrency: int
    first_scale_out_s: int | None  # burst -> desired count raised
    first_added_worker_running_s: int | None  # burst -> one more worker than before is running
    drained_s: int | None  # burst -> nothing waiting or in flight
    back_to_min_s: int | None  # burst -> desired and running back at min
    peak_workers: int
    worker_minutes: float  # billed: running (incl. draining) plus each start-up
    ideal_worker_minutes: float  # the work itself: tasks x seconds / concurrency

    @property
    def overhead(self) -> float:
        return self.worker_minutes / self.ideal_worker_minutes


def run_burst(stack: str, pool: str, params: PoolScaling, tasks: int) -> BurstOutcome:
    policies = policy_set(params)
    # The policy is built for the pool's typical task; the burst's tasks take one second each.
    burst = replace(params, task_seconds=BURST_TASK_SECONDS)
    reaction = reaction_times(params, policies)
    slots = params.max_count * params.concurrency
    duration = (
        BURST_AT_SECOND
        + reaction.scale_out_decision
        + FARGATE_STARTUP_SECONDS
        + math.ceil(tasks * BURST_TASK_SECONDS / slots)
        + reaction.back_to_min(params.max_count, params.min_count)
        + SIMULATION_MARGIN_SECONDS
    )
    samples = simulate(burst, policies, {BURST_AT_SECOND: tasks}, duration)
    after = samples[BURST_AT_SECOND:]
    initial = samples[BURST_AT_SECOND - 1]

    def first(condition: Any, among: Sequence[SimulationSample] = after) -> SimulationSample | None:
        return next((sample for sample in among if condition(sample)), None)

    def since_burst(sample: SimulationSample | None) -> int | None:
        return None if sample is None else sample.second - BURST_AT_SECOND

    scale_out = first(lambda s: s.desired > initial.desired)
    added_running = first(lambda s: s.running > initial.running)
    drained = first(lambda s: s.waiting == 0 and s.in_flight == 0)
    back = None
    if drained is not None:
        after_drain = after[drained.second - BURST_AT_SECOND :]
        back = first(lambda s: s.desired == params.min_count and s.running == params.min_count, after_drain)
    episode = after[: None if back is None else back.second - BURST_AT_SECOND]
    started = sum(max(b.desired - a.desired, 0) for a, b in itertools.pairwise(samples))
    return BurstOutcome(
        stack=stack,
        pool=pool,
        tasks=tasks,
        min_count=params.min_count,
        max_count=params.max_count,
        concurrency=params.concurrency,
        first_scale_out_s=since_burst(scale_out),
        first_added_worker_running_s=since_burst(added_running),
        drained_s=since_burst(drained),
        back_to_min_s=since_burst(back),
        peak_workers=max(sample.running for sample in after),
        worker_minutes=(sum(sample.running for sample in episode) + started * FARGATE_STARTUP_SECONDS) / 60,
        ideal_worker_minutes=tasks * BURST_TASK_SECONDS / params.concurrency / 60,
    )


def policy_table(policies_used: list[dict[str, Any]]) -> str:
    """What each pool deploys: sizes, publish interval, target and reaction times."""
    return table(
        [
            "stack",
            "pool",
            "min-max x conc",
            "publish",
            "target/worker",
            "wake-up",
            "scale-out",
            "scale-in",
        ],
        [
            (
                used["stack"],
                used["pool"],
                f"{used['parameters']['min_count']}-{used['parameters']['max_count']} x "
                f"{used['parameters']['concurrency']}",
                f"{used['parameters']['timings']['publish_interval_seconds']} s",
                round(
                    used["parameters"]["concurrency"]
                    * used["parameters"]["target_latency_seconds"]
                    / used["parameters"]["task_seconds"]
                ),
                f"<= {used['reaction_times']['wake_up_decision']} s",
                f"<= {used['reaction_times']['scale_out_decision']} s",
                f"{used['parameters']['timings']['scale_in_quiet_minutes']} min quiet, "
                f"-1 per {used['reaction_times']['scale_in_step']} s",
            )
            for used in policies_used
        ],
    )


def burst_table(outcomes: list[BurstOutcome]) -> str:
    """How each pool handled each burst."""
    return table(
        [
            "stack",
            "pool",
            "tasks",
            "scale-out s",
            "+1 worker running s",
            "drained s",
            "back to min s",
            "peak workers",
            "worker-min",
            "ideal",
            "used/ideal",
        ],
        [
            (
                o.stack,
                o.pool,
                o.tasks,
                o.first_scale_out_s,
                o.first_added_worker_running_s,
                o.drained_s,
                o.back_to_min_s,
                o.peak_workers,
                round(o.worker_minutes, 1),
                round(o.ideal_worker_minutes, 1),
                round(o.overhead, 2),
            )
            for o in outcomes
        ],
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argument_parser(__doc__)
    parser.add_argument("--stack", action="append", choices=STACKS, help="default: dev and prod")
    parser.add_argument(
        "--tasks", action="append", type=int, help=f"burst size; default: {', '.join(map(str, BURST_SIZES))}"
    )
    args = parser.parse_args(argv)
    facts = machine_facts()
    print(
        f"Scaling reaction model | bursts of {BURST_TASK_SECONDS}-second tasks at t={BURST_AT_SECOND} s | "
        f"Fargate start-up {FARGATE_STARTUP_SECONDS} s (assumed) | {describe_machine(facts)}"
    )
    policies_used: list[dict[str, Any]] = []
    outcomes: list[BurstOutcome] = []
    stacks = args.stack or STACKS
    cases: list[tuple[str, str, dict[str, object]]] = [(stack, stack, {}) for stack in stacks]
    cases += [(name, stack, overrides) for name, (stack, overrides) in VARIANTS.items() if stack in stacks]
    for name, stack, overrides in cases:
        config = stack_config(stack, overrides)
        for pool in config.workers.pools:
            params = pool.scaling
            reaction = reaction_times(params, policy_set(params))
            policies_used.append(
                {
                    "stack": name,
                    "config_overrides": overrides,
                    "pool": pool.name,
                    "parameters": asdict(params),
                    "reaction_times": asdict(reaction),
                }
            )
            outcomes += [run_burst(name, pool.name, params, tasks) for tasks in args.tasks or BURST_SIZES]

    print()
    print(policy_table(policies_used))
    print()
    print(burst_table(outcomes))
    results = {
        "machine": facts,
        "burst": {"task_seconds": BURST_TASK_SECONDS, "at_second": BURST_AT_SECOND},
        "fargate_startup_seconds_assumed": FARGATE_STARTUP_SECONDS,
        "policies": policies_used,
        "bursts": [{**asdict(o), "used_over_ideal": round(o.overhead, 3)} for o in outcomes],
    }
    write_results("scaling", results, args.results_dir)
    return results


if __name__ == "__main__":
    main()
