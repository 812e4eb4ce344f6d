"""Targets: where the suite's cluster comes from.

A target yields a kubeconfig (and context); after that the suite sees only the cluster.
``local`` boots localmesh (the only module allowed to import it), ``kubeconfig`` uses an
existing cluster, ``kind`` and ``k3s`` create one. Unknown names are refused with the
list of known ones.
"""

from __future__ import annotations

from pathlib import Path

from meshgate.targets.base import Provided, Target, TargetError, TargetUnavailable

__all__ = ["TARGETS", "Provided", "Target", "TargetError", "TargetUnavailable", "make"]

TARGETS = ("local", "kubeconfig", "kind", "k3s")


def make(name: str, *, kubeconfig: str | None, context: str | None, state_dir: Path,
         data_plane: str = "auto") -> Target:
    """The target ``name``; a cluster the run creates is created able to hold the data
    plane the run asks for (``--data-plane``: an ambient localmesh for ambient, waypoint
    or mixed)."""
    if name == "local":
        from meshgate.targets.local import LocalTarget

        mesh = "ambient" if data_plane in ("ambient", "waypoint", "mixed") else "sidecar"
        return LocalTarget(state_dir=state_dir, kubeconfig=kubeconfig,
                           shape={"mesh": mesh} if mesh != "sidecar" else {})
    if name == "kubeconfig":
        from meshgate.targets.kubeconfig import KubeconfigTarget

        return KubeconfigTarget(kubeconfig=kubeconfig, context=context)
    if name == "kind":
        from meshgate.targets.kind import KindTarget

        return KindTarget(state_dir=state_dir)
    if name == "k3s":
        from meshgate.targets.k3s import K3sTarget

        return K3sTarget(state_dir=state_dir)
    close = [t for t in TARGETS if t[0] == name[:1]]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise TargetError(f"unknown target {name!r}{hint}: choose one of {', '.join(TARGETS)}")
