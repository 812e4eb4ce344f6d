"""Steps about the route tables of the sidecars and the ingress gateway."""

from __future__ import annotations

from pytest_bdd import parsers, then

from meshgate import routes, sidecars
from meshgate.cluster import Cluster
from meshgate.waiting import Convergence, Timeouts, WaitTimeout, wait_until


@then(parsers.parse('the sidecar of {client} routes "{service}" port {port:d} to its service'))
def sidecar_routes_service(client: str, service: str, port: int, cluster: Cluster,
                           namespace: str, deployed: dict, timeouts: Timeouts,
                           convergence: Convergence) -> None:
    pod = deployed[client].pods[0]
    want = routes.service_route(service, namespace, port)
    entries: list = []

    def probe() -> object:
        entries[:] = sidecars.routes(cluster, namespace, pod)
        return routes.check(entries, want)

    try:
        wait_until(probe, area="routes", what=f"{want.describe()} in {pod}",
                   timeout=timeouts["routes"], log=convergence,
                   describe=lambda hit: hit or routes.explain_miss(entries, want))
    except WaitTimeout as exc:
        raise AssertionError(
            f"expected the sidecar of {client} ({namespace}/{pod}) to have "
            f"{want.describe()}; found: {exc.last}. Look at `kubectl exec -n {namespace} "
            f"{pod} -c istio-proxy -- pilot-agent request GET config_dump`") from None
