"""`python -m infra.ops release-check <stack> [--summary FILE]`: the pull request's release check.

Compares the checked-out code and stack settings with what the stack last released (its `release`
output): tasks the running image registers and this code drops, Beat entries and routes to queues
no pool consumes, and new migrations that django-migration-linter finds backward incompatible
unless marked as the contract step. It writes the operational summary (migrations that will run,
Beat restart, pool changes, how web and the pools are released) as Markdown for the pull request
comment, and exits 1 when the change would be refused. The app's own `manage.py release_state`
reports the code's side; the linter needs the database settings of a reachable PostgreSQL (the
workflow starts one).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from infra import app_contract
from infra.config.reader import StackConfigError
from infra.image.build_context import context_digest
from infra.ops.stack import REPO_ROOT, OpsError, StackNotDeployedError, run_pulumi_json
from infra.outputs import StackOutput
from infra.release.compatibility import (
    Problem,
    ReleaseState,
    ReleaseStateError,
    new_migrations,
    pull_request_problems,
)
from infra.release.record import ReleaseRecord, operations
from infra.release.summary import Change, release_summary
from infra.stack import StackConfig, validate

EXIT_REFUSED = 1
# Runs manage.py in the app directory with a settings module; returns its stdout.
Manage = Callable[[Path, Sequence[str], str], str]


def file_config(stack: str, root: Path = REPO_ROOT) -> dict[str, object]:
    """The stack's settings as the files give them: Pulumi.yaml defaults, then Pulumi.<stack>.yaml.
    Encrypted values are left out (their defaults stand in: the check needs no secret)."""
    project = yaml.safe_load((root / "Pulumi.yaml").read_text())
    prefix = f"{project['name']}:"
    raw: dict[str, object] = {
        key: spec["default"]
        for key, spec in (project.get("config") or {}).items()
        if ":" not in key and isinstance(spec, dict) and "default" in spec
    }
    stack_file = root / f"Pulumi.{stack.rsplit('/', 1)[-1]}.yaml"
    settings = (yaml.safe_load(stack_file.read_text()) or {}).get("config", {}) if stack_file.exists() else {}
    for key, value in settings.items():
        if key.startswith(prefix) and not (isinstance(value, dict) and "secure" in value):
            raw[key[len(prefix) :]] = value
    return raw


def stack_config(stack: str, root: Path = REPO_ROOT) -> StackConfig:
    try:
        return validate(file_config(stack, root), root)
    except StackConfigError as error:
        raise OpsError(f"the settings of stack {stack!r} are invalid:\n{error}") from None


def read_record(stack: str, reader: Callable[..., dict[str, Any]] = run_pulumi_json) -> ReleaseRecord | None:
    """What the stack last released, or None (never deployed, or deployed by an older program)."""
    try:
        outputs = reader(stack, "stack", "output", "--show-secrets=false")
    except StackNotDeployedError:
        return None
    release = outputs.get(StackOutput.RELEASE)
    return ReleaseRecord.from_output(release) if isinstance(release, dict) else None


def run_manage(app_dir: Path, arguments: Sequence[str], settings_module: str) -> str:
    """`python manage.py ...` with this interpreter, in the app directory; its stdout. The
    environment's DJANGO_SETTINGS_MODULE wins over the stack's (CI may point it at test settings)."""
    env = {"DJANGO_SETTINGS_MODULE": settings_module, **os.environ}
    done = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=app_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise OpsError(
            f"`manage.py {' '.join(arguments)}` failed in {app_dir}:\n{done.stderr.strip()[-2000:]}"
        )
    return done.stdout


def code_state(app_dir: Path, settings: str, previous: ReleaseState | None, manage: Manage) -> ReleaseState:
    """The code's release state, with the linter's findings on the migrations new since `previous`."""
    command = app_contract.release_state_command()[2:]  # after `python manage.py`
    try:
        state = ReleaseState.from_lines(manage(app_dir, command, settings).splitlines())
        added = new_migrations(previous, state) if previous is not None else []
        if added:
            linted = manage(app_dir, [*command, "--lint", *added], settings)
            state = ReleaseState.from_lines(linted.splitlines())
    except ReleaseStateError as error:
        raise OpsError(f"the app in {app_dir} reported no usable release state: {error}") from None
    return state


def check(
    stack: str, record: ReleaseRecord | None, manage: Manage = run_manage, root: Path = REPO_ROOT
) -> tuple[list[Problem], str]:
    """The problems of the checked-out change for `stack`, and its Markdown summary."""
    config = stack_config(stack, root)
    image = config.image
    previous = record.state if record else None
    state = code_state(root / image.context, config.app.django_settings_module, previous, manage)
    problems = pull_request_problems(previous, state, config.workers.consumed_queues)
    tag = (
        context_digest(root / image.context, root / image.dockerfile, image.platform)
        if image.builds
        else None
    )
    source = "build" if image.builds else (f"stack {image.from_stack}" if image.from_stack else "imageRef")
    ops = operations(config.workers, config.beat, config.web.deployment)
    change = Change(state, tag, source, ops["pools"], ops["beat"], ops["web"])
    return problems, release_summary(stack, record, change, problems)


def run_release_check(stack: str, summary_file: Path | None) -> int:
    problems, summary = check(stack, read_record(stack))
    print(summary)
    if summary_file is not None:
        summary_file.write_text(summary)
    return EXIT_REFUSED if problems else 0
