"""``--target kind``: a kind cluster with Istio (see docs/targets.md).

Needs Docker, kind and istioctl on the PATH; where they are absent the target is
unavailable and the suite says so instead of failing.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from meshgate.targets import Provided, TargetUnavailable


def missing_tools() -> list[str]:
    return [t for t in ("docker", "kind", "istioctl") if shutil.which(t) is None]


@dataclass
class KindTarget:
    state_dir: Path
    name: str = "kind"

    def start(self) -> Provided:
        missing = missing_tools()
        if missing:
            raise TargetUnavailable(f"--target kind needs {', '.join(missing)} on the PATH "
                                    "(and a running Docker engine); install them or use "
                                    "--target local")
        raise TargetUnavailable("--target kind is not implemented yet in this version")

    def stop(self) -> None:
        pass
