"""`docker run` arguments that start a container the way its ECS container definition says.

What is translated, as the ECS agent hands it to Docker: command, working directory, user,
read-only root file system, init process, tmpfs mounts, mount points of the task's volumes (empty
volumes, shared by the containers of one task), environment, secrets (here given as local values),
stop timeout and health check. What has no local meaning is left out: the image (the caller names
the local build), port mappings and awsvpc networking (the caller picks a network), log
configuration (`docker logs` reads the default driver) and the restart policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Tmpfs:
    container_path: str
    size_mib: int
    mount_options: tuple[str, ...]


@dataclass(frozen=True)
class MountPoint:
    source_volume: str
    container_path: str
    read_only: bool


def parse_tmpfs(definition: Mapping[str, Any]) -> tuple[Tmpfs, ...]:
    """The `linuxParameters.tmpfs` mounts of an ECS container definition."""
    return tuple(
        Tmpfs(item["containerPath"], int(item["size"]), tuple(item.get("mountOptions") or ()))
        for item in (definition.get("linuxParameters") or {}).get("tmpfs") or ()
    )


def parse_mount_points(definition: Mapping[str, Any]) -> tuple[MountPoint, ...]:
    return tuple(
        MountPoint(item["sourceVolume"], item["containerPath"], bool(item.get("readOnly", False)))
        for item in definition.get("mountPoints") or ()
    )


def parse_task_volumes(volumes: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """Names of a task definition's empty volumes (no host path, EFS or Docker volume settings): the
    only kind with a local equivalent."""
    return tuple(volume["name"] for volume in volumes if set(volume) == {"name"})


class ContainerDefinition(Protocol):
    """What the translation reads of a parsed ECS container definition."""

    @property
    def command(self) -> tuple[str, ...]: ...
    @property
    def working_directory(self) -> str: ...
    @property
    def environment(self) -> Mapping[str, str]: ...
    @property
    def secret_names(self) -> tuple[str, ...]: ...
    @property
    def user(self) -> str: ...
    @property
    def readonly_root_filesystem(self) -> bool: ...
    @property
    def init_process_enabled(self) -> bool: ...
    @property
    def tmpfs(self) -> tuple[Tmpfs, ...]: ...
    @property
    def mount_points(self) -> tuple[MountPoint, ...]: ...
    @property
    def task_volumes(self) -> tuple[str, ...]: ...
    @property
    def stop_timeout(self) -> int: ...
    @property
    def health_check(self) -> Mapping[str, Any] | None: ...


def docker_run_arguments(
    container: ContainerDefinition,
    *,
    image: str,
    name: str,
    task: str,
    secret_values: Mapping[str, str],
    environment_overrides: Mapping[str, str] | None = None,
    network: str = "host",
) -> list[str]:
    """Everything after `docker run` for `container`, detached, named `name`.

    `task` names the running task: containers given the same `task` share its volumes, as the
    containers of one ECS task do. `secret_values` stand in for Secrets Manager and must cover every
    secret the definition names. `environment_overrides` replace or add plain variables.
    """
    missing = sorted(set(container.secret_names) - set(secret_values))
    if missing:
        raise ValueError(f"no local value for the secrets {missing}")
    environment = {
        **container.environment,
        **{secret: secret_values[secret] for secret in container.secret_names},
        **(environment_overrides or {}),
    }
    arguments = [
        "--detach",
        f"--name={name}",
        f"--network={network}",
        f"--stop-timeout={container.stop_timeout}",
    ]
    if container.working_directory:
        arguments.append(f"--workdir={container.working_directory}")
    if container.user:
        arguments.append(f"--user={container.user}")
    if container.readonly_root_filesystem:
        arguments.append("--read-only")
    if container.init_process_enabled:
        arguments.append("--init")
    arguments += [tmpfs_argument(mount) for mount in container.tmpfs]
    arguments += [volume_argument(mount, container.task_volumes, task) for mount in container.mount_points]
    arguments += health_check_arguments(container.health_check)
    arguments += [f"--env={variable}={value}" for variable, value in sorted(environment.items())]
    return [*arguments, image, *container.command]


def tmpfs_argument(mount: Tmpfs) -> str:
    # The ECS agent passes the mount options and the size to Docker's tmpfs option string.
    options = [*mount.mount_options, f"size={mount.size_mib}m"]
    return f"--tmpfs={mount.container_path}:{','.join(options)}"


def volume_argument(mount: MountPoint, task_volumes: tuple[str, ...], task: str) -> str:
    if mount.source_volume not in task_volumes:
        raise ValueError(
            f"mount point {mount.container_path}: {mount.source_volume!r} is not an empty volume of the task"
        )
    readonly = ",readonly" if mount.read_only else ""
    return f"--mount=type=volume,source={task}-{mount.source_volume},target={mount.container_path}{readonly}"


def health_check_arguments(health_check: Mapping[str, Any] | None) -> list[str]:
    """ECS `healthCheck` (CMD-SHELL form, seconds) as Docker's --health-* options."""
    if not health_check:
        return []
    kind, *command = health_check["command"]
    if kind != "CMD-SHELL" or len(command) != 1:
        raise ValueError(f"only a CMD-SHELL health check with one command is supported, got {health_check}")
    # ECS defaults for what the definition leaves out.
    return [
        f"--health-cmd={command[0]}",
        f"--health-interval={health_check.get('interval', 30)}s",
        f"--health-timeout={health_check.get('timeout', 5)}s",
        f"--health-retries={health_check.get('retries', 3)}",
        f"--health-start-period={health_check.get('startPeriod', 0)}s",
    ]
