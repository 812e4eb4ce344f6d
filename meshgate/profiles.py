"""Which scenarios a run may run, decided before anything touches a cluster.

Two profiles:

- ``gate``: for shared clusters and PR gates. Skips the ``@nightly`` and ``@chaos``
  scenarios; the run writes only inside its own namespaces.
- ``nightly``: everything, the faults included.

A gate must never disrupt a cluster it did not create unless asked. So the default
depends on who owns the cluster: where the run creates it (``--target local``, ``kind``,
``k3s``) the default is ``nightly``; where it is handed an existing cluster
(``--target kubeconfig``, or a reused localmesh or kind cluster) the default is ``gate``.
An explicit ``--profile`` (or ``MESHGATE_PROFILE``) always wins.

Cluster-wide faults — the ``@cluster-fault`` scenarios, which delete pods of the control
plane and the telemetry addon that every namespace depends on — additionally need
``--allow-cluster-faults`` on a cluster the run did not create, even under ``nightly``.
Faults inside the run's own namespaces (killing its own workloads' processes) need no
opt-in: they disrupt nothing but the run itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PROFILES = ("gate", "nightly")
# Tags (pytest-bdd turns them into markers) that the gate profile deselects.
GATE_EXCLUDES = ("nightly", "chaos")
CLUSTER_FAULT_TAG = "cluster-fault"
ALLOW_OPTION = "--allow-cluster-faults"
ENV_PROFILE = "MESHGATE_PROFILE"


class ProfileError(ValueError):
    """A profile named on the command line or in the environment does not exist."""


@dataclass(frozen=True)
class Profile:
    """The profile in force, and why: the run's header says both."""

    name: str
    reason: str
    owns_cluster: bool
    cluster_faults: bool

    def excludes(self, tags: set[str]) -> bool:
        """Whether a scenario with these tags is deselected by this profile."""
        return self.name == "gate" and bool(tags & set(GATE_EXCLUDES))

    def refuses(self, tags: set[str]) -> str | None:
        """Why a selected scenario must not run here (None when it may)."""
        if CLUSTER_FAULT_TAG in tags and not self.cluster_faults:
            return ("this run did not create the cluster, and this scenario deletes pods "
                    "that every namespace depends on (istiod, Prometheus); pass "
                    f"{ALLOW_OPTION} to run cluster-wide faults on it")
        return None

    def header(self) -> str:
        line = f"profile {self.name} ({self.reason})"
        if self.name == "nightly" and not self.cluster_faults:
            line += f"; cluster-wide faults are skipped without {ALLOW_OPTION}"
        return line


def choose(explicit: str | None, environ: Mapping[str, str], *, target: str,
           owns_cluster: bool, allow_cluster_faults: bool = False) -> Profile:
    """The profile for a run: the explicit one, else the one safe for who owns the cluster."""
    named = explicit or environ.get(ENV_PROFILE) or None
    if named is not None and named not in PROFILES:
        source = "--profile" if explicit else ENV_PROFILE
        raise ProfileError(f"{source}={named!r} is not a profile: choose one of "
                           f"{', '.join(PROFILES)}")
    faults = owns_cluster or allow_cluster_faults
    if named is not None:
        source = "--profile" if explicit else ENV_PROFILE
        return Profile(named, f"from {source}", owns_cluster, faults)
    if owns_cluster:
        return Profile("nightly", f"the default where the run creates the cluster "
                                  f"(--target {target})", True, faults)
    return Profile("gate", f"the default on a cluster this run did not create (--target "
                           f"{target}): it writes only in its own namespaces; pass "
                           "--profile nightly to run everything", False, faults)
