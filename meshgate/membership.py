"""Mesh membership on OpenShift Service Mesh 2.x.

OSSM 2.x injects only into namespaces listed in the ``ServiceMeshMemberRoll`` named
``default`` in the control plane's namespace (maistra/maistra-test-tool smmr.yaml;
istio-mapping.md §4.4). Where that API is served, the suite adds its namespace to the roll
when it creates it and removes it when it deletes it; elsewhere this does nothing.
"""

from __future__ import annotations

from meshgate.cluster import Cluster

API = "maistra.io/v1"
KIND = "ServiceMeshMemberRoll"


def member_roll(cluster: Cluster, control_plane: str = "istio-system") -> dict | None:
    if not cluster.has_api(API, KIND):
        return None
    return cluster.get(API, KIND, "default", control_plane)


def join(cluster: Cluster, namespace: str, control_plane: str = "istio-system") -> bool:
    """Add ``namespace`` to the roll; True when a roll exists (and now lists it)."""
    roll = member_roll(cluster, control_plane)
    if roll is None:
        return False
    members = list((roll.get("spec") or {}).get("members") or [])
    if namespace not in members:
        members.append(namespace)
        cluster.patch_merge(API, KIND, "default", control_plane, {"spec": {"members": members}})
    return True


def leave(cluster: Cluster, namespace: str, control_plane: str = "istio-system") -> bool:
    roll = member_roll(cluster, control_plane)
    if roll is None:
        return False
    members = [m for m in (roll.get("spec") or {}).get("members") or [] if m != namespace]
    cluster.patch_merge(API, KIND, "default", control_plane, {"spec": {"members": members}})
    return True
