"""``--target k3s``: k3s in a container through testcontainers (see docs/targets.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from meshgate.targets import Provided, TargetUnavailable


@dataclass
class K3sTarget:
    state_dir: Path
    name: str = "k3s"

    def start(self) -> Provided:
        try:
            import docker

            docker.from_env().ping()
        except Exception as exc:
            raise TargetUnavailable(f"--target k3s needs a Docker engine for testcontainers' "
                                    f"K3SContainer, and none answers here ({exc.__class__.__name__}"
                                    "); use --target local or --target kubeconfig") from exc
        raise TargetUnavailable("--target k3s is not implemented yet in this version")

    def stop(self) -> None:
        pass
