"""What istiod's ambient generators read: the pods as ztunnel knows them, and waypoints.

Built from the object store by istiod (localmesh/istio/istiod.py) beside the rest of the
mesh snapshot, so the generators (wds.py, ztunnel_xds.py, waypoint_xds.py) are pure.
A pod is a *workload* in Istio's workload API (istio/ztunnel ``proto/workload.proto``):
its uid ``<cluster>//Pod/<namespace>/<name>``, its IP, its identity, its canonical names
and whether it speaks HBONE (the istio-cni annotation, enrolment.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from localmesh.istio.ambient import enrolment
from localmesh.network import AddressPlan
from localmesh.store import Store

PODS = ("", "pods")
NAMESPACES = ("", "namespaces")
SERVICES = ("", "services")
GATEWAYS = ("gateway.networking.k8s.io", "gateways")
HTTP_ROUTES = ("gateway.networking.k8s.io", "httproutes")
WAYPOINT_CLASS = "istio-waypoint"
CLUSTER_ID = "Kubernetes"
# The pod annotations a ztunnel's configuration depends on.
XDS_ANNOTATIONS = (enrolment.REDIRECTION, enrolment.POD_NETWORK)


@dataclass(frozen=True)
class AmbientPod:
    """One pod, as a workload of Istio's workload API."""

    name: str
    namespace: str
    ip: str
    local_ip: str
    service_account: str
    labels: tuple[tuple[str, str], ...]
    workload_name: str
    workload_type: str  # deployment | pod | daemonset …, lower case as ztunnel prints it
    node: str
    hbone: bool  # redirected to ztunnel (ambient.istio.io/redirection: enabled)
    behind_local: bool  # its programs listen on its local address (localmesh's mark)
    ports: tuple[int, ...]  # container ports
    ready: bool

    @property
    def uid(self) -> str:
        return f"{CLUSTER_ID}//Pod/{self.namespace}/{self.name}"

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def canonical_name(self) -> str:
        labels = self.label_map
        return (labels.get("service.istio.io/canonical-name")
                or labels.get("app.kubernetes.io/name") or labels.get("app")
                or self.workload_name)

    @property
    def canonical_revision(self) -> str:
        labels = self.label_map
        return (labels.get("service.istio.io/canonical-revision")
                or labels.get("app.kubernetes.io/version") or labels.get("version")
                or "latest")


@dataclass(frozen=True)
class Waypoint:
    """A Gateway of class ``istio-waypoint``, and its Service's address."""

    name: str
    namespace: str
    address: str  # the Service's ClusterIP, "" until it has one
    pod_ips: tuple[str, ...]


@dataclass
class AmbientState:
    pods: dict[str, AmbientPod] = field(default_factory=dict)  # by IP
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    waypoints: dict[tuple[str, str], Waypoint] = field(default_factory=dict)
    # HTTPRoutes: those with a Service parent route at that Service's waypoint (GAMMA).
    http_routes: list[dict] = field(default_factory=list)

    def on_node(self, node: str) -> list[AmbientPod]:
        return sorted((p for p in self.pods.values() if p.node == node),
                      key=lambda p: (p.namespace, p.name))


def _workload(pod: dict) -> tuple[str, str]:
    """Workload name and type as Istio derives them (ReplicaSet → its Deployment)."""
    meta = pod["metadata"]
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "ReplicaSet":
            h = (meta.get("labels") or {}).get("pod-template-hash")
            name = ref["name"]
            if h and name.endswith("-" + h):
                name = name[: -len(h) - 1]
            return name, "deployment"
        if ref.get("kind") in ("DaemonSet", "StatefulSet", "Job"):
            # Istio names a DaemonSet's pod by itself (golden ztunnel dump: workloadType
            # "pod" for ztunnel's pods).
            return meta["name"], "pod"
    return meta["name"], "pod"


def ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def snapshot(store: Store) -> AmbientState:
    state = AmbientState()
    for ns in store.scan(NAMESPACES):
        state.namespace_labels[ns["metadata"]["name"]] = dict(
            ns["metadata"].get("labels") or {})
    for pod in store.scan(PODS):
        ip = (pod.get("status") or {}).get("podIP")
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if not ip or meta.get("deletionTimestamp"):
            continue
        name, kind = _workload(pod)
        ports = sorted({p["containerPort"] for c in spec.get("containers") or []
                        for p in c.get("ports") or [] if isinstance(p.get("containerPort"),
                                                                     int)})
        state.pods[ip] = AmbientPod(
            name=meta["name"], namespace=meta["namespace"], ip=ip,
            local_ip=AddressPlan.local_address(ip),
            service_account=spec.get("serviceAccountName") or "default",
            labels=tuple(sorted((meta.get("labels") or {}).items())),
            workload_name=name, workload_type=kind, node=spec.get("nodeName") or "",
            hbone=enrolment.redirected(pod), behind_local=enrolment.behind_local_address(pod),
            ports=tuple(ports), ready=ready(pod))
    services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s
                for s in store.scan(SERVICES)}
    state.http_routes = [r for r in store.scan(HTTP_ROUTES)
                         if any(p.get("kind") == "Service"
                                for p in (r.get("spec") or {}).get("parentRefs") or [])]
    for gw in store.scan(GATEWAYS):
        spec = gw.get("spec") or {}
        if spec.get("gatewayClassName") != WAYPOINT_CLASS:
            continue
        meta = gw["metadata"]
        svc = services.get((meta["namespace"], meta["name"])) or {}
        pods = tuple(sorted(p.ip for p in state.pods.values()
                            if p.namespace == meta["namespace"] and p.label_map.get(
                                "gateway.networking.k8s.io/gateway-name") == meta["name"]
                            and p.ready))
        state.waypoints[(meta["namespace"], meta["name"])] = Waypoint(
            meta["name"], meta["namespace"], (svc.get("spec") or {}).get("clusterIP") or "",
            pods)
    return state


# Istio's CA_TRUSTED_NODE_ACCOUNTS default: the node agents that may ask for their pods'
# certificates.
TRUSTED_NODE_ACCOUNTS = (("istio-system", "ztunnel"),)


def node_authorizer(store: Store, trust_domain: str = "cluster.local"
                    ) -> Callable[[str, str], bool]:
    """The CA's check of an impersonating caller (istio/istio ``security/pkg/server/ca/
    node_auth.go``): the caller is a trusted node account, and a pod of the identity it asks
    for runs on the node (localmesh has one node) in the ambient mesh."""
    trusted = {f"spiffe://{trust_domain}/ns/{ns}/sa/{sa}" for ns, sa in TRUSTED_NODE_ACCOUNTS}

    def authorized(caller: str, identity: str) -> bool:
        if caller not in trusted:
            return False
        prefix = f"spiffe://{trust_domain}/ns/"
        if not identity.startswith(prefix) or "/sa/" not in identity:
            return False
        ns, _, sa = identity[len(prefix):].partition("/sa/")
        return any((p.get("spec") or {}).get("serviceAccountName", "default") == sa
                   and enrolment.behind_local_address(p)
                   for p in store.scan(PODS, ns))

    return authorized
