"""Mesh membership on OpenShift Service Mesh 2.x, the least-privilege way.

OSSM 2.x injects only into member namespaces of a control plane. A namespace joins by
holding a ``maistra.io/v1`` ServiceMeshMember named ``default`` whose ``controlPlaneRef``
names the ServiceMeshControlPlane (OSSM docs, "Adding projects to the mesh using the
ServiceMeshMember resource"). That is a write in the suite's own namespace, not in the
shared ServiceMeshMemberRoll of the control plane's namespace, so the suite never edits
other teams' membership. Creating it needs the ``mesh-user`` ClusterRole bound in the
control plane's namespace (``oc policy add-role-to-user mesh-user <user> -n
istio-system``), which the operator checks; without it the API server answers 403.

Joined means the operator has labelled the namespace ``maistra.io/member-of: <control
plane namespace>``: the suite waits for that label (bounded) before it deploys, since pods
created earlier are not injected. Leaving is deleting the member (before the namespace).
"""

from __future__ import annotations

import time

from meshgate.cluster import Cluster, ClusterError

API = "maistra.io/v1"
KIND = "ServiceMeshMember"
ROLL_KIND = "ServiceMeshMemberRoll"
NAME = "default"
MEMBER_OF = "maistra.io/member-of"


class MembershipError(ClusterError):
    """The namespace could not join the mesh; the message names the object and the fix."""


def member(control_plane: str, smcp: str) -> dict:
    """The ServiceMeshMember that makes its namespace a member of ``smcp``."""
    return {"apiVersion": API, "kind": KIND,
            "metadata": {"name": NAME, "labels": {"app.kubernetes.io/managed-by": "meshgate"}},
            "spec": {"controlPlaneRef": {"name": smcp, "namespace": control_plane}}}


def forbidden_message(namespace: str, control_plane: str, detail: str) -> str:
    return (f"cannot join {namespace} to OpenShift Service Mesh: creating ServiceMeshMember "
            f"{namespace}/{NAME} was forbidden ({detail}). Bind the mesh-user role of the "
            f"control plane to the suite's identity: `oc policy add-role-to-user mesh-user "
            f"<user> -n {control_plane} --role-namespace {control_plane}` (OSSM docs, "
            "\"Creating the Red Hat OpenShift Service Mesh members\"), and let it create "
            "servicemeshmembers (deploy/rbac.yaml)")


def member_of(cluster: Cluster, namespace: str) -> str | None:
    ns = cluster.get("v1", "Namespace", namespace, None) or {}
    return ((ns.get("metadata") or {}).get("labels") or {}).get(MEMBER_OF)


def join(cluster: Cluster, namespace: str, control_plane: str, smcp: str, *,
         timeout: float = 60.0) -> None:
    """Create the namespace's ServiceMeshMember and wait until the operator has labelled
    the namespace a member of ``control_plane``; a refusal or a timeout raises
    :class:`MembershipError` saying what to do."""
    try:
        cluster.apply(member(control_plane, smcp), namespace)
    except ClusterError as exc:
        if exc.status == 403:
            raise MembershipError(forbidden_message(namespace, control_plane, str(exc)),
                                  403) from exc
        raise MembershipError(f"cannot create ServiceMeshMember {namespace}/{NAME}: {exc}",
                              exc.status) from exc
    deadline = time.monotonic() + timeout
    delay = 0.05
    while member_of(cluster, namespace) != control_plane:
        if time.monotonic() >= deadline:
            found = cluster.get(API, KIND, NAME, namespace) or {}
            conditions = [f"{c.get('type')}={c.get('status')} ({c.get('message', '')})"
                          for c in (found.get("status") or {}).get("conditions") or []]
            raise MembershipError(
                f"namespace {namespace} was not labelled {MEMBER_OF}={control_plane} within "
                f"{timeout:g}s of creating ServiceMeshMember {namespace}/{NAME}; its "
                f"conditions: {', '.join(conditions) or 'none'}. Is the ServiceMeshControlPlane "
                f"{control_plane}/{smcp} Ready and its member roll {control_plane}/default "
                "there? (`oc get smcp,smmr -n " + control_plane + "`)")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def leave(cluster: Cluster, namespace: str) -> bool:
    """Delete the namespace's ServiceMeshMember; False when there was none."""
    if not cluster.has_api(API, KIND):
        return False
    try:
        return cluster.delete(API, KIND, NAME, namespace)
    except ClusterError:
        return False  # the namespace is being deleted with it


def member_roll(cluster: Cluster, control_plane: str) -> dict | None:
    """The control plane's member roll (read only: the suite does not edit it)."""
    if not cluster.has_api(API, ROLL_KIND):
        return None
    try:
        return cluster.get(API, ROLL_KIND, NAME, control_plane)
    except ClusterError:
        return None
