"""Steps about the route tables of the sidecars and the ingress gateway."""

from __future__ import annotations

from pytest_bdd import parsers, then

from meshgate import routes
from meshgate.scenario import Scenario


@then(parsers.parse('the sidecar of {client} routes "{service}" port {port:d} to its service'))
def sidecar_routes_service(client: str, service: str, port: int, scenario: Scenario) -> None:
    """Membership in the live route table: route config ``<port>``, virtual host
    ``<fqdn>:<port>`` whose domains include the FQDN, ``/`` → ``outbound|<port>||<fqdn>``."""
    scenario.require_sidecars("a sidecar's route table")
    routes.expect_sidecar_route(scenario.cluster, scenario.namespace, client, service, port,
                                scenario.waits)


@then(parsers.parse('the data plane of {client} routes "{service}" port {port:d} to its '
                    'service'))
def data_plane_routes_service(client: str, service: str, port: int,
                              scenario: Scenario) -> None:
    """Sidecars: the sidecar's live route table. Ambient: the namespace's waypoint routes the
    service port (``inbound-vip`` route config), else the ztunnel of the client's node
    knows the service and reaches its workloads over HBONE. The report says which."""
    scenario.expect_data_plane_route(client, service, port)


@then(parsers.parse('the ingress gateway routes "{path}" to {service} port {port:d}'))
def gateway_routes_path(path: str, service: str, port: int, scenario: Scenario) -> None:
    """The ingress gateway's ``http.8080`` route config sends the path (for the namespace's
    host) to the service's outbound cluster."""
    routes.expect_gateway_route(scenario.cluster, scenario.mesh.ingress_gateway, path, service,
                                scenario.namespace, port, host=scenario.host,
                                waits=scenario.waits)
