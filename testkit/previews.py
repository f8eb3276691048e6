"""A pull request preview on the example preview base, as tests and bench/ run it: the base from
Pulumi.preview-base.yaml (with the domain its owner sets), then pull request 42's thin preview
reading the base's recorded outputs through its StackReference."""

from __future__ import annotations

from testkit.program import ProgramRun, run_program

PREVIEW_BASE_STACK = "acme/djcelery/preview-base"
PREVIEW_NUMBER = 42
# The preview's configuration as the PR stack workflow writes it (.github/scripts/pr_stacks.py
# stack_config; docs/delivery.md#previews): what runs in it is the program's choice.
PREVIEW_CONFIG: dict[str, object] = {"ephemeral": True, "previewOf": PREVIEW_BASE_STACK}


def run_preview_base(**overrides: object) -> ProgramRun:
    """The example base (Pulumi.preview-base.yaml), with `overrides` on top of its stack file."""
    return run_program("preview-base", overrides or None)


def run_preview(base: ProgramRun, **overrides: object) -> ProgramRun:
    """Pull request 42's thin preview on `base` (a run of the preview base)."""
    return run_program(
        f"pr-{PREVIEW_NUMBER}", {**PREVIEW_CONFIG, **overrides}, stacks={PREVIEW_BASE_STACK: base}
    )
