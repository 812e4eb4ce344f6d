"""The workloads' manifests: load, check, apply, and wait for what they declare.

Manifests are plain Kubernetes YAML without namespaces (see manifests/README.md); the
suite applies them into the scenario's namespace with server-side apply. A manifest that
does not parse, or names no kind, is rejected before anything is applied, so a bad input
never leaves a half-deployed namespace.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from meshgate.cluster import Cluster

MANIFEST_DIR = Path(__file__).resolve().parents[1] / "manifests"
WORKLOADS = ("composer", "vp0", "membersrvc")


class ManifestError(ValueError):
    """A manifest is unusable; the message names the file and what to fix."""


@dataclass(frozen=True)
class Manifest:
    path: Path
    objects: tuple[dict, ...]


def load(path: Path) -> Manifest:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror}") from exc
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ManifestError(f"manifest {path} is not valid YAML{where}: "
                            f"{getattr(exc, 'problem', exc)}; fix the file") from exc
    for i, d in enumerate(docs):
        if not isinstance(d, dict) or not d.get("apiVersion") or not d.get("kind"):
            raise ManifestError(f"document {i + 1} of {path} has no apiVersion/kind: every "
                                "document must be a Kubernetes object")
        if not (d.get("metadata") or {}).get("name"):
            raise ManifestError(f"document {i + 1} ({d['kind']}) of {path} has no "
                                "metadata.name")
    return Manifest(path, tuple(docs))


def workload_manifest(name: str, directory: Path = MANIFEST_DIR) -> Manifest:
    path = directory / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in directory.glob("*.yaml"))
        raise ManifestError(f"no manifest for workload {name!r} in {directory}; known: "
                            f"{', '.join(known)}")
    return load(path)


def apply(cluster: Cluster, manifest: Manifest, namespace: str) -> list[dict]:
    """Check every object with a server-side dry run, then apply them all."""
    return apply_objects(cluster, manifest.objects, namespace)


# The order objects are created in, by kind, as Helm installs a chart (helm.sh/helm
# pkg/releaseutil/kind_sorter.go, InstallOrder): what pods refer to (accounts, secrets,
# config, Services) before the controllers that create pods. For a mesh this matters
# beyond tidiness: a sidecar's first xDS push is built from the Services that exist when it
# connects, so a workload created before the Service it calls sends its first requests to
# the PassthroughCluster, and telemetry and Kiali report them against an "unknown"
# destination. Istio's own configuration comes before the workloads for the same reason
# (and DestinationRules before the VirtualServices that name their subsets, Istio's
# "make before break" advice in its traffic-management best practices). Kinds not
# listed keep their relative order, after every listed kind, as in Helm.
INSTALL_ORDER = (
    "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodDisruptionBudget",
    "ServiceAccount", "Secret", "ConfigMap", "StorageClass", "PersistentVolume",
    "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
    "Role", "RoleBinding", "Service",
    "ServiceEntry", "WorkloadEntry", "DestinationRule", "VirtualService", "Gateway",
    "Sidecar", "EnvoyFilter", "PeerAuthentication", "RequestAuthentication",
    "AuthorizationPolicy", "Telemetry",
    "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
    "Route",
)
_RANK = {kind: i for i, kind in enumerate(INSTALL_ORDER)}


def install_order(objects: Sequence[dict]) -> list[dict]:
    """``objects`` sorted by kind in ``INSTALL_ORDER``; stable within a kind."""
    return sorted(objects, key=lambda o: _RANK.get(o.get("kind", ""), len(INSTALL_ORDER)))


INJECT = "sidecar.istio.io/inject"
MEMBER_OF = "maistra.io/member-of"  # OpenShift Service Mesh 2.x's membership label
# The kinds whose pod template a label reaches (and Pods themselves).
POD_TEMPLATES = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")


def opt_in(obj: dict) -> dict:
    """``obj`` with its pods asking for a sidecar: OpenShift Service Mesh 2.x injects only
    pods labelled (or annotated) ``sidecar.istio.io/inject: "true"`` (openshift-docs,
    "Enabling automatic sidecar injection"). A pod that already says either way — a caller
    that must stay outside the mesh says "false" — keeps its choice; other kinds are
    returned unchanged."""
    kind = obj.get("kind")
    if kind not in (*POD_TEMPLATES, "Pod"):
        return obj
    out = copy.deepcopy(obj)
    if kind == "Pod":
        meta = out.setdefault("metadata", {})
    else:
        meta = out.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {})
    labels = meta.get("labels") or {}
    if INJECT in labels or INJECT in (meta.get("annotations") or {}):
        return out
    meta["labels"] = {**labels, INJECT: "true"}
    return out


def needs_opt_in(cluster: Cluster, namespace: str) -> bool:
    """Whether ``namespace`` is an OpenShift Service Mesh 2.x member (labelled
    ``maistra.io/member-of`` by the operator), whose pods must opt in."""
    ns = cluster.get("v1", "Namespace", namespace, None) or {}
    return MEMBER_OF in ((ns.get("metadata") or {}).get("labels") or {})


def tailor(objects: Sequence[dict], *, member: bool) -> list[dict]:
    """The objects as this namespace needs them: opted in to injection in an OSSM 2.x
    member namespace, unchanged elsewhere."""
    return [opt_in(o) for o in objects] if member else list(objects)


def apply_objects(cluster: Cluster, objects: Sequence[dict], namespace: str) -> list[dict]:
    """All objects pass a server-side dry run before any is applied, so an object the
    cluster rejects leaves nothing half-applied; they are applied in ``install_order``,
    tailored to the namespace (:func:`tailor`). The applied objects are returned in that
    order."""
    ordered = install_order(tailor(objects, member=needs_opt_in(cluster, namespace)))
    for obj in ordered:
        cluster.apply(obj, namespace, dry_run=True)
    return [cluster.apply(obj, namespace) for obj in ordered]


def deployment_ready(d: dict) -> bool:
    """The condition ``kubectl rollout status`` checks."""
    spec, status, meta = d.get("spec") or {}, d.get("status") or {}, d.get("metadata") or {}
    want = spec.get("replicas", 1)
    return (status.get("observedGeneration", 0) >= meta.get("generation", 1)
            and status.get("updatedReplicas", 0) == want
            and status.get("replicas", 0) == want
            and status.get("availableReplicas", 0) >= want)


def pods_of(cluster: Cluster, namespace: str, app: str) -> list[dict]:
    return [p for p in cluster.list("v1", "Pod", namespace, label_selector=f"app={app}")
            if not (p.get("metadata") or {}).get("deletionTimestamp")]


def http_service(name: str, port: int) -> dict:
    """A Service with one HTTP port selecting ``app=<name>`` (whether or not pods exist:
    istiod pushes a route for it to every sidecar all the same)."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"selector": {"app": name},
                     "ports": [{"name": "http", "port": port, "targetPort": port}]}}
