"""Deploying the workloads and waiting until they are Ready in their namespace's data plane:
with their sidecars, or captured by ztunnel (ambient), through the namespace's waypoint
where it names one (the overlay ``overlays/waypoint.yaml``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from meshgate import ambient, manifests, sidecars
from meshgate.cluster import Cluster, ClusterError
from meshgate.mesh import data_plane
from meshgate.waiting import Unrecoverable, Waits

# What makes deploying the workloads impossible (no waiting helps): a kind the cluster
# does not serve, a manifest that cannot be used, an image that cannot run.
DEPLOY_ERRORS = (ClusterError, manifests.ManifestError, Unrecoverable)


@dataclass(frozen=True)
class Deployed:
    name: str
    namespace: str
    pods: tuple[str, ...]


def deploy(cluster: Cluster, namespace: str, names: list[str], waits: Waits, *,
           directory: Path = manifests.MANIFEST_DIR) -> dict[str, Deployed]:
    """Apply each workload's manifest, then wait for every Deployment's rollout."""
    loaded = [manifests.workload_manifest(n, directory) for n in names]
    manifests.apply_objects(cluster, [o for m in loaded for o in m.objects], namespace)
    return wait_ready(cluster, namespace, names, waits)


def wait_ready(cluster: Cluster, namespace: str, names: list[str], waits: Waits, *,
               sidecar: bool = True, plane: str = "sidecar") -> dict[str, Deployed]:
    """Each workload's rollout Ready (with its sidecar, unless ``sidecar`` is off: a pod
    that must stay outside the mesh; captured by ztunnel where ``plane`` is ``ambient``),
    one recorded wait each."""
    how = "with a sidecar" if sidecar else "without a sidecar"
    if plane == "ambient":
        how = "in the ambient mesh"
    return {name: waits.until(functools.partial(_ready, cluster, namespace, name, sidecar,
                                                plane),
                              area="deploy", what=f"{name} is Ready {how}")
            for name in names}


STUCK = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName",
         "CreateContainerConfigError", "CrashLoopBackOff")


def stuck(pods: list[dict]) -> str | None:
    """Why a pod cannot become Ready by waiting (the kubelet's waiting reason), if it can't.

    A first ErrImagePull is already final for the suite: the image will not appear.
    CrashLoopBackOff counts once a container has restarted three times.
    """
    for p in pods:
        st = p.get("status") or {}
        for c in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
            waiting = (c.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in STUCK and (reason != "CrashLoopBackOff" or c.get("restartCount", 0)
                                    >= 3):
                return (f"pod {p['metadata']['name']} container {c['name']}: {reason}: "
                        f"{waiting.get('message', '')}")
    return None


def refused(replica_sets: list[dict]) -> str | None:
    """Why the API server refuses the pods of a ReplicaSet, if it does: the controller's
    ``ReplicaFailure`` condition ("Error creating: …", kubernetes pkg/controller/
    replicaset), e.g. OpenShift's SecurityContextConstraints admission."""
    for rs in replica_sets:
        for c in (rs.get("status") or {}).get("conditions") or []:
            if c.get("type") == "ReplicaFailure" and c.get("status") == "True":
                return f"ReplicaSet {rs['metadata']['name']}: {c.get('message', '')}"
    return None


SCC_FIX = ("OpenShift's SecurityContextConstraints refuse the pod: under restricted-v2 a pod "
           "may not ask for UID 0 or a UID outside the namespace's range, nor for added "
           "capabilities or privilege; remove runAsUser (OpenShift assigns one) and what "
           "restricted-v2 forbids from the manifest, or grant its ServiceAccount an SCC that "
           "allows it (`oc adm policy add-scc-to-user anyuid -z <service account> -n <ns>`)")


def _ready(cluster: Cluster, namespace: str, name: str, sidecar: bool = True,
           plane: str = "sidecar") -> Deployed | None:
    d = cluster.get("apps/v1", "Deployment", name, namespace)
    pods = manifests.pods_of(cluster, namespace, name)
    if not pods and d is not None:
        why = refused(cluster.list("apps/v1", "ReplicaSet", namespace,
                                   label_selector=f"app={name}"))
        if why:
            fix = SCC_FIX if "security context constraint" in why else \
                "see `kubectl describe replicaset` for the admission that refused it"
            raise Unrecoverable(f"{name} cannot create its pods in {namespace}: {why}. {fix}")
    why = stuck(pods)
    if why:
        raise Unrecoverable(f"{name} cannot become Ready: {why}; see `kubectl describe pod "
                            f"-n {namespace} -l app={name}`")
    if d is None or not manifests.deployment_ready(d):
        return None
    if plane == "ambient" and sidecar:
        if not pods or any(ambient.enrolment_problem(p) for p in pods):
            return None
        return Deployed(name, namespace, tuple(sorted(p["metadata"]["name"] for p in pods)))
    injected = [sidecars.is_injected(p) and sidecars.has_proxy_container(p) for p in pods]
    if not sidecar and any(injected):
        raise Unrecoverable(f"{name} must run outside the mesh but was injected; see "
                            f"`kubectl get pod -n {namespace} -l app={name} -o yaml`")
    if not pods or (sidecar and not all(injected)):
        return None
    return Deployed(name, namespace, tuple(sorted(p["metadata"]["name"] for p in pods)))


_DEPLOYED: dict[tuple[str, str], dict[str, Deployed]] = {}


def deploy_blockchain(cluster: Cluster, namespace: str, waits: Waits, *,
                      cluster_writes: bool = True,
                      directory: Path = manifests.MANIFEST_DIR,
                      host: str | None = None) -> dict[str, Deployed]:
    """Deploy once per namespace and process; later calls only confirm readiness.

    Every scenario's Background says the workloads are deployed; applying the same 14
    objects again would change nothing but cost a few hundred API calls per run.
    """
    key = (cluster.host, namespace)
    known = _DEPLOYED.get(key)
    if known is not None:
        out = wait_ready(cluster, namespace, list(known), waits,
                         plane=data_plane(cluster, namespace).mode)
    else:
        out = _deploy_blockchain(cluster, namespace, waits, cluster_writes=cluster_writes,
                                 directory=directory, host=host)
    _DEPLOYED[key] = out
    return out


def _deploy_blockchain(cluster: Cluster, namespace: str, waits: Waits, *,
                       cluster_writes: bool = True,
                       directory: Path = manifests.MANIFEST_DIR,
                       host: str | None = None) -> dict[str, Deployed]:
    """composer, vp0 and membersrvc, and the ingress with the namespace's own host.

    The IngressClass ``istio`` is cluster-scoped: it is created only when missing, and not
    at all when ``cluster_writes`` is off (the gate profile) — the Ingress then names Istio
    by the ``kubernetes.io/ingress.class`` annotation, which Istio also honours (Istio's
    Kubernetes Ingress task, "Specifying IngressClass"), so nothing outside the namespace
    is written.
    """
    from meshgate import ingress

    names = list(manifests.WORKLOADS)
    plane = data_plane(cluster, namespace)
    if plane.waypoint:
        deploy_waypoint(cluster, namespace, plane.waypoint, waits, directory=directory)
    loaded = [manifests.workload_manifest(n, directory) for n in names]
    ing = manifests.load(directory / "ingress.yaml")
    host = host or ingress.scenario_host(namespace)
    objects = [obj for m in loaded for obj in m.objects]
    for obj in ing.objects:
        if obj["kind"] == "IngressClass":
            if not cluster_writes or cluster.get(obj["apiVersion"], obj["kind"],
                                                 obj["metadata"]["name"], None):
                continue
        if obj["kind"] == "Ingress" and not cluster_writes:
            obj = ingress.by_annotation(obj)
        objects.append(ingress.isolate(obj, host))
    manifests.apply_objects(cluster, objects, namespace)
    return wait_ready(cluster, namespace, names, waits, plane=plane.mode)


WAYPOINT_OVERLAY = "overlays/waypoint.yaml"


def deploy_waypoint(cluster: Cluster, namespace: str, name: str, waits: Waits, *,
                    directory: Path = manifests.MANIFEST_DIR) -> None:
    """The namespace's waypoint (``istioctl waypoint apply``'s Gateway, from the overlay),
    named as the namespace's ``istio.io/use-waypoint`` label says, Programmed with a Ready
    pod before the workloads start."""
    from meshgate import gateway_api

    for obj in manifests.load(directory / WAYPOINT_OVERLAY).objects:
        if obj["kind"] == "Gateway":
            obj = {**obj, "metadata": {**obj["metadata"], "name": name}}
        manifests.apply_objects(cluster, [obj], namespace)
    gateway_api.expect_programmed(cluster, namespace, name, waits)
