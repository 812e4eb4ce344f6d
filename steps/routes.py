"""Steps about the route tables of the sidecars and the ingress gateway."""

from __future__ import annotations

from pytest_bdd import parsers, then

from meshgate import routes
from meshgate.scenario import Scenario


@then(parsers.parse('the sidecar of {client} routes "{service}" port {port:d} to its service'))
def sidecar_routes_service(client: str, service: str, port: int, scenario: Scenario) -> None:
    """Membership in the live route table: route config ``<port>``, virtual host
    ``<fqdn>:<port>`` whose domains include the FQDN, ``/`` → ``outbound|<port>||<fqdn>``."""
    routes.expect_sidecar_route(scenario.cluster, scenario.namespace, client, service, port,
                                scenario.waits)


@then(parsers.parse('the ingress gateway routes "{path}" to {service} port {port:d}'))
def gateway_routes_path(path: str, service: str, port: int, scenario: Scenario) -> None:
    """The ingress gateway's ``http.8080`` route config sends the path (for the namespace's
    host) to the service's outbound cluster."""
    routes.expect_gateway_route(scenario.cluster, scenario.mesh.ingress_gateway, path, service,
                                scenario.namespace, port, host=scenario.host,
                                waits=scenario.waits)
