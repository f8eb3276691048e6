"""`python -m infra.ops release-check`: the pull request's check and its summary, with the real app.

The change's side is the app's own `manage.py release_state` (a real process against a real
PostgreSQL, on the checked-out migration graph or a copy with migrations added); the stack's side
is a release record as `pulumi stack output release` prints it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from infra.ops import cli as ops
from infra.ops import release_check
from infra.ops.release_check import check, file_config, read_record
from infra.ops.stack import StackNotDeployedError
from infra.release.record import ReleaseRecord, operations
from infra.release.summary import deployment_text, pools_table, worker_canaries_line
from infra.stack import validate
from testkit.program import bare_config

ROOT = Path(__file__).resolve().parents[3]
EMAIL = "signups.tasks.send_welcome_email"
HEARTBEAT = "signups.tasks.record_heartbeat"
REQUEUE = "signups.tasks.requeue_stale_signups"
DEV_POOL = {"queues": ["default", "email"], "minCount": 0, "maxCount": 3}
BEAT = {"enabled": True, "spot": True, "cpu": 256, "memory": 512}


@pytest.fixture(autouse=True)
def app_environment(monkeypatch: pytest.MonkeyPatch, database_url: str, redis_url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DJANGO_SECRET_KEY", "release-check-test")
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)


def record(**changes: Any) -> ReleaseRecord:
    """What dev released: this repository's app, built with tag `t-old`."""
    output: dict[str, Any] = {
        "image": {"ref": "r@sha256:" + "0" * 64, "source": "build", "tag": "t-old"},
        "tasks": [EMAIL, HEARTBEAT, REQUEUE],
        "routes": {EMAIL: "email", HEARTBEAT: "default", REQUEUE: "default"},
        "beatSchedule": {},
        "migrations": ["signups.0001_initial"],
        "pools": {"default": DEV_POOL},
        "beat": BEAT,
        **changes,
    }
    return ReleaseRecord.from_output(output)


def test_the_stack_files_give_the_settings_without_secrets(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path)
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n  djcelery:webDesiredCount: 3\n  djcelery:emailUrl:\n    secure: AAABAMxyz\n"
    )
    raw = file_config("dev", tmp_path)
    assert raw["webDesiredCount"] == 3 and raw["emailUrl"] == ""
    assert file_config("prod")["imageFromStack"] == "organization/djcelery/dev"


def test_a_change_that_drops_nothing_passes_and_summarizes(capsys: pytest.CaptureFixture[str]) -> None:
    all_migrations = release_check.code_state(
        ROOT / "app", "config.settings.production", None, release_check.run_manage
    ).migrations
    problems, summary = check("dev", record(migrations=list(all_migrations)))
    assert problems == []
    assert "### Release check for `dev`: passed" in summary
    assert "| Migrations that will run | none |" in summary
    assert "restarts (new image)" in summary


def test_the_summary_names_how_web_and_the_pools_are_released() -> None:
    """Prod's release notes: the canary's share and window, the bake, the alarms that roll it back,
    and each pool's worker canary; dev rolls."""
    prod = validate(bare_config("prod"))
    ops_of_prod = operations(prod.workers, prod.beat, prod.web.deployment)
    web = deployment_text(ops_of_prod["web"])
    assert web.startswith("canary: the new revision starts beside the old one and gets 10 % of the traffic")
    assert "for 5 min, then all of it; both are kept 5 min (bake)" in web
    assert "more than 5 % 5xx or its p99 exceeds 2000 ms for 2 minutes in a row" in web
    assert worker_canaries_line(ops_of_prod["pools"]).startswith("default 5 min, email 5 min: one task")
    assert "more than 20 % of its task runs fail" in worker_canaries_line(ops_of_prod["pools"])

    _problems, summary = check("dev", record(web={"deployment": "canary"}))
    assert "| Web release | rolling: tasks replaced in place" in summary and "(was canary)" in summary
    assert "| Worker canaries | off: every pool rolls to the new image at once |" in summary


def test_a_dropped_task_is_refused_by_name() -> None:
    problems, summary = check("dev", record(tasks=[EMAIL, HEARTBEAT, REQUEUE, "signups.tasks.weekly_digest"]))
    assert any("signups.tasks.weekly_digest" in str(problem) for problem in problems)
    assert "refused" in summary and "signups.tasks.weekly_digest" in summary


def test_new_migrations_are_linted_and_listed(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path)
    shutil.copy(ROOT / "Pulumi.dev.yaml", tmp_path)
    shutil.copytree(
        ROOT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__", "staticfiles")
    )
    (tmp_path / "app/signups/migrations/0002_signup_verified.py").write_text(
        "from django.db import migrations, models\n\n\nclass Migration(migrations.Migration):\n"
        '    dependencies = [("signups", "0001_initial")]\n'
        '    operations = [migrations.AddField("signup", "verified", models.BooleanField(null=True))]\n'
    )
    (tmp_path / "app/signups/migrations/0003_drop_attempts.py").write_text(
        "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n"
        '    dependencies = [("signups", "0002_signup_verified")]\n'
        '    operations = [migrations.RemoveField("signup", "attempts")]\n'
    )
    known = release_check.code_state(
        ROOT / "app", "config.settings.production", None, release_check.run_manage
    )

    problems, summary = check("dev", record(migrations=list(known.migrations)), root=tmp_path)

    assert [problem.kind for problem in problems] == ["migrations"]
    assert "signups.0003_drop_attempts is not backward compatible (DROPPING columns" in str(problems[0])
    assert "`signups.0002_signup_verified`, `signups.0003_drop_attempts`" in summary


def test_pool_and_beat_changes_are_spelled_out() -> None:
    before = {
        "default": DEV_POOL,
        "bulk": {"queues": ["bulk"], "minCount": 0, "maxCount": 2},
        "email": {"queues": ["email"], "minCount": 0, "maxCount": 4},
    }
    after = {
        "default": {**DEV_POOL, "minCount": 1, "maxCount": 5},
        "email": {"queues": ["email"], "minCount": 0, "maxCount": 4},
        "fast": {"queues": ["fast"], "minCount": 1, "maxCount": 2},
    }
    table = "\n".join(pools_table(before, after))
    assert "| bulk | bulk | | | **removed** |" in table
    assert "| default | default, email | 0 → 1 | 3 → 5 | no longer scales to zero |" in table
    assert "| email | email | 0 | 4 | — |" in table
    assert "| fast | fast | 1 | 2 | **new pool** |" in table


def test_the_record_is_read_from_the_stack_outputs() -> None:
    def not_deployed(*_args: str) -> dict[str, Any]:
        raise StackNotDeployedError("no stack")

    assert read_record("dev", not_deployed) is None
    assert read_record("dev", lambda *_: {"webUrl": "http://x"}) is None
    read = read_record(
        "dev", lambda *_: {"release": {"image": {"tag": "t"}, "tasks": [EMAIL], "migrations": []}}
    )
    assert (
        read is not None and read.image_tag == "t" and read.state is not None and read.state.tasks == (EMAIL,)
    )


def test_the_command_line_exits_1_when_refused_and_writes_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        release_check, "read_record", lambda _stack: record(tasks=[EMAIL, "signups.tasks.gone"])
    )
    summary = tmp_path / "summary.md"
    assert ops.main(["release-check", "dev", "--summary", str(summary)]) == release_check.EXIT_REFUSED
    assert "signups.tasks.gone" in summary.read_text()


def test_the_summary_lists_how_the_beat_schedule_changes_entry_by_entry() -> None:
    """The pull request's code (this app) against a record whose schedule had another sweep period
    and an entry this code no longer schedules."""
    recorded = {
        "requeue-stale-signups": {
            "task": REQUEUE,
            "queue": "default",
            "schedule": "every 120 s",
            "period_seconds": 120.0,
            "policy": {"catch_up": "skip", "overlap": "skip", "deadline_seconds": 120.0},
        },
        "weekly-digest": {
            "task": HEARTBEAT,
            "queue": "default",
            "schedule": "every 604800 s",
            "period_seconds": 604800.0,
        },
    }
    _problems, summary = check("dev", record(beatSchedule=recorded))
    assert "| `record-heartbeat` | **added**:" in summary
    assert "| `weekly-digest` | **removed**:" in summary
    [sweep] = [line for line in summary.splitlines() if line.startswith("| `requeue-stale-signups` |")]
    assert "period 2 min → 30 s" in sweep, sweep
