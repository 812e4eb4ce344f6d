"""Route expectations: what "the sidecar routes X" means, and how a miss is explained.

Assertions are about *membership* (a virtual host whose domains include the service's
FQDN routes the path to the cluster), never list equality: Istio's domain lists changed
in 1.16 and 1.27 (istio-mapping.md §1.5).
"""

from __future__ import annotations

from dataclasses import dataclass

from meshgate.config_dump import RouteEntry, find_route


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
    """Istio's outbound route of a service port (names from istio-mapping.md §1.5)."""
    host = fqdn(service, namespace)
    return RouteExpectation(str(port), f"{host}:{port}", host, "/",
                            f"outbound|{port}||{host}")


def gateway_route(path: str, service: str, namespace: str, port: int,
                  gateway_port: int = 8080) -> RouteExpectation:
    """Istio's gateway route for an Ingress path (route config ``http.8080``)."""
    return RouteExpectation(f"http.{gateway_port}", None, "*", path,
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
