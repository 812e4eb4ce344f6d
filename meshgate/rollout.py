"""Deploying the workloads and waiting until they are Ready with their sidecars."""

from __future__ import annotations

from dataclasses import dataclass

from meshgate import manifests, sidecars
from meshgate.cluster import Cluster
from meshgate.waiting import Convergence, wait_until


@dataclass(frozen=True)
class Deployed:
    name: str
    namespace: str
    pods: tuple[str, ...]


def deploy(cluster: Cluster, namespace: str, names: list[str], *, timeout: float,
           log: Convergence | None = None) -> dict[str, Deployed]:
    """Apply each workload's manifest, then wait for every Deployment's rollout."""
    loaded = [manifests.workload_manifest(n) for n in names]
    for m in loaded:
        manifests.apply(cluster, m, namespace)
    out = {}
    for name in names:
        out[name] = wait_until(
            lambda n=name: _ready(cluster, namespace, n),
            area="deploy", what=f"{name} is Ready with a sidecar", timeout=timeout, log=log,
            describe=lambda v: v if isinstance(v, str) else "ready")
        if isinstance(out[name], str):
            raise AssertionError(out[name])
    return out


def _ready(cluster: Cluster, namespace: str, name: str) -> Deployed | None:
    d = cluster.get("apps/v1", "Deployment", name, namespace)
    if d is None or not manifests.deployment_ready(d):
        return None
    pods = manifests.pods_of(cluster, namespace, name)
    if not pods or not all(sidecars.is_injected(p) and sidecars.has_proxy_container(p)
                           for p in pods):
        return None
    return Deployed(name, namespace, tuple(sorted(p["metadata"]["name"] for p in pods)))
