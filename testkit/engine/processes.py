"""How the Pulumi engine starts this program and its dynamic-provider process.

A model of what the engine does that mocks do not show (sources in pulumi/pulumi, see
`../shared/research/real-engine.md`):

- The Python language host resolves `runtime.options.virtualenv` against the project root
  (`sdk/python/toolchain/pip.go` `resolveVirtualEnvironmentPath`) and runs the program with the
  program directory (`main`, default: the project root) as its working directory, as
  `runpy.run_path(<entry point>, run_name="__main__")` (`sdk/python/cmd/pulumi-language-python-exec`).
- A Python dynamic provider runs in a separate process, the CLI's `pulumi-resource-pulumi-python`
  script (`sdk/python/dist`), started in the program directory with the raw option in
  `PULUMI_RUNTIME_VIRTUALENV`; the script makes a relative path absolute against `$PWD` and runs
  `<venv>/bin/python -u -m pulumi.dynamic <engine address>`, which prints the port it serves on.
  The provider object is rebuilt there from the `__provider` property stored in the state.

Both are started here in fresh interpreters, with nothing of the test process's import path.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from testkit.program import PROJECT_FILE

PROVIDER_KEY = "__provider"
START_TIMEOUT_SECONDS = 60


class EngineStartError(Exception):
    """The engine would fail here, with (what amounts to) this message."""


@dataclass(frozen=True)
class Project:
    """What the engine reads from Pulumi.yaml to start processes."""

    root: Path
    main: str  # the program directory, relative to the root
    virtualenv: str  # the raw `runtime.options.virtualenv`

    @classmethod
    def load(cls, project_file: Path = PROJECT_FILE) -> Project:
        project = yaml.safe_load(project_file.read_text())
        options = (project.get("runtime") or {}).get("options") or {}
        return cls(project_file.parent, str(project.get("main") or "."), str(options.get("virtualenv") or ""))

    @property
    def program_dir(self) -> Path:
        return (self.root / self.main).resolve()

    def program_python(self) -> Path:
        """The language host's interpreter: the virtualenv resolved against the project root."""
        return _venv_python(self.root, self.virtualenv, "the program")

    def provider_python(self) -> Path:
        """The dynamic provider's interpreter: the same raw option, resolved against the
        provider's working directory, the program directory (pulumi/pulumi#7061)."""
        return _venv_python(self.program_dir, self.virtualenv, "the dynamic provider")


def _venv_python(base: Path, virtualenv: str, who: str) -> Path:
    if not virtualenv:
        raise EngineStartError(f"{who} would run the system python3: set runtime.options.virtualenv")
    venv = Path(virtualenv) if Path(virtualenv).is_absolute() else base / virtualenv
    python = venv / "bin" / "python"
    if not python.is_file():
        raise EngineStartError(
            f"The 'virtualenv' option in Pulumi.yaml is set to {str(venv)!r}, but it doesn't exist "
            f"(resolved for {who} against {base})"
        )
    return python


def clean_environment(**extra: str) -> dict[str, str]:
    """The environment of a process the engine starts: the user's, without this test's import path."""
    kept = {key: value for key, value in os.environ.items() if key not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return {**kept, **extra}


def run_program_fresh(project: Project, stack: str, overrides: Mapping[str, object] | None = None) -> int:
    """Runs the program for `stack` under mocks in a new interpreter, as the language host would:
    the resolved virtualenv, the program directory as working directory. Returns the number of
    resources it declared; raises EngineStartError with the program's output if it fails."""
    driver = (
        "import json, sys\n"
        "from testkit.program import run_program\n"
        "run = run_program(sys.argv[1], json.loads(sys.argv[2]))\n"
        "print(len(run.resources))\n"
    )
    result = subprocess.run(
        [str(project.program_python()), "-c", driver, stack, json.dumps(dict(overrides or {}))],
        cwd=project.program_dir,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise EngineStartError(f"the program failed in a fresh interpreter:\n{result.stderr[-4000:]}")
    return int(result.stdout.split()[-1])


class DynamicProviderProcess:
    """`pulumi-resource-pulumi-python`, as the engine starts it for a dynamic resource."""

    def __init__(self, project: Project) -> None:
        self._project = project
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None
        self.stub: provider_pb2_grpc.ResourceProviderStub | None = None

    def __enter__(self) -> DynamicProviderProcess:
        python = self._project.provider_python()
        environment = clean_environment(
            PULUMI_RUNTIME_VIRTUALENV=self._project.virtualenv,
            PULUMI_RUNTIME_TOOLCHAIN="pip",
            PULUMI_PROJECT=str(yaml.safe_load(PROJECT_FILE.read_text())["name"]),
        )
        self._process = subprocess.Popen(
            [str(python), "-u", "-m", "pulumi.dynamic", "127.0.0.1:0"],
            cwd=self._project.program_dir,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self._process.stdout is not None
        port = self._process.stdout.readline().decode().strip()
        if not port.isdigit():
            self.__exit__(None, None, None)
            raise EngineStartError(f"the dynamic provider did not start (printed {port!r})")
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(self._channel).result(timeout=START_TIMEOUT_SECONDS)
        self.stub = provider_pb2_grpc.ResourceProviderStub(self._channel)
        self.stub.Configure(provider_pb2.ConfigureRequest(acceptSecrets=False))
        return self

    def __exit__(self, *_: object) -> None:
        if self._channel is not None:
            self._channel.close()
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            for stream in (self._process.stdout, self._process.stderr):
                if stream is not None:
                    stream.close()

    def _stub(self) -> provider_pb2_grpc.ResourceProviderStub:
        assert self.stub is not None, "use DynamicProviderProcess as a context manager"
        return self.stub

    def diff(self, urn: str, resource_id: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> Any:
        request = provider_pb2.DiffRequest(id=resource_id, urn=urn, olds=_struct(olds), news=_struct(news))
        return self._stub().Diff(request, timeout=START_TIMEOUT_SECONDS)

    def update(
        self, urn: str, resource_id: str, olds: Mapping[str, Any], news: Mapping[str, Any]
    ) -> dict[str, Any]:
        """What `pulumi up` sends after a diff with changes; the outputs the state then stores."""
        request = provider_pb2.UpdateRequest(id=resource_id, urn=urn, olds=_struct(olds), news=_struct(news))
        response = self._stub().Update(request, timeout=START_TIMEOUT_SECONDS)
        outputs: dict[str, Any] = rpc.deserialize_properties(response.properties)
        return outputs

    def delete(self, urn: str, resource_id: str, state: Mapping[str, Any]) -> None:
        """What `pulumi destroy` sends: the state, from which the provider object is rebuilt."""
        request = provider_pb2.DeleteRequest(id=resource_id, urn=urn, properties=_struct(state))
        self._stub().Delete(request, timeout=START_TIMEOUT_SECONDS)


def _struct(properties: Mapping[str, Any]) -> Any:
    # A loop of its own: asyncio.run would unset the thread's loop that Pulumi's mocks use later.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(dict(properties), {}))
    finally:
        loop.close()
