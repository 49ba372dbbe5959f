"""`python tests/unit/container/model_side_only.py train|serve ...`: the Pulse image's entry point
(`python -m services.container`) with nothing importable beyond what requirements-model.txt installs
(and what those packages require), as in the image built from Dockerfile.model."""

from __future__ import annotations

import importlib.metadata as metadata
import re
import runpy
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[3]
REQUIREMENTS = ROOT / "requirements-model.txt"


def _name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def installed_by(requirements: Path) -> set[str]:
    """The distributions the requirements file installs: its own and everything they require."""
    todo = [_name(line) for line in requirements.read_text().splitlines() if line.strip() and not line.startswith("#")]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo.extend(_name(r) for r in requires if "extra ==" not in r)
    return seen


class _Blocked:
    """Refuses to import a top-level module that only a distribution outside the image provides."""

    def __init__(self, modules: set[str]) -> None:
        self.modules = modules

    def find_spec(self, name: str, path: object = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if name.split(".")[0] in self.modules:
            raise ImportError(f"{name} is not installed in the model image (requirements-model.txt)")
        return None


def main() -> None:
    image = installed_by(REQUIREMENTS)
    blocked = {
        module
        for module, dists in metadata.packages_distributions().items()
        if not any(_name(d) in image for d in dists) and module not in sys.stdlib_module_names
    }
    sys.meta_path.insert(0, _Blocked(blocked))
    sys.path.insert(0, str(ROOT))
    sys.argv = ["services.container", *sys.argv[1:]]
    runpy.run_module("services.container", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
