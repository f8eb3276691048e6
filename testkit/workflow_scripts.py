"""The GitHub workflows' Python scripts (.github/scripts, not a package), imported by name as the
runner imports them (one may import another), for the tests and for what shares their settings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[1] / ".github" / "scripts"


def workflow_script(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    # `python .github/scripts/x.py` puts the scripts' folder on the path, so a script imports
    # another by name; last here, so no script shadows an installed module.
    if str(SCRIPTS) not in sys.path:
        sys.path.append(str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec and spec.loader, name
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
