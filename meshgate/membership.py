"""Mesh membership on OpenShift Service Mesh 2.x.

OSSM 2.x injects only into namespaces listed in the ``ServiceMeshMemberRoll`` named
``default`` in the control plane's namespace (maistra/maistra-test-tool smmr.yaml).
Where that API is served, the suite adds its namespace to the roll when it creates it and
removes it when it deletes it; elsewhere this does nothing.
"""

from __future__ import annotations

from meshgate.cluster import Cluster
from meshgate.mesh import control_plane_namespace

API = "maistra.io/v1"
KIND = "ServiceMeshMemberRoll"


def _find(cluster: Cluster, control_plane: str | None) -> tuple[dict, str] | None:
    """The roll and its namespace (``control_plane``, else the discovered one), or None."""
    if not cluster.has_api(API, KIND):
        return None
    namespace = control_plane or control_plane_namespace(cluster)
    roll = cluster.get(API, KIND, "default", namespace)
    return (roll, namespace) if roll is not None else None


def member_roll(cluster: Cluster, control_plane: str | None = None) -> dict | None:
    found = _find(cluster, control_plane)
    return found[0] if found is not None else None


def join(cluster: Cluster, namespace: str, control_plane: str | None = None) -> bool:
    """Add ``namespace`` to the roll; True when a roll exists (and now lists it)."""
    found = _find(cluster, control_plane)
    if found is None:
        return False
    roll, where = found
    members = list((roll.get("spec") or {}).get("members") or [])
    if namespace not in members:
        members.append(namespace)
        cluster.patch_merge(API, KIND, "default", where, {"spec": {"members": members}})
    return True


def leave(cluster: Cluster, namespace: str, control_plane: str | None = None) -> bool:
    found = _find(cluster, control_plane)
    if found is None:
        return False
    roll, where = found
    members = [m for m in (roll.get("spec") or {}).get("members") or [] if m != namespace]
    cluster.patch_merge(API, KIND, "default", where, {"spec": {"members": members}})
    return True
