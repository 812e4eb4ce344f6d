"""What every target is: the cluster it provides and the errors it raises.

Kept apart from :mod:`meshgate.targets` (which chooses a target by name and imports each
lazily) so that the targets and the installer they share import these names without
importing the package that imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class TargetError(RuntimeError):
    """The target cannot provide a cluster; the message says why and what to do."""


class TargetUnavailable(TargetError):
    """The target cannot exist on this machine (no Docker, no kind); tests skip on it."""


@dataclass
class Provided:
    """The cluster a started target hands the suite: a kubeconfig, and nothing else."""

    kubeconfig: Path
    context: str | None
    description: str


class Target(Protocol):
    name: str

    @property
    def owns_cluster(self) -> bool:
        """Whether this run creates (and so may disrupt) the cluster: known before start.

        A gate must never disrupt a cluster it did not create unless asked to; the run's
        default profile and its cluster-wide faults are decided from this.
        """
        ...

    def start(self) -> Provided: ...

    def stop(self) -> None: ...
