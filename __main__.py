"""The entry point the Pulumi engine runs: the program itself is `infra/__main__.py`.

Pulumi.yaml leaves `main` at the project root on purpose. The engine starts the program, and the
separate process of every dynamic provider (the release), with the program directory as their
working directory and resolves the relative `virtualenv: .venv` against it; with the program in
`infra/` the provider process would look for `infra/.venv` and fail (pulumi/pulumi#7061).
"""

import runpy

runpy.run_module("infra", run_name="__main__", alter_sys=True)
