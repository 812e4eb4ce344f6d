"""Every module of the packages imports, with the dependency versions installed.

Cheap and in-process, and the part of the code base the unit tests do not otherwise load
(localmesh's xDS server, its API server, the addons): this is what tells the
lowest-versions job (`./dev lowest`) that a floor in pyproject is too low for an API the
code uses at import time (a generated protobuf module, a missing symbol).
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

from tests.support import REPO

PACKAGES = ("meshgate", "localmesh", "workloads", "fixtures", "steps")


def _modules() -> list[str]:
    out = []
    for package in PACKAGES:
        out.append(package)
        path = [str(REPO / package)]
        out += [m.name for m in pkgutil.walk_packages(path, prefix=f"{package}.")
                if not m.name.endswith(".__main__")]  # a program: it runs when imported
    return out


@pytest.mark.parametrize("module", _modules())
def test_module_imports(module: str) -> None:
    importlib.import_module(module)
