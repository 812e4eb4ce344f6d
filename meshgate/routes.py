"""Route expectations: what "the sidecar routes X" means, and how a miss is explained.

Assertions are about *membership* (a virtual host whose domains include the service's
FQDN routes the path to the cluster), never list equality: Istio's domain lists changed
in 1.16 and 1.27 (docs/architecture.md, "Routes").

The checks (:func:`expect_route` and the two that find the proxy first) poll the proxy's
live route table through the run's waits and raise an AssertionError that names what was
expected, what the proxy has instead, and the command to look at it.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshgate import manifests, sidecars
from meshgate.cluster import Cluster
from meshgate.config_dump import RouteEntry, find_route
from meshgate.mesh import Gateway
from meshgate.waiting import Waits, WaitTimeout


def fqdn(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.cluster.local"


@dataclass(frozen=True)
class RouteExpectation:
    """A route config should send ``path`` for ``domain`` to ``cluster``."""

    route_config: str
    virtual_host: str | None
    domain: str
    path: str
    cluster: str

    def describe(self) -> str:
        vh = f", virtual host {self.virtual_host}" if self.virtual_host else ""
        return (f"route config {self.route_config!r}{vh}: {self.domain}{self.path} → "
                f"{self.cluster}")


def service_route(service: str, namespace: str, port: int) -> RouteExpectation:
    """Istio's outbound route of a service port: route config ``<port>``, virtual host
    ``<fqdn>:<port>``, cluster ``outbound|<port>||<fqdn>`` (Istio's names, as in the
    sidecar config dumps of upstream's test data)."""
    host = fqdn(service, namespace)
    return RouteExpectation(str(port), f"{host}:{port}", host, "/",
                            f"outbound|{port}||{host}")


def gateway_route(path: str, service: str, namespace: str, port: int, *,
                  host: str = "*", gateway_port: int = 8080) -> RouteExpectation:
    """Istio's gateway route for an Ingress path: route config ``http.<gateway port>``,
    a virtual host whose domains include ``host`` (the Ingress rule's host; ``*`` for a
    host-less rule), whatever that virtual host is called."""
    return RouteExpectation(f"http.{gateway_port}", None, host, path,
                            f"outbound|{port}||{fqdn(service, namespace)}")


def check(entries: list[RouteEntry], want: RouteExpectation) -> RouteEntry | None:
    """The entry that satisfies ``want``, or None."""
    hit = find_route(entries, route_config=want.route_config, domain=want.domain,
                     path=want.path)
    if hit is None:
        return None
    if want.virtual_host is not None and hit.virtual_host != want.virtual_host:
        return None
    target = hit.cluster if isinstance(hit.cluster, str) else None
    return hit if target == want.cluster else None


def explain_miss(entries: list[RouteEntry], want: RouteExpectation) -> str:
    """What the proxy has instead, closest first, for the failure message."""
    configs = sorted({e.route_config for e in entries})
    if want.route_config not in configs:
        return (f"the proxy has no route config {want.route_config!r}; it has "
                f"{configs or 'none'}")
    in_config = [e for e in entries if e.route_config == want.route_config]
    vhosts = sorted({e.virtual_host for e in in_config})
    with_domain = [e for e in in_config if want.domain in e.domains]
    if not with_domain:
        return (f"route config {want.route_config!r} has no virtual host with domain "
                f"{want.domain!r}; its virtual hosts are {vhosts}")
    lines = [f"{e.virtual_host}: match {e.match} → {e.cluster}" for e in with_domain]
    return "routes for that domain: " + "; ".join(lines)


def expect_route(cluster: Cluster, namespace: str, pod: str, want: RouteExpectation, *,
                 who: str, waits: Waits) -> RouteEntry:
    """The proxy of ``namespace/pod`` has the route ``want`` in its live route table."""
    entries: list[RouteEntry] = []

    def probe() -> RouteEntry | None:
        entries[:] = sidecars.routes(cluster, namespace, pod, want.route_config)
        return check(entries, want)

    try:
        return waits.until(probe, area="routes", what=f"{want.describe()} in {namespace}/{pod}",
                           describe=lambda hit: hit or explain_miss(entries, want))
    except WaitTimeout as exc:
        raise AssertionError(
            f"expected {who} ({namespace}/{pod}) to have {want.describe()}; found: "
            f"{exc.last}. Look at `kubectl exec -n {namespace} {pod} -c istio-proxy -- "
            "pilot-agent request GET config_dump`") from None


def expect_sidecar_route(cluster: Cluster, namespace: str, client: str, service: str,
                         port: int, waits: Waits) -> RouteEntry:
    """The sidecar of ``client``'s first pod routes ``service:port`` to its service."""
    pods = manifests.pods_of(cluster, namespace, client)
    if not pods:
        raise AssertionError(f"no pod of {client} in {namespace}; look at `kubectl get pods "
                             f"-n {namespace} -l app={client}`")
    return expect_route(cluster, namespace, pods[0]["metadata"]["name"],
                        service_route(service, namespace, port),
                        who=f"the sidecar of {client}", waits=waits)


def expect_gateway_route(cluster: Cluster, gateway: Gateway, path: str, service: str,
                         namespace: str, port: int, *, host: str, waits: Waits) -> RouteEntry:
    """The ingress gateway sends ``path`` for ``host`` to ``service:port`` in ``namespace``."""
    pods = [p for p in cluster.list("v1", "Pod", gateway.namespace,
                                    label_selector=gateway.selector)
            if not p["metadata"].get("deletionTimestamp")]
    if not pods:
        raise AssertionError(f"no ingress gateway pod ({gateway.selector}) in "
                             f"{gateway.namespace}: is Istio's ingress gateway installed?")
    return expect_route(cluster, gateway.namespace, pods[0]["metadata"]["name"],
                        gateway_route(path, service, namespace, port, host=host),
                        who="the ingress gateway", waits=waits)
