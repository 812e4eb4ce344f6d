"""Steps about the route tables of the sidecars and the ingress gateway."""

from __future__ import annotations

from pytest_bdd import parsers, then

from fixtures.world import World
from meshgate import manifests, routes, sidecars
from meshgate.cluster import Cluster
from meshgate.routes import RouteExpectation
from meshgate.waiting import Convergence, Timeouts, WaitTimeout, wait_until


def _wait_for_route(cluster: Cluster, namespace: str, pod: str, want: RouteExpectation,
                    timeouts: Timeouts, convergence: Convergence, who: str) -> None:
    entries: list = []

    def probe() -> object:
        entries[:] = sidecars.routes(cluster, namespace, pod)
        return routes.check(entries, want)

    try:
        wait_until(probe, area="routes", what=f"{want.describe()} in {namespace}/{pod}",
                   timeout=timeouts["routes"], log=convergence,
                   describe=lambda hit: hit or routes.explain_miss(entries, want))
    except WaitTimeout as exc:
        raise AssertionError(
            f"expected {who} ({namespace}/{pod}) to have {want.describe()}; found: "
            f"{exc.last}. Look at `kubectl exec -n {namespace} {pod} -c istio-proxy -- "
            "pilot-agent request GET config_dump`") from None


@then(parsers.parse('the sidecar of {client} routes "{service}" port {port:d} to its service'))
def sidecar_routes_service(client: str, service: str, port: int, cluster: Cluster,
                           world: World, timeouts: Timeouts, convergence: Convergence) -> None:
    """Membership in the live route table: route config ``<port>``, virtual host
    ``<fqdn>:<port>`` whose domains include the FQDN, ``/`` → ``outbound|<port>||<fqdn>``."""
    pods = manifests.pods_of(cluster, world.namespace, client)
    assert pods, f"no pod of {client} in {world.namespace}"
    want = routes.service_route(service, world.namespace, port)
    _wait_for_route(cluster, world.namespace, pods[0]["metadata"]["name"], want, timeouts,
                    convergence, f"the sidecar of {client}")


@then(parsers.parse('the ingress gateway routes "{path}" to {service} port {port:d}'))
def gateway_routes_path(path: str, service: str, port: int, cluster: Cluster, world: World,
                        timeouts: Timeouts, convergence: Convergence) -> None:
    """The ingress gateway's ``http.8080`` route config sends the path (for the namespace's host)
    to the service's outbound cluster."""
    gateways = [p for p in cluster.list("v1", "Pod", "istio-system",
                                        label_selector="istio=ingressgateway")
                if not p["metadata"].get("deletionTimestamp")]
    assert gateways, "no ingress gateway pod (istio=ingressgateway) in istio-system"
    want = routes.gateway_route(path, service, world.namespace, port)
    want = RouteExpectation(want.route_config, None, world.host, path, want.cluster)
    _wait_for_route(cluster, "istio-system", gateways[0]["metadata"]["name"], want, timeouts,
                    convergence, "the ingress gateway")
