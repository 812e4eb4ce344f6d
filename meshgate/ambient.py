"""Istio's ambient data plane read from the live mesh: enrolment, ztunnel's view, waypoints,
and ztunnel's L4 telemetry.

- Enrolment: istio-cni annotates every pod it redirects to ztunnel with
  ``ambient.istio.io/redirection: enabled``; an ambient pod has no ``istio-proxy``
  container (istio.io, "Ambient mode": no sidecar).
- ztunnel's view: its admin ``/config_dump`` (port 15000 on the pod's localhost, read
  through a port-forward as ``istioctl ztunnel-config`` does) lists every workload with its
  ``protocol`` (``HBONE`` for captured pods) and every service with its endpoints, keyed
  ``<network>/<IP>`` (istio/istio ``istioctl/pkg/writer/ztunnel/configdump``). "ztunnel
  routes a service" means it knows the service's port and the service's endpoints are
  workloads it reaches over HBONE.
- A waypoint is a Gateway of class ``istio-waypoint``; a service (or its namespace) uses it
  by ``istio.io/use-waypoint``; the waypoint's Envoy routes the service's port on its
  ``main_internal`` listener to the ``inbound-vip|<port>|http|<fqdn>`` cluster (Istio's
  waypoint config, compared with a real config dump in tests/unit).
- Telemetry: ztunnel reports ``istio_tcp_*`` (reporter ``source`` and ``destination``);
  "the destination ztunnel counts the connections" means the bytes it received for the
  service, reported at the destination, grew since just before the traffic, and it has
  counted connections to it; a waypoint reports ``istio_requests_total`` with
  ``reporter="waypoint"``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from meshgate import config_dump
from meshgate.cluster import Cluster, ClusterError
from meshgate.manifests import pods_of
from meshgate.mesh import MeshInfo
from meshgate.sidecars import has_proxy_container, is_injected
from meshgate.telemetry import QueryBackend, quote, selector
from meshgate.waiting import Waits, WaitTimeout

REDIRECTION = "ambient.istio.io/redirection"
ZTUNNEL_SELECTOR = "app=ztunnel"
ZTUNNEL_ADMIN_PORT = 15000
TCP_RECEIVED = "istio_tcp_received_bytes_total"
TCP_OPENED = "istio_tcp_connections_opened_total"
WAYPOINT_CLASS = "istio-waypoint"
GATEWAY_NAME = "gateway.networking.k8s.io/gateway-name"


def is_enrolled(pod: dict) -> bool:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return annotations.get(REDIRECTION) == "enabled"


def _ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def enrolment_problem(pod: dict) -> str | None:
    """Why a pod is not a Ready ambient pod, or None."""
    name = pod["metadata"]["name"]
    if is_injected(pod) or has_proxy_container(pod):
        return f"pod {name} has a sidecar (istio-proxy): it is not in the ambient data plane"
    if not is_enrolled(pod):
        return (f"pod {name} lacks the annotation {REDIRECTION}: enabled: istio-cni did not "
                "redirect it to ztunnel (is istio-cni-node running, the namespace labelled "
                "istio.io/dataplane-mode=ambient?)")
    if not _ready(pod):
        return f"pod {name} is not Ready"
    return None


def expect_enrolled_and_ready(cluster: Cluster, namespace: str, workload: str) -> list[str]:
    """Every pod of ``workload`` is Ready, captured by ztunnel, without a sidecar."""
    pods = pods_of(cluster, namespace, workload)
    if not pods:
        raise AssertionError(f"no pod of {workload} in {namespace}; look at `kubectl get pods "
                             f"-n {namespace}`")
    for p in pods:
        problem = enrolment_problem(p)
        if problem:
            raise AssertionError(f"{problem}; see `kubectl get pod -n {namespace} "
                                 f"{p['metadata']['name']} -o yaml`")
    return [p["metadata"]["name"] for p in pods]


# -- ztunnel's view --------------------------------------------------------------------------
def ztunnel_for(cluster: Cluster, mesh: MeshInfo, node: str) -> str:
    """The ztunnel pod of ``node``."""
    pods = [p for p in cluster.list("v1", "Pod", mesh.namespace, label_selector=ZTUNNEL_SELECTOR)
            if not p["metadata"].get("deletionTimestamp")]
    mine = [p for p in pods if (p.get("spec") or {}).get("nodeName") == node] or pods
    if not mine:
        raise AssertionError(f"no ztunnel pod ({ZTUNNEL_SELECTOR}) in {mesh.namespace}: is "
                             "Istio's ambient profile installed?")
    return str(mine[0]["metadata"]["name"])


def ztunnel_dump(cluster: Cluster, namespace: str, pod: str) -> dict:
    status, body = cluster.forwarded_get(namespace, pod, ZTUNNEL_ADMIN_PORT, "/config_dump")
    if status != 200:
        raise ClusterError(f"ztunnel {namespace}/{pod} config_dump answered {status}")
    doc = json.loads(body or b"{}")
    if not isinstance(doc, dict):
        raise ClusterError(f"ztunnel {namespace}/{pod} config_dump is not an object")
    return doc


def _entries(section: object) -> list[dict]:
    """ztunnel dumps workloads and services as a map (``<network>/<IP>`` → entry) in the
    releases istioctl's test data shows, as a list in others: both read the same."""
    if isinstance(section, dict):
        return [v for v in section.values() if isinstance(v, dict)]
    if isinstance(section, list):
        return [v for v in section if isinstance(v, dict)]
    return []


@dataclass(frozen=True)
class ZtunnelRoute:
    """What ztunnel knows of a service port: the service's endpoints and their protocol."""

    host: str
    port: int
    workloads: tuple[tuple[str, str], ...]  # (workload name, protocol)

    def describe(self) -> str:
        found = ", ".join(f"{name} ({proto})" for name, proto in self.workloads)
        return f"ztunnel knows {self.host}:{self.port} with workloads {found}"


def ztunnel_route(dump: dict, host: str, port: int) -> ZtunnelRoute | str:
    """The service ``host``'s port ``port`` as ztunnel knows it, every endpoint a workload it
    reaches over HBONE; or why not (for the failure message)."""
    services = [s for s in _entries(dump.get("services")) if s.get("hostname") == host]
    if not services:
        known = sorted({str(s.get("hostname")) for s in _entries(dump.get("services"))})
        return f"no service {host} in ztunnel's config dump (it knows {known[:12]})"
    svc = services[0]
    if str(port) not in {str(k) for k in (svc.get("ports") or {})}:
        return f"service {host} has no port {port} in ztunnel's view: {svc.get('ports')}"
    by_uid = {w.get("uid"): w for w in _entries(dump.get("workloads"))}
    found = []
    for endpoint in _entries(svc.get("endpoints")):
        w = by_uid.get(endpoint.get("workloadUid")) or {}
        found.append((str(w.get("name") or endpoint.get("workloadUid")),
                      str(w.get("protocol") or "unknown")))
    if not found:
        return f"service {host} has no endpoints in ztunnel's view"
    plain = [name for name, proto in found if proto != "HBONE"]
    if plain:
        return (f"service {host}'s workloads {plain} are not HBONE in ztunnel's view (not "
                "captured: is the namespace labelled istio.io/dataplane-mode=ambient?)")
    return ZtunnelRoute(host, port, tuple(sorted(found)))


def expect_ztunnel_route(cluster: Cluster, mesh: MeshInfo, namespace: str, client: str,
                         service: str, port: int, waits: Waits) -> ZtunnelRoute:
    """The ztunnel of ``client``'s node knows ``service:port`` and reaches its workloads
    over HBONE."""
    pods = pods_of(cluster, namespace, client)
    if not pods:
        raise AssertionError(f"no pod of {client} in {namespace}; look at `kubectl get pods "
                             f"-n {namespace} -l app={client}`")
    node = (pods[0].get("spec") or {}).get("nodeName") or ""
    ztunnel = ztunnel_for(cluster, mesh, node)
    host = f"{service}.{namespace}.svc.cluster.local"

    def probe() -> ZtunnelRoute | str:
        return ztunnel_route(ztunnel_dump(cluster, mesh.namespace, ztunnel), host, port)

    try:
        found = waits.until(lambda: r if isinstance(r := probe(), ZtunnelRoute) else None,
                            area="routes", what=f"ztunnel {ztunnel} knows {host}:{port}",
                            describe=lambda hit: hit.describe() if hit else probe())
    except WaitTimeout as exc:
        raise AssertionError(
            f"expected the ztunnel of {client}'s node ({mesh.namespace}/{ztunnel}) to know "
            f"{host}:{port} with HBONE workloads; found: {exc.last}. Look at `istioctl "
            f"ztunnel-config all {ztunnel}.{mesh.namespace}`") from None
    return found


# -- waypoints ------------------------------------------------------------------------------
def waypoint_pod(cluster: Cluster, namespace: str, waypoint: str) -> str:
    pods = [p for p in cluster.list("v1", "Pod", namespace,
                                    label_selector=f"{GATEWAY_NAME}={waypoint}")
            if not p["metadata"].get("deletionTimestamp")]
    if not pods:
        raise AssertionError(f"no pod of the waypoint {waypoint} in {namespace}: is its Gateway "
                             f"(class {WAYPOINT_CLASS}) Programmed? `kubectl get gateway -n "
                             f"{namespace} {waypoint}`")
    return str(pods[0]["metadata"]["name"])


def waypoint_route_config(service: str, namespace: str, port: int) -> str:
    """Istio's waypoint names a service port's route config and cluster
    ``inbound-vip|<port>|http|<fqdn>`` (golden waypoint config dump)."""
    return f"inbound-vip|{port}|http|{service}.{namespace}.svc.cluster.local"


def waypoint_routes(dump: dict, service: str, namespace: str, port: int
                    ) -> config_dump.RouteEntry | None:
    """The waypoint's route for the service port, inline in ``main_internal``'s filter chain
    or from RDS: ``/`` to the ``inbound-vip`` cluster (or, with an HTTPRoute, its
    backends)."""
    name = waypoint_route_config(service, namespace, port)
    for entry in config_dump.route_entries(dump):
        if entry.route_config == name:
            return entry
    return None


# -- telemetry ------------------------------------------------------------------------------
def destination_tcp(service: str, namespace: str) -> dict[str, str]:
    """The series the destination's ztunnel reports for connections to a service."""
    return {"reporter": "destination", "destination_service_name": service,
            "destination_service_namespace": namespace}


# Prometheus's target labels follow the pod's (localmesh's discovery also says whether it
# is ``ready``): a pod scraped once while it was starting leaves a series that differs only
# there, counted twice by a plain sum until it goes stale. The sums here take each series
# once, whatever its target labels.
TARGET_LABELS = "ready"


def tcp_total(prom: QueryBackend, metric: str, labels: dict[str, str]) -> float:
    result = prom.query(f"sum(max without ({TARGET_LABELS}) ({metric}{selector(labels)}))")
    return float(result[0]["value"][1]) if result else 0.0


# What mutual TLS proves about a caller, in a series (security.mtls_labels): the
# baselines are kept per destination service and these, so a check of one caller's
# requests compares with that caller's series before them.
PEER_LABELS = ("source_principal", "connection_security_policy")
PeerBaselines = dict[tuple[str, str, str], float]


def _by_service_and_peer(prom: QueryBackend, scope: str) -> PeerBaselines:
    group = ", ".join(("destination_service_name", *PEER_LABELS))
    out: PeerBaselines = {}
    for s in prom.query(f"sum by ({group}) (max without ({TARGET_LABELS}) ({scope}))"):
        m = s.get("metric") or {}
        key = (str(m.get("destination_service_name", "")), str(m.get(PEER_LABELS[0], "")),
               str(m.get(PEER_LABELS[1], "")))
        out[key] = float(s["value"][1])
    return out


def peer_of(labels: dict[str, str] | None) -> dict[str, str]:
    """The caller's identity and security policy among a check's labels."""
    return {k: v for k, v in (labels or {}).items() if k in PEER_LABELS}


def baseline(baselines: PeerBaselines, service: str, peer: dict[str, str]) -> float:
    """A service's count before traffic, from the callers ``peer`` matches (all without)."""
    return sum(v for (svc, principal, policy), v in baselines.items()
               if svc == service and peer.get(PEER_LABELS[0], principal) == principal
               and peer.get(PEER_LABELS[1], policy) == policy)


def tcp_baselines(prom: QueryBackend, namespace: str) -> PeerBaselines:
    """Bytes received per destination service (and caller) in ``namespace``, before
    traffic."""
    return _by_service_and_peer(prom, f'{TCP_RECEIVED}{{reporter="destination",'
                                      f'destination_service_namespace={quote(namespace)}}}')


def expect_connections_counted(prom: QueryBackend, namespace: str, service: str,
                               baseline: float, waits: Waits, sent_to: str,
                               peer: dict[str, str] | None = None) -> float:
    """The destination ztunnel's bytes received for ``service`` (from the caller ``peer``
    names, over its security policy) grew past ``baseline`` (connections it counted carried
    the traffic); returns the bytes seen."""
    wanted = {**destination_tcp(service, namespace), **(peer or {})}
    seen = [0.0, 0.0]

    def counted() -> float:
        seen[0] = tcp_total(prom, TCP_RECEIVED, wanted)
        seen[1] = tcp_total(prom, TCP_OPENED, wanted)
        return seen[0] if seen[0] > baseline and seen[1] >= 1 else 0.0

    try:
        return waits.until(counted, area="telemetry",
                           what=f"{TCP_RECEIVED} for {service} > {baseline:g}",
                           describe=lambda _: f"{seen[0]:g} bytes, {seen[1]:g} connections")
    except WaitTimeout as exc:
        raise AssertionError(
            f"expected Prometheus to have {TCP_RECEIVED}{selector(wanted)} above "
            f"{baseline:g} and {TCP_OPENED} ≥ 1 after sending requests to {sent_to} (the "
            f"destination ztunnel counts the connections); it has {exc.last}. Look at "
            "ztunnel's :15020/metrics and the Prometheus targets") from None


def expect_waypoint_route(cluster: Cluster, namespace: str, waypoint: str, service: str,
                          port: int, waits: Waits) -> str:
    """The waypoint's live Envoy config routes ``service:port`` (its ``inbound-vip`` route
    config); returns the route's target."""
    from meshgate.sidecars import admin_get

    pod = waypoint_pod(cluster, namespace, waypoint)
    name = waypoint_route_config(service, namespace, port)
    seen: list[str] = ["not read yet"]

    def probe() -> str | None:
        dump = config_dump.load_config_dump(admin_get(cluster, namespace, pod, "config_dump"))
        entry = waypoint_routes(dump if isinstance(dump, dict) else {}, service, namespace,
                                port)
        if entry is None or not entry.cluster:
            seen[0] = f"no route config {name!r}"
            return None
        return f"route config {name} → {entry.cluster}"

    try:
        return waits.until(probe, area="routes", what=f"waypoint {waypoint} routes {name}",
                           describe=lambda hit: hit or seen[0])
    except WaitTimeout:
        raise AssertionError(
            f"expected the waypoint {namespace}/{waypoint} ({pod}) to route {service}:{port} "
            f"({name}); found: {seen[0]}. Look at `kubectl exec -n {namespace} {pod} -c "
            "istio-proxy -- pilot-agent request GET config_dump`") from None


def waypoint_labels(service: str, namespace: str, code: int) -> dict[str, str]:
    return {"reporter": "waypoint", "destination_service_name": service,
            "destination_service_namespace": namespace, "response_code": str(code)}


def waypoint_baselines(prom: QueryBackend, namespace: str) -> PeerBaselines:
    """Requests the waypoints counted per destination service (and caller), before
    traffic."""
    return _by_service_and_peer(prom, f'istio_requests_total{{reporter="waypoint",'
                                      f'destination_service_namespace={quote(namespace)},'
                                      f'response_code="200"}}')


def expect_waypoint_requests(prom: QueryBackend, namespace: str, service: str, *, code: int,
                             count: int, baseline: float, waits: Waits, sent_to: str,
                             peer: dict[str, str] | None = None) -> float:
    """``istio_requests_total{reporter="waypoint"}`` for ``service`` (from the caller
    ``peer`` names) grew by ``count``."""
    wanted = {**waypoint_labels(service, namespace, code), **(peer or {})}
    target = baseline + count
    seen = [0.0]

    def counted() -> float:
        seen[0] = tcp_total(prom, "istio_requests_total", wanted)
        return seen[0] if seen[0] >= target else 0.0

    try:
        return waits.until(counted, area="telemetry",
                           what=f"waypoint istio_requests_total for {service} ≥ {target:g}",
                           describe=lambda _: seen[0])
    except WaitTimeout as exc:
        raise AssertionError(
            f"expected Prometheus to count ≥ {target:g} requests istio_requests_total"
            f"{selector(wanted)} after sending {count} to {sent_to} (the waypoint carries "
            f"them); it has {exc.last}") from None
