"""Scenario namespaces: traceable names, an expiry label, and the sweeper for leftovers.

Each xdist worker (or the run, without xdist) gets its own namespace named
``mg-<run id>-<worker>-<hash>`` (``mg-12051430ab12-gw0-1f3a``; the worker is ``main``
without xdist), where the scenarios of that worker run; the labels record the run and
when the namespace may be swept
(``meshgate.io/expires`` = a Unix time), so ``meshgate sweep`` can remove leftovers of
interrupted runs on a shared cluster without touching anything else.

Least privilege (deploy/rbac.yaml): a namespace created during the run cannot have been
granted anything beforehand, so right after creating it the suite binds the ClusterRole
``meshgate-scenario`` to its own identity there (a RoleBinding ``meshgate-scenario``). It
finds that identity with a SelfSubjectReview (``kubectl auth whoami``). For an identity
that may already do everything (a cluster admin) the binding is harmless; where the API
server cannot say who the suite is, or the identity may not create the binding, the
suite warns and carries on with the permissions it has.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import warnings

from meshgate import membership, openshift_route
from meshgate.cluster import Cluster, ClusterError
from meshgate.mesh import DEFAULT_CONTROL_PLANE, MeshInfo
from meshgate.platform import injection_labels

RUN_LABEL = "meshgate.io/run"
EXPIRES_LABEL = "meshgate.io/expires"
OWNER_LABEL = "app.kubernetes.io/managed-by"
DEFAULT_TTL = 3600
SCENARIO_ROLE = "meshgate-scenario"  # the ClusterRole of deploy/rbac.yaml
RBAC_GROUP = "rbac.authorization.k8s.io"
SA_PREFIX = "system:serviceaccount:"
INJECTION = {"istio-injection": "enabled"}


def new_run_id() -> str:
    return time.strftime("%m%d%H%M") + secrets.token_hex(2)


def namespace_name(run_id: str, worker: str) -> str:
    """A DNS-1123 label of at most 63 characters that says which run and worker it is."""
    slug = re.sub(r"[^a-z0-9]+", "-", worker.lower()).strip("-") or "main"
    digest = hashlib.sha1(worker.encode()).hexdigest()[:4]
    run = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")[:20] or "run"
    head = f"mg-{run}-"
    room = 63 - len(head) - 5
    return f"{head}{slug[:room].rstrip('-')}-{digest}"


DATA_PLANES = ("sidecar", "ambient", "waypoint")
WAYPOINT = "waypoint"  # the waypoint's name (manifests/overlays/waypoint.yaml)


def data_plane_labels(data_plane: str) -> dict[str, str]:
    """The labels that put a namespace's pods in the mesh: sidecar injection; ambient
    (istio-cni redirects them to ztunnel); ambient with the namespace's waypoint, for its
    own traffic and what enters through the ingress gateway."""
    if data_plane == "sidecar":
        return dict(INJECTION)
    labels = {"istio.io/dataplane-mode": "ambient"}
    if data_plane == "waypoint":
        # Istio sends ingress traffic to a waypoint only where asked (istio/istio
        # pilot/pkg/xds/endpoints findServiceWaypoint): the suite's requests enter through
        # the ingress gateway, so the namespace asks.
        labels["istio.io/use-waypoint"] = WAYPOINT
        labels["istio.io/ingress-use-waypoint"] = "true"
    return labels


def namespace_object(name: str, run_id: str, *, ttl: int = DEFAULT_TTL,
                     injection: dict[str, str] | None = None,
                     data_plane: str = "sidecar") -> dict:
    """The namespace, labelled for its data plane: ambient (with or without a waypoint), or
    sidecars with ``injection``'s labels (Istio's ``istio-injection=enabled`` unless the
    platform wants others: meshgate.platform.injection_labels)."""
    labels = {RUN_LABEL: run_id, EXPIRES_LABEL: str(int(time.time()) + ttl),
              OWNER_LABEL: "meshgate"}
    if data_plane != "sidecar":
        labels.update(data_plane_labels(data_plane))
    else:
        labels.update(INJECTION if injection is None else injection)
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels}}


def subject_of(user_info: dict) -> dict:
    """The RBAC subject of an authenticated identity (a SelfSubjectReview's userInfo)."""
    username = user_info.get("username", "")
    if username.startswith(SA_PREFIX):
        namespace, _, account = username[len(SA_PREFIX):].partition(":")
        if namespace and account:
            return {"kind": "ServiceAccount", "name": account, "namespace": namespace}
    return {"kind": "User", "apiGroup": RBAC_GROUP, "name": username}


def scenario_binding(namespace: str, subject: dict) -> dict:
    """The RoleBinding that grants ``meshgate-scenario`` to ``subject`` in ``namespace``."""
    return {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "RoleBinding",
            "metadata": {"name": SCENARIO_ROLE, "namespace": namespace,
                         "labels": {OWNER_LABEL: "meshgate"}},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": SCENARIO_ROLE},
            "subjects": [subject]}


def grant_scenario_role(cluster: Cluster, namespace: str, timeout: float = 10.0) -> bool:
    """Bind ``meshgate-scenario`` to the suite's own identity in ``namespace``; True when
    the binding exists. Waits (bounded) until the API server honours it: real API servers
    authorise from an informer cache that lags a write by milliseconds."""
    who = cluster.whoami()
    if not who or not who.get("username"):
        warnings.warn(f"meshgate: the API server does not say who the suite is "
                      f"(SelfSubjectReview, Kubernetes 1.28+), so {namespace} gets no "
                      f"RoleBinding {SCENARIO_ROLE}; the suite needs those permissions by "
                      "other means (see deploy/rbac.yaml)", stacklevel=2)
        return False
    try:
        cluster.apply(scenario_binding(namespace, subject_of(who)), namespace)
    except ClusterError as exc:
        if exc.status not in (403, 404):
            raise
        warnings.warn(f"meshgate: could not bind {SCENARIO_ROLE} in {namespace} ({exc}); "
                      "carrying on with the permissions the suite already has",
                      stacklevel=2)
        return False
    deadline = time.monotonic() + timeout
    delay = 0.02
    while cluster.can_i("patch", "services", namespace) is False:
        if time.monotonic() >= deadline:
            # Not fatal here: the first request that needs the permission fails with the
            # API server's own message, which names exactly what is missing.
            warnings.warn(f"meshgate: the RoleBinding {SCENARIO_ROLE} in {namespace} exists "
                          f"but {who['username']} still may not patch services there after "
                          f"{timeout:.0f}s: is the ClusterRole {SCENARIO_ROLE} of "
                          "deploy/rbac.yaml applied?", stacklevel=2)
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    return True


def create(cluster: Cluster, name: str, run_id: str, *, mesh: MeshInfo | None = None,
           ttl: int = DEFAULT_TTL, data_plane: str = "sidecar") -> dict:
    """Create the namespace labelled for its data plane (ambient, with or without a
    waypoint; or sidecar injection as ``mesh``'s platform wants it), grant the suite
    ``meshgate-scenario`` in it, and, on OpenShift Service Mesh 2.x, make it a member of the
    control plane (meshgate.membership: a ServiceMeshMember in the namespace, then the
    operator's label). A namespace that cannot join is deleted again (nothing half-made)
    and the reason raised."""
    platform = mesh.platform if mesh is not None else None
    labels = injection_labels(platform) if platform is not None else None
    out = cluster.apply(namespace_object(name, run_id, ttl=ttl, injection=labels,
                                         data_plane=data_plane), None)
    grant_scenario_role(cluster, name)
    smm = platform.service_mesh if platform is not None else None
    if mesh is not None and smm is not None and smm.major == 2:
        try:
            membership.join(cluster, name, mesh.namespace, smm.name)
        except membership.MembershipError:
            cluster.delete("v1", "Namespace", name, None)
            raise
    return out


def delete(cluster: Cluster, name: str, *, mesh: MeshInfo | None = None) -> bool:
    """Leave the mesh (OSSM 2's member), remove the Routes the suite made for the
    namespace's hosts (OpenShift: in the gateway's namespace, ``istio-system`` when the
    mesh is not given, as for ``meshgate sweep``), then delete the namespace."""
    membership.leave(cluster, name)
    if mesh is not None and mesh.openshift:
        openshift_route.remove_for(cluster, mesh.ingress_gateway.namespace, name)
    elif mesh is None and cluster.has_api(openshift_route.API):
        openshift_route.remove_for(cluster, DEFAULT_CONTROL_PLANE, name)
    return cluster.delete("v1", "Namespace", name, None)


def expired(cluster: Cluster, now: float | None = None) -> list[str]:
    """Namespaces made by meshgate whose expiry has passed."""
    now = time.time() if now is None else now
    out = []
    for ns in cluster.list("v1", "Namespace", label_selector=f"{OWNER_LABEL}=meshgate"):
        labels = (ns.get("metadata") or {}).get("labels") or {}
        try:
            if int(labels.get(EXPIRES_LABEL, "0")) <= now:
                out.append(ns["metadata"]["name"])
        except ValueError:
            continue
    return sorted(out)
